"""Projections: each kind owns its synapses and state and delivers itself into its target receptor.

``AbstractProjection`` (``base.py``) is the contract. Kinds: ``EventProjection`` (static weights, event-driven,
optional STP and homogeneous delay), ``DelayedProjection`` (per-synapse delays), ``PlasticProjection``
(weights changed by a local learning rule), ``DenseProjection`` (all-to-all learnable weights, optionally
delivered within the step as ML layers do), ``MappedProjection`` (any differentiable map of the presynaptic
output: convolutions, pooling), ``DelayLineProjection`` (learnable per-synapse delays, ``DelayedDense``), ``GapJunctionProjection`` (electrical synapses), ``GradedProjection`` (a population's graded output, e.g. an
astrocyte's slow inward current, through sparse weights). ``StateSignal`` turns a population's state variable into
the signal of a component (an ``AbstractSignal``). ``Projection(...)`` builds the kind its arguments ask for.
"""
from __future__ import annotations

from typing import Optional

from ..core.contracts import AbstractRule, AbstractSTP
from ..delays import DelayedEventOperator
from .base import AbstractProjection
from .delay_line import DelayLineProjection
from .delayed import DelayedProjection, DelayedState
from .dense import DenseProjection
from .event import EventProjection
from .gap import GapJunctionProjection
from .graded import GradedProjection, StateSignal
from .mapped import MappedProjection
from .plastic import PlasticProjection, PlasticState
from .presynaptic import PresynapticState, check_delay


def Projection(pre: str, post: str, receptor: str, weights, *, delay: float = 0.0, stp: Optional[AbstractSTP] = None,
               capacity: Optional[int] = None, pre_range=None,
               plasticity: Optional[AbstractRule] = None, same_step: bool = False) -> AbstractProjection:
    """Synapses from population ``pre`` onto receptor ``receptor`` of population ``post``.

    Args:
        pre, post, receptor: names in the network.
        weights: ``EventOperator`` or a ``(n_pre, n_post)`` BCOO/BCSR weight matrix (nS or pA), or a
            ``brainsim.delays.DelayedEventOperator`` (one integer delay per synapse, in steps of dt; then
            ``delay`` must be 0).
        delay: homogeneous transmission delay, ms (rounded to whole steps of ``dt``; 0 = delivered in the step
            the spike is emitted, as Brian2 without delay).
        stp: optional presynaptic short-term plasticity: ``TsodyksMarkram``, or
            ``brainsim.astrocytes.TripartiteSynapse(n_pre)`` whose release probability is modulated by astrocytic
            gliotransmitter (the projection's signal: a ``StateSignal`` of the network, as
            ``brainsim.networks.astrocytes.with_astrocytes`` adds, or ``Network.step(signals={name: G_A})``).
        capacity: batch size of the portable event loop.
        pre_range: optional ``(start, stop)``: only neurons ``start <= i < stop`` of ``pre`` project (row ``k`` of
            ``weights`` is neuron ``start + k``), like a Brian2 subgroup.
        plasticity: optional local learning rule (``brainsim.plasticity.STDP``, ...); its weights and traces
            live in the projection's state and are updated every step.
        same_step: deliver this step's spikes before ``post`` steps (static weights without delay only; see
            ``EventProjection``).

    Returns an ``EventProjection``, ``DelayedProjection`` or ``PlasticProjection``.
    """
    delay = check_delay(delay, f"Projection {pre}->{post}",
                        per_synapse_delays=isinstance(weights, DelayedEventOperator))
    if same_step and (plasticity is not None or isinstance(weights, DelayedEventOperator)):
        raise ValueError(f"Projection {pre}->{post}: same_step is for static weights without delays "
                         f"(no plasticity, no per-synapse delays)")
    if plasticity is not None:
        return PlasticProjection(pre, post, receptor, weights, plasticity, delay=delay, stp=stp, capacity=capacity,
                                 pre_range=pre_range)
    if isinstance(weights, DelayedEventOperator):
        return DelayedProjection(pre, post, receptor, weights, stp=stp, pre_range=pre_range)
    return EventProjection(pre, post, receptor, weights, delay=delay, stp=stp, capacity=capacity, pre_range=pre_range,
                           same_step=same_step)


__all__ = ["AbstractProjection", "DelayLineProjection", "DelayedProjection", "DelayedState", "DenseProjection", "EventProjection",
           "GapJunctionProjection", "GradedProjection", "MappedProjection", "PlasticProjection", "PlasticState", "PresynapticState", "Projection", "StateSignal"]
