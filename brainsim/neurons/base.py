"""The neuron model contract shared by every neuron model.

A neuron model is an immutable ``equinox.Module`` holding its parameters (array leaves of shape
``(size,)``, trainable by default) and static configuration (``size``, integration method, surrogate).
Its dynamic state is a ``NamedTuple`` whose first field is the membrane potential ``v`` (mV).
Stepping is pure::

    state = model.init()
    state, spikes = model.step(state, inputs, dt)     # dt in ms, spikes float {0., 1.} of shape (size,)
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._types import Array, ArrayLike


class SynapticInput(NamedTuple):
    """Everything that drives a population during one step, linear in the membrane potential.

    The total input current at membrane potential ``v`` (mV) is
    ``I(v) = current + conductance_reversal - conductance * v``  (pA), i.e. the voltage-independent
    current plus the sum over conductance-based synapses of ``g_k (E_k - v)``. Keeping the
    conductance separate lets neuron models integrate it exactly (exponential Euler).
    """

    current: Array  # pA, voltage-independent current (external, current-based synapses)
    conductance: Array  # nS, total synaptic conductance  G = sum_k g_k
    conductance_reversal: Array  # pA (= nS * mV), sum_k g_k E_k

    @classmethod
    def zeros(cls, size: int) -> "SynapticInput":
        z = jnp.zeros((size,))
        return cls(z, z, z)

    @classmethod
    def from_current(cls, current: ArrayLike, size: int | None = None) -> "SynapticInput":
        """Input made of a current only (pA), broadcast to ``(size,)`` if ``size`` is given."""
        current = jnp.asarray(current, dtype=jnp.result_type(float))
        if size is not None:
            current = jnp.broadcast_to(current, (size,))
        z = jnp.zeros_like(current)
        return cls(current, z, z)

    def total_current(self, v: Array) -> Array:
        """I(v) in pA at membrane potential ``v`` (mV)."""
        return self.current + self.conductance_reversal - self.conductance * v

    def __add__(self, other: "SynapticInput") -> "SynapticInput":  # type: ignore[override]
        return SynapticInput(
            self.current + other.current,
            self.conductance + other.conductance,
            self.conductance_reversal + other.conductance_reversal,
        )


def as_input(inputs, size: int) -> SynapticInput:
    """Accept a ``SynapticInput``, ``None`` (no input) or a plain current array/scalar in pA."""
    if inputs is None:
        return SynapticInput.zeros(size)
    if isinstance(inputs, SynapticInput):
        return inputs
    return SynapticInput.from_current(inputs, size)


class NeuronModel(eqx.Module):
    """Abstract base of all neuron models (see module docstring for the contract)."""

    size: eqx.AbstractVar[int]

    def init(self, *, key=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, state, inputs, dt: float):  # pragma: no cover - abstract
        raise NotImplementedError


def exp_euler_linear(v: Array, v_inf: Array, rate: Array, dt: float) -> Array:
    """Exact update of ``dv/dt = rate * (v_inf - v)`` over ``dt`` with constant ``v_inf``, ``rate`` (1/ms)."""
    return v_inf + (v - v_inf) * jnp.exp(-rate * dt)


def refractory_countdown(refractory: Array, dt: float) -> tuple[Array, Array]:
    """Advance a remaining-refractory-time counter (ms) by one step.

    Returns ``(new_counter, is_refractory)``. After a spike at step k the counter is set to ``t_ref``;
    integration stays frozen at steps k+1 .. k+n-1 with n = t_ref/dt and resumes at step k+n, the same
    convention as Brian2's ``(unless refractory)``.
    """
    remaining = jnp.maximum(refractory - dt, 0.0)
    return remaining, remaining > 0.5 * dt
