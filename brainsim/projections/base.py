"""The projection contract: synapses from one population onto one receptor of another, delivering themselves.

A projection owns its synapses and its per-projection state (short-term plasticity, delay buffers, learned
weights). Every step, ``Network.step`` calls, for each projection and with no knowledge of its kind (at the end of the step,
or before ``post`` steps for a ``same_step`` projection)::

    state, target = projection.deliver(state, target, kinetics, ctx)

where ``target`` is the state of the postsynaptic receptor it feeds (after that receptor's decay over the
step), ``kinetics`` that receptor's ``AbstractKinetics`` and ``ctx`` the ``StepContext`` of the step (every
population's spikes of this step, the step index, ``dt``, and signals addressed to components).
A new kind of projection is one final subclass of ``AbstractProjection`` in a file of its own (in brainsim or
in user code); ``Network`` needs no change.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

import equinox as eqx
import numpy as np

from ..core.contracts import AbstractKinetics, StepContext


class AbstractProjection(eqx.Module):
    """Synapses from population ``pre`` onto receptor ``receptor`` of population ``post``.

    - ``init(dt)``: the projection's initial state for steps of ``dt`` ms (any pytree; ``None`` for none).
    - ``deliver(state, target, kinetics, ctx) -> (state, target)``: add this step's arrivals into the receptor
      state ``target`` (through ``kinetics``: ``arrive``, ``arrive_into`` or ``arrive_events``) and advance the
      projection's own state. Pure: runs under ``jit``, ``vmap``, ``grad`` and ``scan``.
    - ``check(name, populations)``: raise ``ValueError`` (naming the projection ``name``) when the projection
      does not fit the network's populations (name -> ``Population``: ``size``, ``receptors``). Called once by
      ``Network`` after it has checked that ``pre``, ``post`` and ``receptor`` exist.
    - ``n_synapses``: number of synapses (for reports).
    - ``reads_signal``: whether ``deliver`` reads ``ctx.signal()`` (a signal addressed to this projection).
    - ``synapse_slots(pairs)``: for monitors of per-synapse state (``ProjectionMonitor(..., synapses=)``): the
      flat indices, in a per-synapse leaf of the state (e.g. learned weights), of the synapses ``(pre, post)``;
      by default the projection has no per-synapse state to monitor.
    - ``sequence_amounts(state, pre_outputs, dt) -> (state, amounts)``: for a ``same_step`` projection whose
      arrivals depend only on presynaptic outputs (this step's, or earlier ones it keeps in its state, e.g. a
      delay line), the amounts it delivers over a whole sequence, ``(T, n_pre) -> (T, n_post)``, computed at
      once (one batched product, and one weight gradient, instead of T of each inside the time loop), and its
      state after the sequence; T calls of ``deliver`` must give the same, each ``kinetics.arrive(target,
      amounts[t])``. ``LayerByLayer`` uses it where it is given; ``None`` (the default) means the projection
      delivers step by step.
    - ``same_step``: ``False`` (Brian2's order, the default of every kind): delivered at the end of the step, after
      every population stepped, so its effect is seen from the next step. ``True``: delivered during the step,
      right before ``post`` steps, with the output ``pre`` emitted in this same step (the convention of
      feed-forward layers in snnTorch/Spyx); ``pre`` must then come before ``post`` in the network.
    """

    pre: eqx.AbstractVar[str]
    post: eqx.AbstractVar[str]
    receptor: eqx.AbstractVar[str]
    same_step: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def init(self, dt: float) -> Any:
        ...

    @abc.abstractmethod
    def deliver(self, state, target, kinetics: AbstractKinetics, ctx: StepContext):
        ...

    @abc.abstractmethod
    def check(self, name: str, populations: Mapping[str, Any]) -> None:
        ...

    @property
    @abc.abstractmethod
    def n_synapses(self) -> int:
        ...

    @property
    @abc.abstractmethod
    def reads_signal(self) -> bool:
        ...

    def sequence_amounts(self, state, pre_outputs, dt: float):
        return None

    def synapse_slots(self, pairs) -> np.ndarray:
        raise ValueError(f"{type(self).__name__} has no per-synapse state to monitor")
