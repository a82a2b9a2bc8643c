"""Synaptic kinetics, one state per postsynaptic neuron ("aligned post").

Every kinetics model is linear, so all synapses of one receptor type onto a neuron share one state:
arrivals of weight w (in the unit of the output: nS for conductances, pA for currents) add to it,
and between arrivals it relaxes exactly. The contract (``init``, ``decay``, ``arrive``, ``arrive_into``,
``value``, and ``arrive_events`` built on them) is ``brainsim.core.contracts.AbstractKinetics``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._checks import check_positive
from .._units import magnitude
from ..core.contracts import AbstractKinetics
from .._types import Array


def membrane_filter(rate: Array, dt: float, tau: Array) -> Array:
    """``integral_0^dt exp(-rate t) exp(-(dt - t)/tau) dt / (tau (1 - exp(-dt/tau)))``: the constant input equivalent,
    on a linear membrane of time constant ``tau`` (ms), to an input decaying as ``exp(-rate t)`` (rate in 1/ms) over
    a step of ``dt`` ms (Rotter & Diesmann 1999); stable where ``rate`` is close to ``1/tau``."""
    a = 1.0 / tau - rate
    x = a * dt
    small = jnp.abs(x) < 1e-4
    growth = jnp.where(small, dt * (1.0 + 0.5 * x), jnp.expm1(jnp.where(small, 1.0, x)) / jnp.where(small, 1.0, a))
    return jnp.exp(-dt / tau) * growth / (-tau * jnp.expm1(-dt / tau))


def membrane_filter_ramp(rate: Array, dt: float, tau: Array) -> Array:
    """As ``membrane_filter`` for an input ``t exp(-rate t)`` (the rising part of an alpha function)."""
    b = rate - 1.0 / tau
    x = b * dt
    small = jnp.abs(x) < 1e-3
    x_safe = jnp.where(small, 1.0, x)
    # integral_0^dt t exp(-b t) dt = dt^2 (1 - exp(-x)(1 + x)) / x^2
    ramp = dt * dt * jnp.where(small, 0.5 - x / 3.0 + x * x / 8.0, -(jnp.expm1(-x_safe) + x_safe * jnp.exp(-x_safe))
                               / (x_safe * x_safe))
    return jnp.exp(-dt / tau) * ramp / (-tau * jnp.expm1(-dt / tau))


class AbstractOneStep(AbstractKinetics):
    """Kinetics without memory: arrivals drive only the step they arrive in (``value`` says how)."""

    def init(self, size: int) -> Array:
        # a NumPy array: known to be zero when traced (LayerByLayer skips what an empty start would add)
        return np.zeros((size,), jnp.result_type(float))

    def decay(self, state: Array, dt: float) -> Array:
        return jnp.zeros_like(state)

    def arrive(self, state: Array, amount: Array) -> Array:
        return state + amount

    def arrive_into(self, state: Array, deliver):
        return deliver(state)


class Delta(AbstractOneStep):
    """Instantaneous synapse: an arrival of weight q (pA·ms = fC for currents) is delivered in one step.

    ``value`` returns ``q / dt`` (pA) during the step after arrival, so a current-based delta synapse of
    weight ``q`` moves the membrane of capacitance C_m by about ``q / C_m`` mV.
    """

    def value(self, state: Array, dt: float) -> Array:
        return state / dt

    def filtered_value(self, state: Array, dt: float, tau: Array) -> Array:
        # the charge arrives at the start of the step: a jump of q / C_m that the membrane relaxes over it
        return state * jnp.exp(-dt / tau) / (-tau * jnp.expm1(-dt / tau))


class Instant(AbstractOneStep):
    """No kinetics: an arrival of amount a (pA or nS) drives the step it arrives in, with value a, and nothing after.

    The synapse of a machine-learning layer without synaptic filtering (the input current is the weighted input of
    the step); ``Delta`` instead delivers a charge (value ``q / dt``).
    """

    def value(self, state: Array, dt: float) -> Array:
        return state


class Exponential(AbstractKinetics):
    """Single-exponential synapse: ``dg/dt = -g / tau``; an arrival of weight w does g <- g + w.

    Args:
        tau: decay time constant, ms (> 0).
    """

    tau: Array  # ms

    def __init__(self, tau: float = 5.0):
        check_positive(tau, "tau (ms)", "Exponential")
        self.tau = jnp.asarray(magnitude(tau), dtype=jnp.result_type(float))

    def time_constants(self) -> tuple:
        return (self.tau,)

    def init(self, size: int) -> Array:
        return jnp.zeros((size,))

    def decay(self, state: Array, dt: float) -> Array:
        return state * jnp.exp(-dt / self.tau)

    def arrive(self, state: Array, amount: Array) -> Array:
        return state + amount

    def arrive_into(self, state: Array, deliver):
        return deliver(state)  # arrival is addition: event delivery writes into g (in place on CPU)

    def value(self, state: Array, dt: float) -> Array:
        return state

    def filtered_value(self, state: Array, dt: float, tau: Array) -> Array:
        return state * membrane_filter(1.0 / self.tau, dt, tau)


class TwoStateKinetics(NamedTuple):
    a: Array
    b: Array


class DualExponential(AbstractKinetics):
    """Difference of exponentials, normalised so that one arrival of weight w peaks at exactly w.

    ``g(t) = w * A * (exp(-t/tau_decay) - exp(-t/tau_rise))`` after an arrival at t = 0, with
    ``A = 1 / max_t(exp(-t/tau_decay) - exp(-t/tau_rise))``.

    Args:
        tau_rise: rise time constant, ms (> 0).
        tau_decay: decay time constant, ms (> tau_rise).
    """

    tau_rise: Array  # ms
    tau_decay: Array  # ms

    def __init__(self, tau_rise: float = 2.0, tau_decay: float = 100.0):
        check_positive(tau_rise, "tau_rise (ms)", "DualExponential")
        check_positive(tau_decay, "tau_decay (ms)", "DualExponential")
        if float(tau_decay) <= float(tau_rise):
            raise ValueError(
                f"DualExponential: tau_decay ({tau_decay} ms) must exceed tau_rise ({tau_rise} ms); "
                "use Alpha for equal time constants"
            )
        self.tau_rise = jnp.asarray(magnitude(tau_rise), dtype=jnp.result_type(float))
        self.tau_decay = jnp.asarray(magnitude(tau_decay), dtype=jnp.result_type(float))

    def _peak_normalisation(self) -> Array:
        tr, td = self.tau_rise, self.tau_decay
        t_peak = tr * td / (td - tr) * jnp.log(td / tr)
        return 1.0 / (jnp.exp(-t_peak / td) - jnp.exp(-t_peak / tr))

    def time_constants(self) -> tuple:
        return (self.tau_rise, self.tau_decay)

    def init(self, size: int) -> TwoStateKinetics:
        z = jnp.zeros((size,))
        return TwoStateKinetics(z, z)  # a: decay component, b: rise component

    def decay(self, state: TwoStateKinetics, dt: float) -> TwoStateKinetics:
        return TwoStateKinetics(state.a * jnp.exp(-dt / self.tau_decay), state.b * jnp.exp(-dt / self.tau_rise))

    def arrive_into(self, state: TwoStateKinetics, deliver):
        amount, aux = deliver(jnp.zeros_like(state.a))
        return self.arrive(state, amount), aux

    def arrive(self, state: TwoStateKinetics, amount: Array) -> TwoStateKinetics:
        return TwoStateKinetics(state.a + amount, state.b + amount)

    def value(self, state: TwoStateKinetics, dt: float) -> Array:
        return self._peak_normalisation() * (state.a - state.b)

    def filtered_value(self, state: TwoStateKinetics, dt: float, tau: Array) -> Array:
        return self._peak_normalisation() * (state.a * membrane_filter(1.0 / self.tau_decay, dt, tau)
                                             - state.b * membrane_filter(1.0 / self.tau_rise, dt, tau))


class Alpha(AbstractKinetics):
    """Alpha synapse ``g(t) = w (t / tau) exp(1 - t / tau)``: peaks at w, t = tau after an arrival.

    Integrated exactly as the linear system ``dy/dt = -y/tau``, ``dg/dt = -g/tau + e y / tau``
    with arrivals added to y.

    Args:
        tau: time constant (time to peak), ms (> 0).
    """

    tau: Array  # ms

    def __init__(self, tau: float = 2.0):
        check_positive(tau, "tau (ms)", "Alpha")
        self.tau = jnp.asarray(magnitude(tau), dtype=jnp.result_type(float))

    def time_constants(self) -> tuple:
        return (self.tau,)

    def init(self, size: int) -> TwoStateKinetics:
        z = jnp.zeros((size,))
        return TwoStateKinetics(z, z)  # a: g, b: y

    def decay(self, state: TwoStateKinetics, dt: float) -> TwoStateKinetics:
        decay = jnp.exp(-dt / self.tau)
        g = (state.a + math.e * dt / self.tau * state.b) * decay
        return TwoStateKinetics(g, state.b * decay)

    def arrive_into(self, state: TwoStateKinetics, deliver):
        amount, aux = deliver(jnp.zeros_like(state.a))
        return self.arrive(state, amount), aux

    def arrive(self, state: TwoStateKinetics, amount: Array) -> TwoStateKinetics:
        return TwoStateKinetics(state.a, state.b + amount)

    def value(self, state: TwoStateKinetics, dt: float) -> Array:
        return state.a

    def filtered_value(self, state: TwoStateKinetics, dt: float, tau: Array) -> Array:
        # g(t) = (g0 + e t / tau_a y0) exp(-t / tau_a) over the step (the solution ``decay`` advances)
        rate = 1.0 / self.tau
        return (state.a * membrane_filter(rate, dt, tau)
                + math.e * rate * state.b * membrane_filter_ramp(rate, dt, tau))
