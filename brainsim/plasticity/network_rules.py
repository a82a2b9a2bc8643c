"""A local learning rule bound to one projection's synapses (used by ``Projection(plasticity=...)``).

``Plastic(rule, operator)`` builds, once and on the host, whatever index the rule needs (the reverse
post -> synapse-slot index for rules driven by postsynaptic spikes). Inside the network step::

    state = plastic.init(operator)                                   # in Network.init
    state = plastic.step(state, operator, pre, post, dt, modulator)  # after delivery, every step

The rule's state is a NamedTuple whose first field ``weights`` is the ``(n_pre, K)`` ELL weight array
that the network delivers spikes with, so learned weights take effect from the next step on.
"""
from __future__ import annotations

from typing import Any, Optional

import equinox as eqx

from .base import ReverseIndex, check_plastic_operator


class Plastic(eqx.Module):
    """A local learning rule bound to the synapses of one ``EventOperator``."""

    rule: Any
    reverse: Optional[ReverseIndex]

    def __init__(self, rule, operator):
        check_plastic_operator(operator, type(rule).__name__)
        self.rule = rule
        self.reverse = ReverseIndex(operator.targets, operator.n_post) if getattr(rule, "needs_reverse", False) else None

    @property
    def modulator(self) -> Optional[str]:
        """Name of the population whose output is this rule's neuromodulatory signal (or None)."""
        return getattr(self.rule, "modulator", None)

    def init(self, operator):
        return self.rule.init_state(operator.weights, operator.n_pre, operator.n_post)

    def step(self, state, operator, pre_spikes, post_spikes, dt: float, modulator=None):
        return self.rule.update(state, operator.targets, self.reverse, pre_spikes, post_spikes, dt,
                                modulator=modulator)

    def deliver_and_step(self, state, operator, pre_spikes, post_spikes, dt: float, modulator=None, into=None):
        """``(into + pre_spikes @ W with the weights before the update, new state)`` (``into`` defaults to
        zeros); fused into one native call when the rule can."""
        if hasattr(self.rule, "deliver_and_update") and modulator is None:
            return self.rule.deliver_and_update(state, operator.targets, self.reverse, pre_spikes, post_spikes, dt,
                                                into=into)
        current = eqx.tree_at(lambda op: op.weights, operator, state.weights)
        arrived = current(pre_spikes) if into is None else current.accumulate(into, pre_spikes)
        return arrived, self.step(state, operator, pre_spikes, post_spikes, dt, modulator)
