"""Nonlinear integrate-and-fire neurons: exponential IF, quadratic IF and adaptive exponential IF.

Membrane equations (v in mV, t in ms, C_m in pF, conductances in nS, currents in pA)::

    ExpIF:  C_m dv/dt = -g_L (v - E_L) + g_L delta_T exp((v - V_T)/delta_T) + I(v)
    QIF:    C_m dv/dt = k (v - v_rest)(v - v_c) + I(v)                    (k in nS/mV)
    AdEx:   C_m dv/dt = -g_L (v - E_L) + g_L delta_T exp((v - V_T)/delta_T) - w + I(v)
            tau_w dw/dt = a (v - E_L) - w                                  (w in pA, a in nS)

with ``I(v) = I + sum_k g_k (E_k - v)``. Spike when v > v_peak; then v <- v_reset (AdEx also w <- w + b)
and v is frozen for the refractory period t_ref.

Methods: ``"euler"`` is forward Euler on every variable from start-of-step values (Brian2's
``method="euler"``). ``"exp_euler"`` integrates the linear part (leak + synaptic conductance) exactly with
the nonlinear term (and w) frozen over the step; w is then updated exactly with v frozen.

Overflow guard: the exponent (v - V_T)/delta_T is clipped at ``EXP_ARG_MAX`` = 50 (e^50 ~ 5e21), so no
step produces inf/NaN. For states v <= v_peak (every state after a reset) the clip is inactive unless
v_peak - V_T > 50 delta_T, where the neuron is anyway past its point of no return.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import as_param, check_choice, check_positive, check_size, warn_implausible
from .._types import Array, ArrayLike
from ..spikes import check_slope, check_surrogate, spike
from .base import AbstractNeuron, SynapticInput, as_input, exp_euler_linear, refractory_countdown

NONLINEAR_IF_METHODS = ("euler", "exp_euler")
EXP_ARG_MAX = 50.0  # clip of (v - V_T)/delta_T, dimensionless


def _affine_exact(v: Array, drive: Array, rate: Array, dt: float) -> Array:
    """Exact update of ``dv/dt = drive - rate * v`` over ``dt`` (rate >= 0 in 1/ms, may be 0).

    ``v + dt * phi1(rate dt) * (drive - rate v)`` with ``phi1(x) = (1 - e^-x)/x``, ``phi1(0) = 1``,
    written so that it and its gradient stay finite at rate = 0.
    """
    x = rate * dt
    small = x < 1e-4
    x_safe = jnp.where(small, 1.0, x)
    phi1 = jnp.where(small, 1.0 - 0.5 * x, -jnp.expm1(-x_safe) / x_safe)
    return v + dt * phi1 * (drive - rate * v)


class ExpIFState(NamedTuple):
    v: Array  # membrane potential, mV
    refractory: Array  # remaining refractory time, ms


class AbstractExpIF(AbstractNeuron):
    """What ExpIF and AdEx share: the exponential membrane integration, threshold and reset."""

    C_m: eqx.AbstractVar[Array]  # pF
    g_L: eqx.AbstractVar[Array]  # nS
    E_L: eqx.AbstractVar[Array]  # mV
    V_T: eqx.AbstractVar[Array]  # mV
    delta_T: eqx.AbstractVar[Array]  # mV
    v_reset: eqx.AbstractVar[Array]  # mV
    v_peak: eqx.AbstractVar[Array]  # mV
    t_ref: eqx.AbstractVar[Array]  # ms
    method: eqx.AbstractVar[str]
    surrogate: eqx.AbstractVar[str]
    slope: eqx.AbstractVar[float]

    def time_constants(self) -> tuple:
        return (self.C_m / self.g_L,)

    def _v0(self, v: ArrayLike | None) -> Array:
        return self.E_L if v is None else jnp.broadcast_to(jnp.asarray(v, self.E_L.dtype), (self.size,))

    def exp_current(self, v: Array) -> Array:
        """Spike-generating current g_L delta_T exp((v - V_T)/delta_T), pA (exponent clipped)."""
        arg = jnp.minimum((v - self.V_T) / self.delta_T, EXP_ARG_MAX)
        return self.g_L * self.delta_T * jnp.exp(arg)

    def _integrate_v(self, v: Array, extra_current: Array, inputs: SynapticInput, dt: float) -> Array:
        """One step of C_m dv/dt = -g_L (v - E_L) + I_exp(v) + extra_current + I(v)."""
        i_exp = self.exp_current(v)
        if self.method == "euler":
            dvdt = (self.g_L * (self.E_L - v) + i_exp + extra_current + inputs.total_current(v)) / self.C_m
            return v + dt * dvdt
        # dv/dt = (g_L + G)/C_m (v_inf - v), nonlinear and extra currents frozen over the step
        g_total = self.g_L + inputs.conductance
        drive = self.g_L * self.E_L + i_exp + extra_current + inputs.current + inputs.conductance_reversal
        return exp_euler_linear(v, drive / g_total, g_total / self.C_m, dt)

    def _fire_and_reset(self, v: Array) -> tuple[Array, Array]:
        x = (v - self.v_peak) / jnp.abs(self.v_peak - self.v_reset)
        spikes = spike(x, self.surrogate, self.slope)
        return v + spikes * (self.v_reset - v), spikes


def _set_expif_params(self, size, C_m, g_L, E_L, V_T, delta_T, v_reset, v_peak, t_ref, method, surrogate, slope):
    """Check and set the parameters ExpIF and AdEx share (each declares them as its own fields)."""
    owner = type(self).__name__
    self.size = check_size(size, owner)
    check_positive(C_m, "C_m (pF)", owner)
    check_positive(g_L, "g_L (nS)", owner)
    check_positive(delta_T, "delta_T (mV)", owner)
    check_positive(t_ref, "t_ref (ms)", owner, allow_zero=True)
    self.C_m = as_param(C_m, size, "C_m", owner)
    self.g_L = as_param(g_L, size, "g_L", owner)
    self.E_L = as_param(E_L, size, "E_L", owner)
    self.V_T = as_param(V_T, size, "V_T", owner)
    self.delta_T = as_param(delta_T, size, "delta_T", owner)
    self.v_reset = as_param(v_reset, size, "v_reset", owner)
    self.v_peak = as_param(v_peak, size, "v_peak", owner)
    self.t_ref = as_param(t_ref, size, "t_ref", owner)
    self.method = check_choice(method, NONLINEAR_IF_METHODS, "method", owner)
    self.surrogate = check_surrogate(surrogate, owner)
    self.slope = check_slope(slope, type(self).__name__)
    warn_implausible(owner, time_constants={"C_m/g_L": self.C_m / self.g_L}, threshold=self.v_peak,
                     reset=self.v_reset, voltages={"E_L": self.E_L, "V_T": self.V_T, "v_reset": self.v_reset})


class ExpIF(AbstractExpIF):
    """Exponential integrate-and-fire neuron (Fourcaud-Trocmé et al. 2003).

    Args:
        size: number of neurons.
        C_m: membrane capacitance, pF (> 0).
        g_L: leak conductance, nS (> 0).
        E_L: leak reversal potential, mV.
        V_T: rheobase threshold (centre of the exponential), mV.
        delta_T: slope factor, mV (> 0).
        v_reset: reset potential, mV.
        v_peak: spike detection (cut-off) potential, mV.
        t_ref: refractory period, ms (>= 0); v is frozen at v_reset during it.
        method: ``"euler"`` or ``"exp_euler"`` (see module docstring).
        surrogate, slope: surrogate derivative of the spike function, evaluated at
            ``(v - v_peak) / |v_peak - v_reset|``.
    """

    C_m: Array  # pF
    g_L: Array  # nS
    E_L: Array  # mV
    V_T: Array  # mV
    delta_T: Array  # mV
    v_reset: Array  # mV
    v_peak: Array  # mV
    t_ref: Array  # ms
    size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        C_m: ArrayLike = 281.0,
        g_L: ArrayLike = 30.0,
        E_L: ArrayLike = -70.6,
        V_T: ArrayLike = -50.4,
        delta_T: ArrayLike = 2.0,
        v_reset: ArrayLike = -70.6,
        v_peak: ArrayLike = 0.0,
        t_ref: ArrayLike = 0.0,
        method: str = "exp_euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        _set_expif_params(self, size, C_m, g_L, E_L, V_T, delta_T, v_reset, v_peak, t_ref, method, surrogate, slope)

    def init(self, *, key=None, v: ArrayLike | None = None) -> ExpIFState:
        """Resting state v = E_L (or ``v`` in mV), not refractory."""
        v0 = self._v0(v)
        return ExpIFState(v=v0, refractory=jnp.zeros((self.size,), v0.dtype))

    def step(self, state: ExpIFState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        refractory, frozen = refractory_countdown(state.refractory, dt)
        v = jnp.where(frozen, state.v, self._integrate_v(state.v, 0.0, inputs, dt))
        v, spikes = self._fire_and_reset(v)
        refractory = jnp.where(spikes > 0, self.t_ref, refractory)
        return ExpIFState(v=v, refractory=refractory), spikes


class AdExState(NamedTuple):
    v: Array  # membrane potential, mV
    w: Array  # adaptation current, pA
    refractory: Array  # remaining refractory time, ms


class AdEx(AbstractExpIF):
    """Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005).

    Defaults are the regular-spiking cell of Brette & Gerstner (2005) with v_peak = 0 mV.

    Args: those of ``ExpIF``, and a (nS, subthreshold adaptation), tau_w (ms, > 0), b (pA, spike-triggered
    adaptation: w <- w + b on each spike). ``method`` defaults to ``"euler"`` (Brian2's usual choice).
    """

    C_m: Array  # pF
    g_L: Array  # nS
    E_L: Array  # mV
    V_T: Array  # mV
    delta_T: Array  # mV
    v_reset: Array  # mV
    v_peak: Array  # mV
    t_ref: Array  # ms
    a: Array  # nS
    tau_w: Array  # ms
    b: Array  # pA
    size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        a: ArrayLike = 4.0,
        tau_w: ArrayLike = 144.0,
        b: ArrayLike = 80.5,
        C_m: ArrayLike = 281.0,
        g_L: ArrayLike = 30.0,
        E_L: ArrayLike = -70.6,
        V_T: ArrayLike = -50.4,
        delta_T: ArrayLike = 2.0,
        v_reset: ArrayLike = -70.6,
        v_peak: ArrayLike = 0.0,
        t_ref: ArrayLike = 0.0,
        method: str = "euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        _set_expif_params(self, size, C_m, g_L, E_L, V_T, delta_T, v_reset, v_peak, t_ref, method, surrogate, slope)
        owner = type(self).__name__
        check_positive(tau_w, "tau_w (ms)", owner)
        self.a = as_param(a, size, "a", owner)
        self.tau_w = as_param(tau_w, size, "tau_w", owner)
        self.b = as_param(b, size, "b", owner)

    def init(self, *, key=None, v: ArrayLike | None = None, w: ArrayLike | None = None) -> AdExState:
        """State at v = E_L (or ``v``, mV) with w = 0 (or ``w``, pA), not refractory."""
        v0 = self._v0(v)
        w0 = jnp.zeros_like(v0) if w is None else jnp.broadcast_to(jnp.asarray(w, v0.dtype), (self.size,))
        return AdExState(v=v0, w=w0, refractory=jnp.zeros_like(v0))

    def step(self, state: AdExState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        refractory, frozen = refractory_countdown(state.refractory, dt)
        v = jnp.where(frozen, state.v, self._integrate_v(state.v, -state.w, inputs, dt))
        # tau_w dw/dt = a (v - E_L) - w, from the start-of-step v
        w_inf = self.a * (state.v - self.E_L)
        if self.method == "euler":
            w = state.w + dt * (w_inf - state.w) / self.tau_w
        else:
            w = exp_euler_linear(state.w, w_inf, 1.0 / self.tau_w, dt)
        v, spikes = self._fire_and_reset(v)
        w = w + spikes * self.b
        refractory = jnp.where(spikes > 0, self.t_ref, refractory)
        return AdExState(v=v, w=w, refractory=refractory), spikes


class QIF(AbstractNeuron):
    """Quadratic integrate-and-fire neuron (theta-neuron normal form; Izhikevich 2007, eq. 8.5 without u).

    ``C_m dv/dt = k (v - v_rest)(v - v_c) + I(v)``: stable rest at v_rest, unstable fixed point
    (threshold) at v_c > v_rest; the rheobase current is k (v_c - v_rest)^2 / 4 (pA).

    Args:
        size: number of neurons.
        C_m: membrane capacitance, pF (> 0).
        k: curvature, nS/mV (> 0).
        v_rest: resting potential, mV.
        v_c: critical (threshold) potential, mV.
        v_reset: reset potential, mV.
        v_peak: spike cut-off, mV.
        t_ref: refractory period, ms (>= 0).
        method: ``"euler"`` or ``"exp_euler"`` (synaptic conductance exact, quadratic term frozen).
        surrogate, slope: surrogate derivative of the spike function at ``(v - v_peak)/|v_peak - v_reset|``.

    Defaults are Izhikevich's (2007) regular-spiking values without the recovery variable.
    """

    C_m: Array  # pF
    k: Array  # nS/mV
    v_rest: Array  # mV
    v_c: Array  # mV
    v_reset: Array  # mV
    v_peak: Array  # mV
    t_ref: Array  # ms
    size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        C_m: ArrayLike = 100.0,
        k: ArrayLike = 0.7,
        v_rest: ArrayLike = -60.0,
        v_c: ArrayLike = -40.0,
        v_reset: ArrayLike = -50.0,
        v_peak: ArrayLike = 35.0,
        t_ref: ArrayLike = 0.0,
        method: str = "euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        check_positive(C_m, "C_m (pF)", owner)
        check_positive(k, "k (nS/mV)", owner)
        check_positive(t_ref, "t_ref (ms)", owner, allow_zero=True)
        self.C_m = as_param(C_m, size, "C_m", owner)
        self.k = as_param(k, size, "k", owner)
        self.v_rest = as_param(v_rest, size, "v_rest", owner)
        self.v_c = as_param(v_c, size, "v_c", owner)
        self.v_reset = as_param(v_reset, size, "v_reset", owner)
        self.v_peak = as_param(v_peak, size, "v_peak", owner)
        self.t_ref = as_param(t_ref, size, "t_ref", owner)
        self.method = check_choice(method, NONLINEAR_IF_METHODS, "method", owner)
        self.surrogate = check_surrogate(surrogate, owner)
        self.slope = check_slope(slope, type(self).__name__)

    def init(self, *, key=None, v: ArrayLike | None = None) -> ExpIFState:
        """Resting state v = v_rest (or ``v`` in mV), not refractory."""
        v0 = self.v_rest if v is None else jnp.broadcast_to(jnp.asarray(v, self.v_rest.dtype), (self.size,))
        return ExpIFState(v=v0, refractory=jnp.zeros((self.size,), v0.dtype))

    def step(self, state: ExpIFState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        refractory, frozen = refractory_countdown(state.refractory, dt)
        v = state.v
        i_quad = self.k * (v - self.v_rest) * (v - self.v_c)  # pA
        if self.method == "euler":
            v_new = v + dt * (i_quad + inputs.total_current(v)) / self.C_m
        else:
            # dv/dt = (i_quad + I + sum g_k E_k)/C_m - (G/C_m) v, i_quad frozen, G may be 0
            drive = (i_quad + inputs.current + inputs.conductance_reversal) / self.C_m
            v_new = _affine_exact(v, drive, inputs.conductance / self.C_m, dt)
        v = jnp.where(frozen, v, v_new)
        spikes = spike((v - self.v_peak) / jnp.abs(self.v_peak - self.v_reset), self.surrogate, self.slope)
        v = v + spikes * (self.v_reset - v)
        refractory = jnp.where(spikes > 0, self.t_ref, refractory)
        return ExpIFState(v=v, refractory=refractory), spikes
