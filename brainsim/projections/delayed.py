"""Event-driven projection with one integer delay per synapse (``brainsim.delays.DelayedEventOperator``).

Its state holds the presynaptic stages' state and the postsynaptic ring of the next ``max_delay + 1`` steps'
arrivals; a spike emitted at step t arrives ``d_ik`` steps later at its target.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import equinox as eqx

from .._types import Array
from ..core.contracts import AbstractKinetics, AbstractSTP, StepContext
from ..delays import DelayedEventOperator
from .presynaptic import (AbstractEventDriven, PresynapticState, check_pre_range, check_synapses, init_presynaptic,
                          presynaptic_values)


class DelayedState(NamedTuple):
    presynaptic: PresynapticState
    arrivals: Array  # (max_delay + 1, n_post) ring: slot (t mod (max_delay + 1)) arrives at step t


class DelayedProjection(AbstractEventDriven):
    """Synapses ``pre -> post.receptor`` with per-synapse delays (in steps of dt; see ``DelayedEventOperator``).

    Args:
        pre, post, receptor: names in the network.
        operator: a ``DelayedEventOperator`` (weights nS or pA, delays in steps).
        stp: optional presynaptic short-term plasticity, applied at emission.
        pre_range: optional ``(start, stop)``: only neurons ``start <= i < stop`` of ``pre`` project.
    """

    operator: DelayedEventOperator
    stp: Optional[AbstractSTP]
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    pre_range: Optional[tuple] = eqx.field(static=True)

    @property
    def same_step(self) -> bool:  # delivered at the end of the step
        return False

    def __init__(self, pre: str, post: str, receptor: str, operator: DelayedEventOperator, *,
                 stp: Optional[AbstractSTP] = None, pre_range=None):
        if not isinstance(operator, DelayedEventOperator):
            raise TypeError(f"DelayedProjection {pre}->{post}: operator must be a DelayedEventOperator, "
                            f"got {type(operator).__name__}")
        self.pre, self.post, self.receptor = pre, post, receptor
        self.operator, self.stp = operator, stp
        self.pre_range = check_pre_range(pre_range, operator.n_pre, f"DelayedProjection {pre}->{post}")

    def check(self, name, populations) -> None:
        check_synapses(name, self, populations, (self.operator.n_pre, self.operator.n_post))

    def init(self, dt: float) -> DelayedState:
        self.operator.check_dt(dt, f"DelayedProjection {self.pre}->{self.post}")
        return DelayedState(init_presynaptic(self.stp, 0.0, self.operator.n_pre, dt), self.operator.init_buffer())

    def deliver(self, state: DelayedState, target, kinetics: AbstractKinetics, ctx: StepContext):
        self.operator.check_dt(ctx.dt, f"projection {ctx.projection!r}")
        pre_state, values, _ = presynaptic_values(self.stp, 0.0, self.pre_range, state.presynaptic,
                                                  ctx.spikes[self.pre], ctx, need_rows=True)
        arrivals, arrived = self.operator.propagate(state.arrivals, ctx.step, values)
        return DelayedState(pre_state, arrivals), kinetics.arrive(target, arrived)
