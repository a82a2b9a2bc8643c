"""Hodgkin–Huxley-type neurons: the classic squid axon (``HH``) and Traub & Miles (``TraubMilesHH``).

Both share one membrane equation (v in mV, t in ms, C_m in pF, conductances in nS, currents in pA)::

    C_m dv/dt = g_L (E_L - v) + g_Na m^3 h (E_Na - v) + g_K n^4 (E_K - v) + I(v)
    dx/dt     = alpha_x(v) (1 - x) - beta_x(v) x          for x in (m, h, n), rates in 1/ms

and differ only in the rate functions alpha_x, beta_x. There is no reset: a spike is the upward crossing of
``v_spike``: ``v > v_spike`` now while the previous step was not above it (Brian2's
``threshold="v > v_spike", refractory="v > v_spike"``). The state field ``above`` (0/1) remembers that.

Methods:
    ``"exp_euler"``: each gating variable is updated exactly with its rates frozen over the step,
        ``x <- x_inf + (x - x_inf) exp(-(alpha + beta) dt)``, and v exactly as a linear ODE with all
        conductances (channel and synaptic) frozen — Brian2's ``exponential_euler``.
    ``"rk4"``: classic fourth-order Runge–Kutta on (v, m, h, n), synaptic input constant over the step.

Numerical safety: ``x / (exp(x) - 1)`` has a removable singularity at x = 0; it is evaluated by a series
near 0, so values and gradients stay finite. All exponents are clipped at 50 (far outside any physiological
voltage), so no rate overflows.
"""
from __future__ import annotations

import abc

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_param, check_choice, check_positive, check_size
from .._types import Array, ArrayLike
from ..spikes import check_slope, check_surrogate, spike
from ..core.integrators import rk4
from .base import AbstractNeuron, SynapticInput, as_input, exp_euler_linear

HH_METHODS = ("exp_euler", "rk4")
SPIKE_SCALE = 10.0  # mV; the surrogate sees (v - v_spike) / SPIKE_SCALE
_EXP_ARG_MAX = 50.0


def _exp(x: Array) -> Array:
    """exp with its argument clipped at 50, so rates never overflow."""
    return jnp.exp(jnp.minimum(x, _EXP_ARG_MAX))


def x_over_expm1(x: Array) -> Array:
    """``x / (exp(x) - 1)``, equal to 1 at x = 0, finite with finite gradient everywhere.

    Near 0 (|x| < 1e-3) the series 1 - x/2 + x^2/12 is used and the other branch sees a safe dummy value
    (so no 0/0 appears, not even under ``jax.grad``). x is clipped at 50, where the function is ~1e-20.
    """
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, 1.0, jnp.minimum(x, _EXP_ARG_MAX))
    return jnp.where(small, 1.0 - 0.5 * x + x * x / 12.0, xs / jnp.expm1(xs))


class HHState(NamedTuple):
    v: Array  # membrane potential, mV
    m: Array  # Na activation, 1
    h: Array  # Na inactivation, 1
    n: Array  # K activation, 1
    above: Array  # 1.0 where v was above v_spike at the end of the previous step, else 0.0


class _HHBase(AbstractNeuron):
    """Shared machinery of Hodgkin–Huxley-type models; subclasses provide ``rates(v)``."""

    C_m: Array  # pF
    g_Na: Array  # nS
    g_K: Array  # nS
    g_L: Array  # nS
    E_Na: Array  # mV
    E_K: Array  # mV
    E_L: Array  # mV
    v_spike: Array  # mV
    size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(self, size, *, C_m, g_Na, g_K, g_L, E_Na, E_K, E_L, v_spike, method, surrogate, slope):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        check_positive(C_m, "C_m (pF)", owner)
        for value, name in ((g_Na, "g_Na"), (g_K, "g_K"), (g_L, "g_L")):
            check_positive(value, f"{name} (nS)", owner, allow_zero=True)
        self.C_m = as_param(C_m, size, "C_m", owner)
        self.g_Na = as_param(g_Na, size, "g_Na", owner)
        self.g_K = as_param(g_K, size, "g_K", owner)
        self.g_L = as_param(g_L, size, "g_L", owner)
        self.E_Na = as_param(E_Na, size, "E_Na", owner)
        self.E_K = as_param(E_K, size, "E_K", owner)
        self.E_L = as_param(E_L, size, "E_L", owner)
        self.v_spike = as_param(v_spike, size, "v_spike", owner)
        self.method = check_choice(method, HH_METHODS, "method", owner)
        self.surrogate = check_surrogate(surrogate, owner)
        self.slope = check_slope(slope, type(self).__name__)

    @abc.abstractmethod
    def rates(self, v: Array) -> tuple[Array, Array, Array, Array, Array, Array]:
        """(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n) in 1/ms at v (mV)."""

    @abc.abstractmethod
    def _default_v(self) -> Array:
        """Resting membrane potential of the model, mV."""

    def init(self, *, key=None, v: ArrayLike | None = None) -> HHState:
        """v (default: the model's resting value) with m, h, n at their steady state for v, not above."""
        v0 = self._default_v() if v is None else jnp.broadcast_to(jnp.asarray(v, self.C_m.dtype), (self.size,))
        am, bm, ah, bh, an, bn = self.rates(v0)
        return HHState(v=v0, m=am / (am + bm), h=ah / (ah + bh), n=an / (an + bn), above=jnp.zeros_like(v0))

    def _channel_conductances(self, m: Array, h: Array, n: Array) -> tuple[Array, Array]:
        return self.g_Na * m**3 * h, self.g_K * n**4  # nS

    def _derivatives(self, y: tuple[Array, Array, Array, Array], inputs: SynapticInput):
        v, m, h, n = y
        g_na, g_k = self._channel_conductances(m, h, n)
        i_ion = self.g_L * (self.E_L - v) + g_na * (self.E_Na - v) + g_k * (self.E_K - v)  # pA
        am, bm, ah, bh, an, bn = self.rates(v)
        return (
            (i_ion + inputs.total_current(v)) / self.C_m,  # mV/ms
            am * (1.0 - m) - bm * m,  # 1/ms
            ah * (1.0 - h) - bh * h,
            an * (1.0 - n) - bn * n,
        )

    def _step_exp_euler(self, state: HHState, inputs: SynapticInput, dt: float):
        v, m, h, n = state.v, state.m, state.h, state.n
        am, bm, ah, bh, an, bn = self.rates(v)
        m_new = exp_euler_linear(m, am / (am + bm), am + bm, dt)
        h_new = exp_euler_linear(h, ah / (ah + bh), ah + bh, dt)
        n_new = exp_euler_linear(n, an / (an + bn), an + bn, dt)
        # C_m dv/dt = g_total (v_inf - v) with start-of-step conductances
        g_na, g_k = self._channel_conductances(m, h, n)
        g_total = self.g_L + g_na + g_k + inputs.conductance
        drive = (
            self.g_L * self.E_L + g_na * self.E_Na + g_k * self.E_K
            + inputs.current + inputs.conductance_reversal
        )  # pA
        v_new = exp_euler_linear(v, drive / g_total, g_total / self.C_m, dt)
        return v_new, m_new, h_new, n_new

    def _step_rk4(self, state: HHState, inputs: SynapticInput, dt: float):
        return rk4(lambda y: self._derivatives(y, inputs), (state.v, state.m, state.h, state.n), dt)

    def step(self, state: HHState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        if self.method == "exp_euler":
            v, m, h, n = self._step_exp_euler(state, inputs, dt)
        else:
            v, m, h, n = self._step_rk4(state, inputs, dt)
        above = spike((v - self.v_spike) / SPIKE_SCALE, self.surrogate, self.slope)
        spikes = above * (1.0 - state.above)  # upward crossing only
        return HHState(v=v, m=m, h=h, n=n, above=above), spikes


class HH(_HHBase):
    """Classic Hodgkin & Huxley (1952) squid axon, resting near -65 mV.

    Defaults are for a membrane patch of 1e4 µm² (1 µF/cm², 120/36/0.3 mS/cm²). Rates (1/ms, V in mV)::

        alpha_m = 0.1 (V+40) / (1 - exp(-(V+40)/10))    beta_m = 4 exp(-(V+65)/18)
        alpha_h = 0.07 exp(-(V+65)/20)                  beta_h = 1 / (1 + exp(-(V+35)/10))
        alpha_n = 0.01 (V+55) / (1 - exp(-(V+55)/10))   beta_n = 0.125 exp(-(V+65)/80)

    Args:
        size: number of neurons.
        C_m: membrane capacitance, pF (> 0).
        g_Na, g_K, g_L: maximal sodium, potassium and leak conductances, nS (>= 0).
        E_Na, E_K, E_L: reversal potentials, mV.
        v_spike: spike detection level, mV (upward crossing).
        method: ``"exp_euler"`` or ``"rk4"``.
        surrogate, slope: surrogate derivative of the spike function at ``(v - v_spike) / 10 mV``.
    """

    def __init__(
        self,
        size: int,
        *,
        C_m: ArrayLike = 100.0,
        g_Na: ArrayLike = 12000.0,
        g_K: ArrayLike = 3600.0,
        g_L: ArrayLike = 30.0,
        E_Na: ArrayLike = 50.0,
        E_K: ArrayLike = -77.0,
        E_L: ArrayLike = -54.387,
        v_spike: ArrayLike = 0.0,
        method: str = "exp_euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        super().__init__(
            size, C_m=C_m, g_Na=g_Na, g_K=g_K, g_L=g_L, E_Na=E_Na, E_K=E_K, E_L=E_L,
            v_spike=v_spike, method=method, surrogate=surrogate, slope=slope,
        )

    def _default_v(self) -> Array:
        return jnp.full((self.size,), -65.0, self.C_m.dtype)

    def rates(self, v: Array):
        # 0.1 (V+40) / (1 - exp(-(V+40)/10)) = x/(e^x - 1) with x = -(V+40)/10
        alpha_m = x_over_expm1(-(v + 40.0) / 10.0)
        beta_m = 4.0 * _exp(-(v + 65.0) / 18.0)
        alpha_h = 0.07 * _exp(-(v + 65.0) / 20.0)
        beta_h = jax.nn.sigmoid((v + 35.0) / 10.0)
        alpha_n = 0.1 * x_over_expm1(-(v + 55.0) / 10.0)
        beta_n = 0.125 * _exp(-(v + 65.0) / 80.0)
        return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n


class TraubMilesHH(_HHBase):
    """Traub & Miles (1991) HH neuron as used in the COBAHH benchmark (Brette et al. 2007).

    Rates (1/ms, V and V_T in mV)::

        alpha_m = 0.32 (13-V+V_T) / (exp((13-V+V_T)/4) - 1)   beta_m = 0.28 (V-V_T-40) / (exp((V-V_T-40)/5) - 1)
        alpha_h = 0.128 exp((17-V+V_T)/18)                     beta_h = 4 / (1 + exp((40-V+V_T)/5))
        alpha_n = 0.032 (15-V+V_T) / (exp((15-V+V_T)/5) - 1)  beta_n = 0.5 exp((10-V+V_T)/40)

    Args: as ``HH`` plus V_T (mV, shifts all rate curves). Defaults: the 20 000 µm² cell of the
    benchmark (C_m = 200 pF, g_L = 10 nS, g_Na = 20 µS, g_K = 6 µS), spike detection at -20 mV;
    ``init()`` starts at v = E_L.
    """

    V_T: Array  # mV

    def __init__(
        self,
        size: int,
        *,
        C_m: ArrayLike = 200.0,
        g_Na: ArrayLike = 20000.0,
        g_K: ArrayLike = 6000.0,
        g_L: ArrayLike = 10.0,
        E_Na: ArrayLike = 50.0,
        E_K: ArrayLike = -90.0,
        E_L: ArrayLike = -60.0,
        V_T: ArrayLike = -63.0,
        v_spike: ArrayLike = -20.0,
        method: str = "exp_euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        super().__init__(
            size, C_m=C_m, g_Na=g_Na, g_K=g_K, g_L=g_L, E_Na=E_Na, E_K=E_K, E_L=E_L,
            v_spike=v_spike, method=method, surrogate=surrogate, slope=slope,
        )
        self.V_T = as_param(V_T, size, "V_T", type(self).__name__)

    def _default_v(self) -> Array:
        return self.E_L

    def rates(self, v: Array):
        u = v - self.V_T  # mV
        alpha_m = 1.28 * x_over_expm1((13.0 - u) / 4.0)  # 0.32 * 4
        beta_m = 1.4 * x_over_expm1((u - 40.0) / 5.0)  # 0.28 * 5
        alpha_h = 0.128 * _exp((17.0 - u) / 18.0)
        beta_h = 4.0 * jax.nn.sigmoid((u - 40.0) / 5.0)
        alpha_n = 0.16 * x_over_expm1((15.0 - u) / 5.0)  # 0.032 * 5
        beta_n = 0.5 * _exp((10.0 - u) / 40.0)
        return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n
