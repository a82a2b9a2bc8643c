"""Event-driven projection whose weights a local learning rule (``AbstractRule``) changes every step.

During a run the weights live in one place: the rule's state (``state.rule.weights``, ELL layout
``(n_pre, K)``), with which the projection delivers. ``operator.weights`` holds the initial weights, read by
``init`` only; ``learned(state)`` returns the projection's synapses with the weights of a state.

Order within a step: the presynaptic stages (subgroup, STP, homogeneous delay) give this step's values;
they are delivered with the weights before this step's update; then the rule learns from the delivered
values and this step's postsynaptic spikes (and the output of its ``modulator`` population, if any). With
per-synapse delays (a ``DelayedEventOperator``) the rule pairs presynaptic emission times with
postsynaptic spikes.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import equinox as eqx

from .._types import Array
from ..core.contracts import AbstractKinetics, AbstractRule, AbstractSTP, StepContext
from ..delays import DelayedEventOperator
from ..plasticity.base import ReverseIndex, check_plastic_operator
from ..propagation import EventOperator
from .presynaptic import (AbstractEventDriven, PresynapticState, check_delay, check_pre_range, check_synapses,
                          delay_steps, init_presynaptic, presynaptic_values)


class PlasticState(NamedTuple):
    presynaptic: PresynapticState
    rule: Any  # the rule's state; its first field ``weights`` holds the live weights
    arrivals: Optional[Array]  # per-synapse delays only: (max_delay + 1, n_post) arrival ring


class PlasticProjection(AbstractEventDriven):
    """Synapses ``pre -> post.receptor`` learning with ``rule`` (``STDP``, ``RewardModulatedSTDP``, ...).

    Args:
        pre, post, receptor: names in the network.
        weights: ``EventOperator`` (one weight per synapse), a ``(n_pre, n_post)`` BCOO/BCSR matrix, or a
            ``DelayedEventOperator`` (per-synapse delays; then ``delay`` must be 0).
        rule: the learning rule.
        delay, stp, capacity, pre_range: as ``EventProjection``.
    """

    operator: Union[EventOperator, DelayedEventOperator]
    rule: AbstractRule
    reverse: Optional[ReverseIndex]
    stp: Optional[AbstractSTP]
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    delay: float = eqx.field(static=True)
    pre_range: Optional[tuple] = eqx.field(static=True)
    per_synapse_delays: bool = eqx.field(static=True)

    @property
    def same_step(self) -> bool:  # delivered at the end of the step
        return False

    def __init__(self, pre: str, post: str, receptor: str, weights, rule: AbstractRule, *, delay: float = 0.0,
                 stp: Optional[AbstractSTP] = None, capacity: Optional[int] = None, pre_range=None):
        if not isinstance(rule, AbstractRule):
            raise TypeError(f"Projection {pre}->{post}: plasticity must be a learning rule (AbstractRule: STDP, "
                            f"RewardModulatedSTDP, ...), got {type(rule).__name__}")
        self.pre, self.post, self.receptor = pre, post, receptor
        self.per_synapse_delays = isinstance(weights, DelayedEventOperator)
        if isinstance(weights, (EventOperator, DelayedEventOperator)):
            self.operator = weights
        else:
            self.operator = EventOperator.from_sparse(weights, capacity=capacity)
        check_plastic_operator(self.operator, type(rule).__name__)
        self.delay = check_delay(delay, f"Projection {pre}->{post}", per_synapse_delays=self.per_synapse_delays)
        self.rule, self.stp = rule, stp
        self.pre_range = check_pre_range(pre_range, self.operator.n_pre, f"Projection {pre}->{post}")
        self.reverse = ReverseIndex(self.operator.targets, self.operator.n_post) if rule.needs_reverse else None

    def delay_steps(self, dt: float) -> int:
        return delay_steps(self.delay, dt)

    def check(self, name, populations) -> None:
        check_synapses(name, self, populations, (self.operator.n_pre, self.operator.n_post))
        if self.rule.modulator is not None and self.rule.modulator not in populations:
            raise ValueError(f"Network: projection {name!r} has a learning rule modulated by unknown population "
                             f"{self.rule.modulator!r}; known: {', '.join(populations)}")

    def init(self, dt: float) -> PlasticState:
        op = self.operator
        arrivals = op.init_buffer() if self.per_synapse_delays else None
        return PlasticState(init_presynaptic(self.stp, self.delay, op.n_pre, dt),
                            self.rule.init_state(op.weights, op.n_pre, op.n_post), arrivals)

    def learned(self, state: PlasticState):
        """This projection's synapses (``EventOperator`` / ``DelayedEventOperator``) with the weights of ``state``."""
        return eqx.tree_at(lambda op: op.weights, self.operator, state.rule.weights)

    def deliver(self, state: PlasticState, target, kinetics: AbstractKinetics, ctx: StepContext):
        pre_state, values, _ = presynaptic_values(self.stp, self.delay, self.pre_range, state.presynaptic,
                                                  ctx.spikes[self.pre], ctx, need_rows=True)
        post = ctx.spikes[self.post]
        modulator = None if self.rule.modulator is None else ctx.spikes[self.rule.modulator]
        targets, arrivals = self.operator.targets, state.arrivals
        if self.per_synapse_delays:  # schedule with the current weights, then learn from the emitted values
            arrivals, arrived = self.learned(state).propagate(arrivals, ctx.step, values)
            target = kinetics.arrive(target, arrived)
            rule_state = self.rule.update(state.rule, targets, self.reverse, values, post, ctx.dt, modulator=modulator)
        else:  # deliver with the weights before this step's update, then learn (fused where the rule can)
            target, rule_state = kinetics.arrive_into(
                target, lambda acc: self.rule.deliver_and_update(state.rule, targets, self.reverse, values, post,
                                                                 ctx.dt, modulator=modulator, into=acc))
        return PlasticState(pre_state, rule_state, arrivals), target
