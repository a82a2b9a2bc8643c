"""Event-driven projection with static weights, optional short-term plasticity and homogeneous delay.

Delivery costs O(out-degree) per presynaptic spike (``brainsim.propagation.EventOperator``; in place on CPU
with the native kernel). The presynaptic stages (subgroup rows, STP, delay ring) are those of
``brainsim.projections.presynaptic``; its state is a ``PresynapticState``.
"""
from __future__ import annotations

from typing import Optional

import equinox as eqx

from ..core.contracts import AbstractKinetics, AbstractSTP, StepContext
from ..propagation import EventOperator
from .presynaptic import (AbstractEventDriven, PresynapticState, check_delay, check_pre_range, check_synapses,
                          delay_steps, init_presynaptic, presynaptic_values)


class EventProjection(AbstractEventDriven):
    """Static synapses ``pre -> post.receptor`` delivered event by event.

    Args:
        pre, post, receptor: names in the network.
        weights: ``EventOperator`` or a ``(n_pre, n_post)`` BCOO/BCSR weight matrix (nS or pA; rows are the
            neurons of ``pre``, or of ``pre_range``).
        delay: homogeneous transmission delay, ms (rounded to whole steps of ``dt``; 0 = delivered in the step
            the spike is emitted, as Brian2 without delay).
        stp: optional presynaptic short-term plasticity (``TsodyksMarkram``; ``TripartiteSynapse`` for
            gliotransmitter-modulated release, whose gliotransmitter is this projection's signal).
        capacity: batch size of the portable event loop (default ~1.5 % of the presynaptic neurons).
        pre_range: optional ``(start, stop)``: only neurons ``start <= i < stop`` of ``pre`` project.
        same_step: deliver this step's spikes of ``pre`` before ``post`` steps (``pre`` must come before ``post``
            in the network; ``delay`` must be 0), e.g. spikes reaching astrocytes that step after the neurons.
    """

    operator: EventOperator
    stp: Optional[AbstractSTP]
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    delay: float = eqx.field(static=True)
    pre_range: Optional[tuple] = eqx.field(static=True)
    same_step: bool = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, weights, *, delay: float = 0.0,
                 stp: Optional[AbstractSTP] = None, capacity: Optional[int] = None, pre_range=None,
                 same_step: bool = False):
        self.pre, self.post, self.receptor, self.same_step = pre, post, receptor, bool(same_step)
        self.delay = check_delay(delay, f"Projection {pre}->{post}")
        if self.same_step and self.delay > 0:
            raise ValueError(f"Projection {pre}->{post}: same_step delivers this step's spikes, it cannot have a "
                             f"delay (got {delay} ms)")
        self.operator = weights if isinstance(weights, EventOperator) else EventOperator.from_sparse(weights, capacity=capacity)
        self.stp = stp
        self.pre_range = check_pre_range(pre_range, self.operator.n_pre, f"Projection {pre}->{post}")

    def delay_steps(self, dt: float) -> int:
        return delay_steps(self.delay, dt)

    def check(self, name, populations) -> None:
        check_synapses(name, self, populations, (self.operator.n_pre, self.operator.n_post))

    def init(self, dt: float) -> PresynapticState:
        return init_presynaptic(self.stp, self.delay, self.operator.n_pre, dt)

    def deliver(self, state: PresynapticState, target, kinetics: AbstractKinetics, ctx: StepContext):
        state, values, row_offset = presynaptic_values(self.stp, self.delay, self.pre_range, state,
                                                       ctx.spikes[self.pre], ctx, need_rows=False)
        return state, kinetics.arrive_events(target, self.operator, values, row_offset)
