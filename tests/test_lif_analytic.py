"""LIF / AdaptiveLIF against closed-form solutions.

R = tau_m / C_m (GOhm = mV/pA), g_L = C_m / tau_m (nS). Simulations are jitted lax.scan loops in float32.
"""
from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import LIF, AdaptiveLIF, SynapticInput


@eqx.filter_jit
def run(model, state, inputs, n_steps, dt):
    """Scan ``n_steps`` steps with constant ``inputs``; returns (v trace (n_steps, n), spikes (n_steps, n))."""

    def body(s, _):
        s, spk = model.step(s, inputs, dt)
        return s, (s.v, spk)

    return jax.lax.scan(body, state, None, length=n_steps)[1]


TAU, C_M, V_REST = 10.0, 250.0, -70.0
R = TAU / C_M  # GOhm: 0.04 mV/pA


@pytest.mark.parametrize("method", ["exp_euler", "euler"])
def test_subthreshold_trajectory(method):
    dt, n_steps = 0.1, 500  # 50 ms = 5 tau
    currents = jnp.array([50.0, 100.0, 200.0, 300.0])  # pA; R I = 2 ... 12 mV, below the 15 mV gap
    model = LIF(4, tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=-55.0, method=method)
    v, spk = run(model, model.init(), currents, n_steps, dt)
    assert not np.any(np.asarray(spk))
    t = dt * np.arange(1, n_steps + 1)[:, None]
    ri = R * np.asarray(currents)[None, :]
    exact = V_REST + ri * (1.0 - np.exp(-t / TAU))
    dev = np.asarray(v) - V_REST  # compare the depolarisation v - v_rest (0 ... 12 mV)
    if method == "exp_euler":
        # exact for constant input: only float32 rounding (|v| ~ 70 mV, eps 6e-8) remains
        np.testing.assert_allclose(dev, exact - V_REST, rtol=1e-5, atol=1e-5 * np.abs(V_REST))
    else:
        # forward Euler solves the recursion exactly: v_k = v_rest + R I (1 - (1 - h)^k), h = dt/tau ...
        h = dt / TAU
        euler = V_REST + ri * (1.0 - (1.0 - h) ** (t / dt))
        np.testing.assert_allclose(dev, euler - V_REST, rtol=1e-5, atol=1e-5 * np.abs(V_REST))
        # ... whose global error vs the ODE is max_k |(1-h)^k - e^{-kh}| R I <= h/(2e) R I (1 + O(h)),
        # attained near t = tau: first order in dt, and no larger than that bound.
        err = np.max(np.abs(np.asarray(v) - exact), axis=0)
        bound = h / (2.0 * math.e) * ri[0] * (1.0 + h)
        assert np.all(err <= bound) and np.all(err >= 0.8 * h / (2.0 * math.e) * ri[0])


@pytest.mark.parametrize("t_ref", [0.0, 2.0])
def test_f_i_curve(t_ref):
    # Analytic ISI = t_ref + tau ln(R I / (R I - (v_th - v_rest))) for a reset to v_rest.
    # With exp_euler v is exact at grid points; a spike is detected at the first grid point after the
    # crossing, and integration resumes one step before t_ref has elapsed (Brian2 convention), so every
    # discrete ISI lies within one step dt of the analytic ISI; the mean over a train does too (plus
    # float32 rounding of the crossing step, covered by a 1 % slack on dt).
    dt, n_steps = 0.1, 10_000  # 1 s
    v_th = -55.0
    currents = np.array([300.0, 380.0, 400.0, 500.0, 750.0, 1000.0, 2000.0])  # rheobase 375 pA
    model = LIF(len(currents), tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=v_th, v_reset=V_REST, t_ref=t_ref)
    _, spk = run(model, model.init(), jnp.asarray(currents), n_steps, dt)
    spk = np.asarray(spk)
    ri = R * currents
    gap = v_th - V_REST
    for i, (I, x) in enumerate(zip(currents, ri)):
        times = np.nonzero(spk[:, i])[0] * dt
        if x <= gap:
            assert len(times) == 0, f"I={I} pA is below rheobase but fired"
            continue
        isi_exact = t_ref + TAU * math.log(x / (x - gap))
        isi = np.diff(times)
        assert len(isi) >= 2
        assert np.all(np.abs(isi - isi_exact) <= 1.01 * dt), (I, isi.min(), isi.max(), isi_exact)
        rate, rate_exact = 1000.0 / isi.mean(), 1000.0 / isi_exact  # Hz
        # |rate - rate_exact| <= rate_exact * dt / (isi_exact - dt): the same one-step bound, as a rate
        assert abs(rate - rate_exact) <= rate_exact * 1.01 * dt / (isi_exact - dt), (I, rate, rate_exact)


@pytest.mark.parametrize("method", ["exp_euler", "euler"])
def test_conductance_steady_state(method):
    # C dv/dt = g_L (v_rest - v) + G (E - v) + I  =>  v_inf = (g_L v_rest + G E + I) / (g_L + G)
    g_l = C_M / TAU
    G = np.array([0.0, 5.0, 25.0, 100.0])  # nS
    E = np.array([0.0, 0.0, -80.0, -75.0])  # mV
    I = np.array([100.0, 0.0, 50.0, -20.0])  # pA
    model = LIF(4, tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=100.0, method=method)
    inputs = SynapticInput(jnp.asarray(I), jnp.asarray(G), jnp.asarray(G * E))
    dt = 0.1
    v, _ = run(model, model.init(), inputs, 2000, dt)  # 200 ms >= 20 time constants
    v_inf = (g_l * V_REST + G * E + I) / (g_l + G)
    # float32 stagnation: the per-step correction h (v_inf - v), h = (g_L + G) dt / C_m, is lost once it
    # falls below half an ulp of v, so v settles within ulp(v) / (2 h) of v_inf (3.8e-4 mV for G = 0 at
    # dt = 0.1 ms; float64 removes it). Bound with a 1.5x margin plus a few ulps of rounding.
    h = (g_l + G) * dt / C_M
    ulp = np.spacing(np.abs(v_inf).astype(np.float32)).astype(float)
    np.testing.assert_array_less(np.abs(np.asarray(v)[-1] - v_inf), 1.5 * ulp / (2 * h) + 4 * ulp)
    with jax.enable_x64(True):
        model64 = LIF(4, tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=100.0, method=method)
        inputs64 = SynapticInput(jnp.asarray(I), jnp.asarray(G), jnp.asarray(G * E))
        v64, _ = run(model64, model64.init(), inputs64, 2000, dt)
        np.testing.assert_allclose(np.asarray(v64)[-1], v_inf, rtol=0, atol=1e-7)


def test_reset_by_subtraction():
    # One forward-Euler step from v0 overshoots v_th; "subtract" keeps the overshoot, "value" drops it.
    dt, v0, I = 0.1, -55.5, 2000.0
    kw = dict(tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=-55.0, v_reset=-65.0, method="euler")
    v1 = v0 + dt * ((C_M / TAU) * (V_REST - v0) + I) / C_M  # -54.85 mV, above threshold
    for reset, expected in (("subtract", v1 - (-55.0 - -65.0)), ("value", -65.0)):
        model = LIF(1, reset=reset, **kw)
        state, spk = model.step(model.init(v=v0), jnp.array([I]), dt)
        assert float(spk[0]) == 1.0
        np.testing.assert_allclose(float(state.v[0]), expected, rtol=1e-6)


@pytest.mark.parametrize("t_ref,dt", [(2.0, 0.1), (1.0, 0.25), (0.5, 0.1), (3.0, 0.05)])
def test_refractory_period_length(t_ref, dt):
    # After a spike at step k, integration is frozen at steps k+1 .. k+n-1, n = t_ref/dt, and resumes at
    # step k+n (Brian2's convention, see refractory_countdown): v stays exactly v_reset for the state
    # after the spike step plus n - 1 frozen steps, i.e. n consecutive recorded states.
    n = round(t_ref / dt)
    model = LIF(1, tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=-55.0, v_reset=-65.0, t_ref=t_ref)
    v, spk = run(model, model.init(), jnp.array([5000.0]), round(20.0 / dt), dt)
    v, spk = np.asarray(v)[:, 0], np.asarray(spk)[:, 0]
    k = int(np.nonzero(spk)[0][0])
    at_reset = v[k:] == np.float32(-65.0)
    run_length = int(np.argmin(at_reset))  # first index where v left v_reset
    assert run_length == n, (run_length, n)
    assert v[k + n] > -65.0  # integration resumed at step k + n


def test_adaptation_lowers_rate():
    dt, n_steps, I = 0.1, 5000, 800.0
    common = dict(tau_m=TAU, C_m=C_M, v_rest=V_REST, v_th=-55.0, v_reset=V_REST, t_ref=2.0)
    lif = LIF(1, **common)
    alif = AdaptiveLIF(1, a=2.0, b=50.0, tau_w=100.0, **common)
    _, s_lif = run(lif, lif.init(), jnp.array([I]), n_steps, dt)
    _, s_alif = run(alif, alif.init(), jnp.array([I]), n_steps, dt)
    n_lif, n_alif = int(np.sum(s_lif)), int(np.sum(s_alif))
    assert 0 < n_alif < 0.8 * n_lif
    isi = np.diff(np.nonzero(np.asarray(s_alif)[:, 0])[0])
    assert isi[-1] > isi[0]  # spike-frequency adaptation: intervals lengthen
    # the adaptive threshold alone also lowers the rate
    theta = AdaptiveLIF(1, b=0.0, delta_theta=2.0, tau_theta=50.0, **common)
    _, s_theta = run(theta, theta.init(), jnp.array([I]), n_steps, dt)
    assert 0 < int(np.sum(s_theta)) < n_lif
