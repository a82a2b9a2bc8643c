"""Leaky integrate-and-fire neurons: LIF and adaptive LIF.

Membrane equation (v in mV, t in ms, C_m in pF, g_L = C_m / tau_m in nS, I(v) in pA)::

    C_m dv/dt = -g_L (v - v_rest) + I(v),     I(v) = I + sum_k g_k (E_k - v)

Spike when v > v_th; then v <- v_reset ("value" reset) or v <- v - (v_th - v_reset) ("subtract"),
and integration is frozen for the refractory period t_ref.

Integration methods: ``"exp_euler"`` holds the input at its value at the start of the step and integrates the
membrane exactly for it; ``"exact"`` integrates the linear subthreshold dynamics exactly for the receptors' own
time course within the step (Rotter & Diesmann 1999: exponential, alpha, dual-exponential and delta current
synapses, as NEST's ``iaf_psc_exp`` / ``iaf_psc_alpha`` / ``iaf_psc_delta``; with conductances it uses the
membrane-weighted mean conductance of the step); ``"euler"`` is forward Euler (Brian2's ``method="euler"``).
With tau_syn = 0.5 ms and dt = 0.1 ms, ``"exp_euler"`` gives a current-based PSC ~10 % more charge than exact.

Refractory counting: after a spike in step k, ``refractory_convention="brian2"`` resumes integration in step
k + t_ref/dt (Brian2's ``(unless refractory)``: t_ref/dt - 1 frozen steps), ``"nest"`` in step k + t_ref/dt + 1
(NEST's t_ref/dt frozen steps). Input arriving while the membrane is frozen is discarded, including the charge of
a ``Delta`` (voltage-jump) synapse: NEST's ``iaf_psc_delta`` default (``refractory_input=False``). Brian2's
``on_pre="v += w"`` instead moves v of a refractory neuron (not available for ``LIF``).
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import as_param, check_choice, check_positive, check_size, warn_implausible
from .._types import Array, ArrayLike
from ..spikes import check_slope, check_surrogate, spike
from .base import AbstractNeuron, SynapticInput, as_input, exp_euler_linear, refractory_countdown

RESETS = ("value", "subtract")
LIF_METHODS = ("exp_euler", "euler", "exact")
REFRACTORY_CONVENTIONS = ("brian2", "nest")


class LIFState(NamedTuple):
    v: Array  # membrane potential, mV
    refractory: Array  # remaining refractory time, ms


class AbstractLIF(AbstractNeuron):
    """What LIF and AdaptiveLIF share: the membrane integration, threshold and reset (module docstring)."""

    tau_m: eqx.AbstractVar[Array]  # ms
    C_m: eqx.AbstractVar[Array]  # pF
    v_rest: eqx.AbstractVar[Array]  # mV
    v_th: eqx.AbstractVar[Array]  # mV
    v_reset: eqx.AbstractVar[Array]  # mV
    t_ref: eqx.AbstractVar[Array]  # ms
    reset: eqx.AbstractVar[str]
    method: eqx.AbstractVar[str]
    surrogate: eqx.AbstractVar[str]
    slope: eqx.AbstractVar[float]
    refractory_convention: eqx.AbstractVar[str]

    @property
    def g_L(self) -> Array:
        """Leak conductance, nS."""
        return self.C_m / self.tau_m

    def time_constants(self) -> tuple:
        return (self.tau_m,)

    def input_filter(self):
        return self.tau_m if self.method == "exact" else None

    def refractory_hold(self, dt: float) -> Array:
        """The refractory counter (ms) set at a spike: ``t_ref``, one step more under NEST's convention."""
        return self.t_ref + dt if self.refractory_convention == "nest" else self.t_ref

    def _rest(self, v: ArrayLike | None) -> tuple[Array, Array]:
        """Initial membrane potential (``v_rest`` or ``v`` mV) and a zero refractory counter."""
        v0 = self.v_rest if v is None else jnp.broadcast_to(jnp.asarray(v, self.v_rest.dtype), (self.size,))
        return v0, jnp.zeros((self.size,), v0.dtype)

    def _integrate_v(self, v: Array, inputs: SynapticInput, dt: float) -> Array:
        g_L = self.g_L
        if self.method == "euler":
            # C_m dv/dt = g_L (v_rest - v) + I(v)
            return v + dt * (g_L * (self.v_rest - v) + inputs.total_current(v)) / self.C_m
        # dv/dt = (g_L + G)/C_m * (v_inf - v),  v_inf = (g_L v_rest + I + sum g_k E_k) / (g_L + G)
        g_total = g_L + inputs.conductance
        v_inf = (g_L * self.v_rest + inputs.current + inputs.conductance_reversal) / g_total
        return exp_euler_linear(v, v_inf, g_total / self.C_m, dt)

    def _fire_and_reset(self, v: Array, v_th: Array) -> tuple[Array, Array]:
        spikes = spike((v - v_th) / jnp.abs(v_th - self.v_reset), self.surrogate, self.slope)
        if self.reset == "value":
            v = v + spikes * (self.v_reset - v)  # == where(spiked, v_reset, v), differentiable
        else:
            v = v - spikes * (v_th - self.v_reset)
        return v, spikes


def _set_lif_params(module, size, tau_m, C_m, v_rest, v_th, v_reset, t_ref, reset, method, surrogate, slope,
                    refractory_convention):
    """Check and set the parameters LIF and AdaptiveLIF share (each declares them as its own fields)."""
    owner = type(module).__name__
    module.size = check_size(size, owner)
    check_positive(tau_m, "tau_m (ms)", owner)
    check_positive(C_m, "C_m (pF)", owner)
    check_positive(t_ref, "t_ref (ms)", owner, allow_zero=True)
    module.tau_m = as_param(tau_m, size, "tau_m", owner)
    module.C_m = as_param(C_m, size, "C_m", owner)
    module.v_rest = as_param(v_rest, size, "v_rest", owner)
    module.v_th = as_param(v_th, size, "v_th", owner)
    module.v_reset = as_param(v_reset, size, "v_reset", owner)
    module.t_ref = as_param(t_ref, size, "t_ref", owner)
    module.reset = check_choice(reset, RESETS, "reset", owner)
    module.method = check_choice(method, LIF_METHODS, "method", owner)
    module.surrogate = check_surrogate(surrogate, owner)
    module.slope = check_slope(slope, owner)
    module.refractory_convention = check_choice(refractory_convention, REFRACTORY_CONVENTIONS,
                                                "refractory_convention", owner)
    warn_implausible(owner, time_constants={"tau_m": module.tau_m}, threshold=module.v_th, reset=module.v_reset,
                     voltages={"v_rest": module.v_rest, "v_th": module.v_th, "v_reset": module.v_reset})


class LIF(AbstractLIF):
    """Leaky integrate-and-fire neuron with current- and conductance-based input.

    Args:
        size: number of neurons.
        tau_m: membrane time constant, ms (> 0).
        C_m: membrane capacitance, pF (> 0); leak conductance g_L = C_m / tau_m, nS.
        v_rest: resting (leak reversal) potential, mV.
        v_th: spike threshold, mV.
        v_reset: reset potential, mV.
        t_ref: refractory period, ms (>= 0).
        reset: ``"value"`` (v <- v_reset) or ``"subtract"`` (v <- v - (v_th - v_reset)).
        method: ``"exp_euler"`` (exact for inputs constant over a step), ``"exact"`` (exact for the receptors'
            time course within the step, NEST's ``iaf_psc_*``) or ``"euler"`` (forward Euler, as Brian2's
            ``method="euler"``); see the module docstring.
        surrogate, slope: surrogate derivative of the spike function (see ``brainsim.spikes``).
        refractory_convention: ``"brian2"`` or ``"nest"``: how many steps t_ref freezes (module docstring).
    """

    tau_m: Array  # ms
    C_m: Array  # pF
    v_rest: Array  # mV
    v_th: Array  # mV
    v_reset: Array  # mV
    t_ref: Array  # ms
    size: int = eqx.field(static=True)
    reset: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)
    refractory_convention: str = eqx.field(static=True)

    def __init__(self, size: int, *, tau_m: ArrayLike = 10.0, C_m: ArrayLike = 250.0, v_rest: ArrayLike = -70.0,
                 v_th: ArrayLike = -55.0, v_reset: ArrayLike = -70.0, t_ref: ArrayLike = 2.0, reset: str = "value",
                 method: str = "exp_euler", surrogate: str = "fast_sigmoid", slope: float = 10.0,
                 refractory_convention: str = "brian2"):
        _set_lif_params(self, size, tau_m, C_m, v_rest, v_th, v_reset, t_ref, reset, method, surrogate, slope,
                        refractory_convention)

    def init(self, *, key=None, v: ArrayLike | None = None) -> LIFState:
        """Resting state (or membrane potential ``v`` in mV), not refractory."""
        v0, refractory = self._rest(v)
        return LIFState(v=v0, refractory=refractory)

    def step(self, state: LIFState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        new_state, spikes, _, _ = self.step_parts(state, inputs, dt)
        return new_state, spikes

    def step_parts(self, state: LIFState, inputs: SynapticInput | ArrayLike | None, dt: float):
        """``step`` plus its intermediates: ``(state, spikes, v_new, frozen)``, with ``v_new`` the membrane
        potential before threshold and reset (mV) and ``frozen`` whether the neuron was refractory.
        (Fused implementations of the same step use them for their backward pass.)"""
        inputs = as_input(inputs, self.size)
        refractory, frozen = refractory_countdown(state.refractory, dt)
        v_new = jnp.where(frozen, state.v, self._integrate_v(state.v, inputs, dt))
        v, spikes = self._fire_and_reset(v_new, self.v_th)
        refractory = jnp.where(spikes > 0, self.refractory_hold(dt), refractory)
        return LIFState(v=v, refractory=refractory), spikes, v_new, frozen


class ALIFState(NamedTuple):
    v: Array  # membrane potential, mV
    w: Array  # adaptation current, pA
    theta: Array  # threshold increase above v_th, mV
    refractory: Array  # remaining refractory time, ms


class AdaptiveLIF(AbstractLIF):
    """LIF with a spike-triggered adaptation current and an adaptive threshold.

    Extra equations::

        C_m dv/dt = -g_L (v - v_rest) - w + I(v)
        tau_w dw/dt = a (v - v_rest) - w            on spike: w <- w + b
        tau_theta dtheta/dt = -theta                on spike: theta <- theta + delta_theta
        spike when v > v_th + theta

    Args: those of ``LIF``, and: a (nS, subthreshold adaptation), b (pA, spike-triggered adaptation),
    tau_w (ms, > 0), delta_theta (mV, threshold jump), tau_theta (ms, > 0).
    """

    tau_m: Array  # ms
    C_m: Array  # pF
    v_rest: Array  # mV
    v_th: Array  # mV
    v_reset: Array  # mV
    t_ref: Array  # ms
    a: Array  # nS
    b: Array  # pA
    tau_w: Array  # ms
    delta_theta: Array  # mV
    tau_theta: Array  # ms
    size: int = eqx.field(static=True)
    reset: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)
    refractory_convention: str = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        a: ArrayLike = 0.0,
        b: ArrayLike = 50.0,
        tau_w: ArrayLike = 100.0,
        delta_theta: ArrayLike = 0.0,
        tau_theta: ArrayLike = 100.0,
        tau_m: ArrayLike = 10.0,
        C_m: ArrayLike = 250.0,
        v_rest: ArrayLike = -70.0,
        v_th: ArrayLike = -55.0,
        v_reset: ArrayLike = -70.0,
        t_ref: ArrayLike = 2.0,
        reset: str = "value",
        method: str = "exp_euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
        refractory_convention: str = "brian2",
    ):
        _set_lif_params(self, size, tau_m, C_m, v_rest, v_th, v_reset, t_ref, reset, method, surrogate, slope,
                        refractory_convention)
        owner = type(self).__name__
        check_positive(tau_w, "tau_w (ms)", owner)
        check_positive(tau_theta, "tau_theta (ms)", owner)
        self.a = as_param(a, size, "a", owner)
        self.b = as_param(b, size, "b", owner)
        self.tau_w = as_param(tau_w, size, "tau_w", owner)
        self.delta_theta = as_param(delta_theta, size, "delta_theta", owner)
        self.tau_theta = as_param(tau_theta, size, "tau_theta", owner)

    def time_constants(self) -> tuple:
        return (self.tau_m, self.tau_w, self.tau_theta)

    def init(self, *, key=None, v: ArrayLike | None = None) -> ALIFState:
        v0, refractory = self._rest(v)
        zeros = jnp.zeros_like(v0)
        return ALIFState(v=v0, w=zeros, theta=zeros, refractory=refractory)

    def step(self, state: ALIFState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        refractory, frozen = refractory_countdown(state.refractory, dt)
        # the adaptation current enters as a voltage-independent current over the step
        adapted = inputs._replace(current=inputs.current - state.w)
        v = jnp.where(frozen, state.v, self._integrate_v(state.v, adapted, dt))
        # tau_w dw/dt = a (v - v_rest) - w, exact for v held at its start-of-step value
        w_inf = self.a * (state.v - self.v_rest)
        w = exp_euler_linear(state.w, w_inf, 1.0 / self.tau_w, dt)
        theta = state.theta * jnp.exp(-dt / self.tau_theta)
        v, spikes = self._fire_and_reset(v, self.v_th + theta)
        w = w + spikes * self.b
        theta = theta + spikes * self.delta_theta
        refractory = jnp.where(spikes > 0, self.refractory_hold(dt), refractory)
        return ALIFState(v=v, w=w, theta=theta, refractory=refractory), spikes
