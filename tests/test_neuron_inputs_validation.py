"""Every neuron model: constructor validation, jit/vmap of step, finite gradients, numerical guards."""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainsim as bs
from brainsim.neurons.hh import x_over_expm1


class Spec(NamedTuple):
    cls: type
    time_constant: str | None  # a parameter that must be > 0, with its message
    capacitance: str | None
    drive: float  # a current (pA) that makes the neuron fire
    dt: float
    methods: tuple[str, ...]
    grad_param: str  # parameter differentiated in the gradient tests


SPECS = {
    "LIF": Spec(bs.LIF, "tau_m", "C_m", 500.0, 0.1, ("exp_euler", "euler"), "tau_m"),
    "AdaptiveLIF": Spec(bs.AdaptiveLIF, "tau_w", "C_m", 800.0, 0.1, ("exp_euler", "euler"), "b"),
    "ExpIF": Spec(bs.ExpIF, "delta_T", "C_m", 800.0, 0.1, ("euler", "exp_euler"), "g_L"),
    "QIF": Spec(bs.QIF, "k", "C_m", 300.0, 0.1, ("euler", "exp_euler"), "k"),
    "AdEx": Spec(bs.AdEx, "tau_w", "C_m", 800.0, 0.1, ("euler", "exp_euler"), "tau_w"),
    "Izhikevich": Spec(bs.Izhikevich, "a", None, 10.0, 0.1, ("euler",), "a"),
    "HH": Spec(bs.HH, None, "C_m", 1000.0, 0.025, ("exp_euler", "rk4"), "g_K"),
    "TraubMilesHH": Spec(bs.TraubMilesHH, None, "C_m", 500.0, 0.025, ("exp_euler", "rk4"), "g_Na"),
}
NAMES = sorted(SPECS)


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_size(name, size):
    with pytest.raises(ValueError, match=f"{name}: size must be a positive integer"):
        SPECS[name].cls(size)


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].time_constant])
@pytest.mark.parametrize("value", [0.0, -5.0, [1.0, -1.0, 1.0]])
def test_nonpositive_time_constant(name, value):
    spec = SPECS[name]
    with pytest.raises(ValueError, match=rf"{name}: {spec.time_constant} \(.*\) must be > 0"):
        spec.cls(3, **{spec.time_constant: value})


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].capacitance])
@pytest.mark.parametrize("value", [0.0, -100.0])
def test_nonpositive_capacitance(name, value):
    with pytest.raises(ValueError, match=rf"{name}: C_m \(pF\) must be > 0"):
        SPECS[name].cls(3, C_m=value)


@pytest.mark.parametrize("name", ["HH", "TraubMilesHH"])
@pytest.mark.parametrize("param", ["g_Na", "g_K", "g_L"])
def test_negative_conductance(name, param):
    with pytest.raises(ValueError, match=rf"{name}: {param} \(nS\) must be >= 0"):
        SPECS[name].cls(3, **{param: -1.0})
    SPECS[name].cls(3, **{param: 0.0})  # a channel may be switched off


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, [1.0, np.nan, 1.0]])
def test_non_finite_parameter(name, bad):
    spec = SPECS[name]
    with pytest.raises(ValueError, match=rf"{name}: parameter '{spec.grad_param}' contains NaN or infinite"):
        spec.cls(3, **{spec.grad_param: bad})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4,), (3, 1), (2, 3)])
def test_wrong_parameter_shape(name, shape):
    spec = SPECS[name]
    value = np.ones(shape)
    with pytest.raises(ValueError, match=rf"{name}: parameter '{spec.grad_param}' has shape .*expected a scalar or shape \(3,\)"):
        spec.cls(3, **{spec.grad_param: value})


@pytest.mark.parametrize("name", NAMES)
def test_unknown_method(name):
    with pytest.raises(ValueError, match=rf"{name}: unknown method 'rk45'; choose one of"):
        SPECS[name].cls(3, method="rk45")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_surrogate(name):
    with pytest.raises(ValueError, match=rf"{name}: unknown surrogate 'nope'"):
        SPECS[name].cls(3, surrogate="nope")


@pytest.mark.parametrize("name", NAMES)
def test_per_neuron_parameters_broadcast(name):
    spec = SPECS[name]
    model = spec.cls(3, **{spec.grad_param: np.array([1.0, 2.0, 3.0])})
    for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)):
        assert leaf.shape == (3,) and leaf.dtype == jnp.float32
    state = model.init()
    assert state.v.shape == (3,) and state[0] is state.v


# ------------------------------------------------------------------------------------------ jit / vmap
def _simulate(model, state, current, n_steps, dt):
    def body(s, _):
        s, spk = model.step(s, current, dt)
        return s, (s.v, spk)

    return jax.lax.scan(body, state, None, length=n_steps)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_step(name):
    # A batch of 4 states/inputs stepped with vmap == stepped one by one, both under jit.
    spec = SPECS[name]
    single = eqx.filter_jit(lambda m, s, c: m.step(s, c, spec.dt))
    batched = eqx.filter_jit(lambda m, s, c: jax.vmap(m.step, in_axes=(0, 0, None))(s, c, spec.dt))
    for method in spec.methods:
        model = spec.cls(2, method=method)
        v0 = model.init().v
        states = jax.vmap(lambda v: model.init(v=v))(jnp.stack([v0 + d for d in (-5.0, 0.0, 3.0, 8.0)]))
        currents = jnp.array([[0.0, spec.drive * s] for s in (0.5, 1.0, 1.5, 2.0)])
        out, spikes = batched(model, states, currents)
        assert out.v.shape == (4, 2) and spikes.shape == (4, 2)
        for i in range(4):
            one, spk_i = single(model, jax.tree.map(lambda x: x[i], states), currents[i])
            for a, b in zip(jax.tree.map(lambda x: x[i], out), one):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(spikes[i], spk_i)


def _loss_and_trajectory(model, n_steps, dt, current):
    _, (v, spk) = _simulate(model, model.init(), current, n_steps, dt)
    return jnp.mean(v) + jnp.sum(spk), (v, spk)  # the spike count contributes through the surrogate


@pytest.mark.parametrize("name", NAMES)
def test_driven_trajectory_and_its_gradient(name):
    # A driven neuron fires repeatedly, its trajectory stays finite, and the (surrogate) gradient of a
    # smooth function of the trajectory w.r.t. a parameter is finite and nonzero.
    # TraubMilesHH: exp_euler only; its rk4 path is HH's (same base class), and compiling an RK4
    # backward pass costs several seconds.
    spec = SPECS[name]
    for method in ("exp_euler",) if name == "TraubMilesHH" else spec.methods:
        model = spec.cls(1, method=method)
        n_steps = round(60 / spec.dt)
        grad_fn = eqx.filter_jit(eqx.filter_grad(_loss_and_trajectory, has_aux=True))
        grads, (v, spk) = grad_fn(model, n_steps, spec.dt, jnp.array([spec.drive]))
        assert np.all(np.isfinite(np.asarray(v))), method
        assert np.sum(np.asarray(spk)) >= 2, f"{name}/{method} did not fire"
        for leaf in jax.tree.leaves(grads):
            assert np.all(np.isfinite(np.asarray(leaf))), (name, method)
        assert np.any(np.asarray(getattr(grads, spec.grad_param)) != 0.0), (name, method)


SUBTHRESHOLD = {  # current (pA) keeping each model below threshold for 20 ms
    "LIF": 100.0, "AdaptiveLIF": 100.0, "ExpIF": 100.0, "QIF": 30.0, "AdEx": 100.0,
    "Izhikevich": 2.0, "HH": 20.0,
    "TraubMilesHH": -50.0,  # the COBAHH cell fires spontaneously from E_L (~14 Hz); hold it down
}


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name):
    # On a smooth (spike-free) path the autodiff gradient must equal central finite differences (float64).
    # A narrow triangle surrogate (zero more than 1 % of the threshold-reset distance away from threshold)
    # makes the surrogate term vanish exactly on such a path, so autodiff is the true derivative.
    # HH-type models: exp_euler only (compiling the RK4 backward pass costs seconds; rk4 gradients are
    # covered for finiteness above and share the rate functions).
    spec = SPECS[name]
    methods = ("exp_euler",) if name in ("HH", "TraubMilesHH") else spec.methods
    with jax.enable_x64(True):
        for method in methods:
            model = spec.cls(1, method=method, surrogate="triangle", slope=100.0)
            n_steps = round(20 / spec.dt)
            current = jnp.array([SUBTHRESHOLD[name]])

            def loss(p):
                m = eqx.tree_at(lambda m: getattr(m, spec.grad_param), model, p)
                _, (v, spk) = _simulate(m, m.init(), current, n_steps, spec.dt)
                assert v.dtype == jnp.float64
                return jnp.mean(v), jnp.sum(spk)

            value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
            p0 = getattr(model, spec.grad_param)
            (_, n_spikes), g = value_and_grad(p0)
            assert float(n_spikes) == 0.0, f"{name}/{method}: subthreshold drive fired"
            eps = 1e-5 * max(1.0, abs(float(p0[0])))
            (f_plus, _), _ = value_and_grad(p0 + eps)
            (f_minus, _), _ = value_and_grad(p0 - eps)
            fd = (f_plus - f_minus) / (2 * eps)
            np.testing.assert_allclose(np.asarray(g), np.asarray(fd), rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------------------------------------ numerical guards
def test_x_over_expm1_removable_singularity():
    x = np.array([-60.0, -1.0, -1e-2, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 1e-2, 1.0, 40.0])
    with np.errstate(invalid="ignore"):
        exact = np.where(x != 0, x / np.expm1(x), 1.0)
    np.testing.assert_allclose(x_over_expm1(jnp.asarray(x)), exact, rtol=2e-6)
    big = x_over_expm1(jnp.array([60.0, 500.0, 1e30]))  # argument clipped at 50: ~1e-20, never NaN
    assert np.all((np.asarray(big) >= 0) & (np.asarray(big) < 1e-19))
    d = jax.vmap(jax.grad(x_over_expm1))(jnp.asarray(x))
    assert np.all(np.isfinite(np.asarray(d)))
    np.testing.assert_allclose(d[5], -0.5, rtol=1e-6)  # d/dx x/(e^x - 1) at 0 = -1/2
    np.testing.assert_allclose(d, (np.expm1(x) - x * np.exp(x)) / np.where(x != 0, np.expm1(x), 1.0) ** 2
                               * (x != 0) - 0.5 * (x == 0), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name,v_singular", [("HH", [-40.0, -55.0]), ("TraubMilesHH", [-50.0, -23.0, -48.0])])
def test_hh_rates_at_singular_voltages(name, v_singular):
    # alpha_m / alpha_n (and beta_m for Traub-Miles) are 0/0 at these voltages; values must be the
    # continuous limit, and gradients of the rates and of a step finite.
    model = SPECS[name].cls(len(v_singular))
    rates = jax.jit(lambda v: jnp.stack(model.rates(v)))
    v = jnp.array(v_singular)
    near = 0.5 * (rates(v + 1e-2) + rates(v - 1e-2))
    np.testing.assert_allclose(rates(v), near, rtol=1e-4)
    drate = jax.jit(jax.jacfwd(rates))(v)
    assert np.all(np.isfinite(np.asarray(drate)))
    g = jax.jit(jax.grad(lambda v: jnp.sum(model.step(model.init(v=v), None, 0.025)[0].v)))(v)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("name", ["ExpIF", "AdEx"])
def test_exponential_never_overflows(name):
    # Whatever the start (even far above v_peak, with a steep delta_T = 0.5 mV) one step gives finite
    # values and gradients.
    v0 = jnp.array([-49.0, -10.0, 0.0, 50.0, 1e4])
    for method in SPECS[name].methods:
        model = SPECS[name].cls(5, method=method, delta_T=0.5)

        def final_v(v):
            state, _ = model.step(model.init(v=v), jnp.full((5,), 1e4), 1.0)
            return jnp.sum(state.v), state

        g, state = jax.jit(jax.grad(final_v, has_aux=True))(v0)
        for leaf in (*state, g):
            assert np.all(np.isfinite(np.asarray(leaf))), (method, state, g)


@pytest.mark.parametrize("name", ["HH", "TraubMilesHH"])
def test_hh_extreme_voltages_finite(name):
    v0 = jnp.array([-1000.0, -200.0, 200.0, 1000.0])
    model = SPECS[name].cls(4, method="exp_euler")
    rates = np.asarray(jnp.stack(model.rates(v0)))
    assert np.all(np.isfinite(rates)) and np.all(rates >= 0)
    # exponential Euler is unconditionally stable: gating variables stay in [0, 1]
    state, _ = eqx.filter_jit(model.step)(model.init(v=v0), None, 0.1)
    for x in (state.m, state.h, state.n):
        assert np.all((np.asarray(x) >= 0) & (np.asarray(x) <= 1))
    assert np.all(np.isfinite(np.asarray(state.v)))


def test_hh_spike_is_upward_crossing():
    # The spike flag fires once per excursion above v_spike, however long v stays above it.
    model = bs.HH(1)
    _, (v, spk) = eqx.filter_jit(_simulate)(model, model.init(), jnp.array([1000.0]), 4000, 0.025)
    v, spk = np.asarray(v)[:, 0], np.asarray(spk)[:, 0]
    above = v > 0.0
    crossings = np.nonzero(above[1:] & ~above[:-1])[0] + 1
    np.testing.assert_array_equal(np.nonzero(spk)[0], crossings)
    assert len(crossings) >= 5


def test_hh_init_is_steady_state():
    # with no input the resting state is a fixed point (HH rests at ~-65 mV by construction of E_L)
    model = bs.HH(1)
    state, _ = eqx.filter_jit(_simulate)(model, model.init(), None, 2000, 0.025)
    np.testing.assert_allclose(state.v, -65.0, atol=0.05)
