"""A neuron population modulated by a slow astrocytic current driven by its own activity (for training).

An abstraction of astrocytic modulation for gradient training (the biophysical astrocyte models are
``LiRinzel``, ``GChI``, ``MultiRate``, coupled to neurons by ``brainsim.networks.astrocytes.with_astrocytes``)::

    tau_astro da/dt = -a + r(t),    r(t) = spikes of the previous step (local: per neuron; global: mean)
    I_total = I - gain_astro * a                                   (pA, added to the neurons' input current)

integrated exactly over a step (``a <- a e^(-dt/tau) + (1 - e^(-dt/tau)) r``). ``gain_astro > 0`` is an
activity-dependent, astrocyte-mediated inhibition (homeostasis); ``< 0`` a slow inward current (excitation).
Both parameters are trainable (``tau_astro`` may be stored through a positive bijection).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import as_param, check_finite, check_positive
from .._types import Array, ArrayLike
from ..core.contracts import AbstractNeuron, SynapticInput, as_input


class AstroModulatedState(NamedTuple):
    neuron: Any  # the inner neuron model's state
    astro: Array  # astrocyte activation a, (size,) (local) or (1,) (global)
    spikes: Array  # spikes of the previous step

    @property
    def v(self) -> Array:
        """The inner neurons' membrane potential, mV."""
        return self.neuron.v


class AstroModulated(AbstractNeuron):
    """``neuron`` (any neuron model) plus a slow astrocytic current driven by its spikes (module docstring).

    Args:
        neuron: the neuron model.
        tau_astro: astrocyte time constant, ms (> 0).
        gain_astro: pA per unit activation.
        local: one astrocyte per neuron (True) or one for the population (False).
    """

    neuron: AbstractNeuron
    tau_astro: Array  # ms
    gain_astro: Array  # pA
    size: int = eqx.field(static=True)
    local: bool = eqx.field(static=True)

    def __init__(self, neuron: AbstractNeuron, *, tau_astro: ArrayLike = 50.0, gain_astro: ArrayLike = 1.0,
                 local: bool = False):
        if not isinstance(neuron, AbstractNeuron):
            raise TypeError(f"AstroModulated: neuron must be a neuron model, got {type(neuron).__name__}")
        check_positive(tau_astro, "tau_astro (ms)", "AstroModulated")
        check_finite(gain_astro, "gain_astro (pA)", "AstroModulated")
        self.neuron, self.size, self.local = neuron, neuron.size, bool(local)
        width = self.size if self.local else 1
        self.tau_astro = as_param(tau_astro, width, "tau_astro", "AstroModulated")
        self.gain_astro = as_param(gain_astro, width, "gain_astro", "AstroModulated")

    def init(self, *, key=None, **initial) -> AstroModulatedState:
        z = jnp.zeros((self.size,))
        return AstroModulatedState(self.neuron.init(key=key, **initial), jnp.zeros(self.gain_astro.shape), z)

    def step(self, state: AstroModulatedState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        activity = state.spikes if self.local else jnp.mean(state.spikes, keepdims=True)
        decay = jnp.exp(-dt / self.tau_astro)
        astro = state.astro * decay + (1.0 - decay) * activity
        inputs = as_input(inputs, self.size) + SynapticInput.from_current(-self.gain_astro * astro, self.size)
        inner, spikes = self.neuron.step(state.neuron, inputs, dt, key=key)
        return AstroModulatedState(inner, astro, spikes), spikes
