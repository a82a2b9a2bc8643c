"""The neuron model contract (``brainsim.core.contracts.AbstractNeuron``), re-exported for model files.

A neuron model is an immutable ``equinox.Module`` holding its parameters (array leaves of shape
``(size,)``: constants unless declared learnable, e.g. ``constrain(model, tau_m=Positive(1.0))``; see
``brainsim.train.trainable``) and static configuration (``size``, integration method, surrogate).
Its dynamic state is a ``NamedTuple`` whose first field is the membrane potential ``v`` (mV).
Stepping is pure::

    state = model.init()
    state, spikes = model.step(state, inputs, dt)     # dt in ms, spikes float {0., 1.} of shape (size,)
"""
from __future__ import annotations

from ..core.contracts import AbstractNeuron, SynapticInput, as_input
from ..core.integrators import exp_euler_linear, refractory_countdown

NeuronModel = AbstractNeuron  # the name earlier releases used for the abstract neuron

__all__ = ["AbstractNeuron", "NeuronModel", "SynapticInput", "as_input", "exp_euler_linear", "refractory_countdown"]
