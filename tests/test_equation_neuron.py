"""Neuron models from equations (``brainsim.EquationNeuron``): Brian2's own equation text against Brian2's spike
times, against the hand-written models, every integration method against an analytic solution, white noise
against the Ornstein–Uhlenbeck variance, a Wang–Buzsáki network under simulate, vmap and grad, and the errors."""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainsim as bs
from brainsim.neurons.equations import EquationNeuron

from test_neurons_reference import CHAOTIC, assert_same_times, initial, load, reference_trains, simulate

pytest.importorskip("sympy")


def _brian2_model(name, method, **kwargs):
    """The reference file's own Brian2 equations, parameters per case, input current named ``I`` as there."""
    ref = load(name)
    cases = ref["cases"]
    params = {k: np.array([c["params"][k] for c in cases]) for k in cases[0]["params"]}
    model = EquationNeuron(len(cases), ref["equations"], params=params, threshold=ref["threshold"],
                           reset=ref.get("reset") or (), refractory=ref.get("refractory") or 0.0,
                           membrane=list(cases[0]["initial"])[0], input_current="I", method=method, **kwargs)
    state = model.init(**{k: initial(cases, k) for k in cases[0]["initial"]})
    return ref, cases, model, state


@pytest.mark.parametrize("name", ["hh", "traub_miles"])
def test_brian2_hh_text_rk4(name):
    # Brian2's HH/Traub–Miles text (exprel, V/mV, refractory 'V > ...' condition) as written: RK4 at dt 0.025 ms
    # against Brian2's RK4 at 0.005 ms, the tolerance of the hand-written models' test (0.2 ms), same counts.
    ref, cases, model, state = _brian2_model(name, "rk4")
    assert_same_times(cases, simulate(model, state, cases, 0.025), tol_ms=0.2)


def test_brian2_adex_text_same_scheme():
    # Brian2's AdEx text, Brian2's scheme (euler, dt 0.005 ms, float64): spike for spike within 0.1 ms, as the
    # hand-written AdEx; the chaotic case over its first 60 ms.
    with jax.enable_x64(True):
        ref, cases, model, state = _brian2_model("adex", "euler")
        got = simulate(model, state, cases, ref["dt_ms"])
    regular = [i for i, c in enumerate(cases) if c["name"] not in CHAOTIC]
    assert_same_times([cases[i] for i in regular], [got[i] for i in regular], tol_ms=0.1)
    for i in set(range(len(cases))) - set(regular):
        early = reference_trains([cases[i]])[0]
        early = early[early < 60.0]
        np.testing.assert_allclose(got[i][: len(early)], early, atol=0.05)


def test_brian2_izhikevich_text_same_scheme():
    # Brian2's Izhikevich text and scheme (euler, 0.01 ms, float64): every spike on the same step.
    with jax.enable_x64(True):
        ref, cases, model, state = _brian2_model("izhikevich", "euler")
        got = simulate(model, state, cases, ref["dt_ms"])
    assert_same_times(cases, got, tol_ms=ref["dt_ms"] + 1e-9)


ADEX_TEXT = """
dv/dt = (g_L*(E_L - v) + g_L*delta_T*exp((v - V_T)/delta_T) - w + I_syn)/C_m : volt (unless refractory)
dw/dt = (a*(v - E_L) - w)/tau_w : amp
"""
ADEX_PARAMS = dict(C_m=281.0, g_L=30.0, E_L=-70.6, V_T=-50.4, delta_T=2.0, a=4.0, tau_w=144.0, b=80.5,
                   v_reset=-70.6)


def _spike_raster(model, current, n_steps, dt=0.1):
    def body(s, _):
        return model.step(s, current, dt)

    return np.asarray(jax.lax.scan(body, model.init(), None, length=n_steps)[1])


def test_adex_text_and_functions_equal_the_built_in_adex():
    current = jnp.array([700.0, 1000.0, 2000.0])
    built_in = _spike_raster(bs.AdEx(3, t_ref=2.0), current, 5000)
    text = EquationNeuron(3, ADEX_TEXT, params=ADEX_PARAMS, threshold="v > 0*mV", reset="v = v_reset; w += b",
                          refractory=2.0, initial={"v": "E_L"})
    functions = EquationNeuron(
        3, {"v": lambda q: (q.g_L * (q.E_L - q.v) + q.g_L * q.delta_T * jnp.exp((q.v - q.V_T) / q.delta_T) - q.w
                            + q.I_syn) / q.C_m,
            "w": lambda q: (q.a * (q.v - q.E_L) - q.w) / q.tau_w},
        params=ADEX_PARAMS, threshold=lambda q: q.v, reset={"v": lambda q: q.v_reset, "w": lambda q: q.w + q.b},
        refractory=2.0, initial={"v": "E_L"})
    assert built_in.sum() > 50
    np.testing.assert_array_equal(_spike_raster(text, current, 5000), built_in)
    np.testing.assert_array_equal(_spike_raster(functions, current, 5000), built_in)


@pytest.mark.parametrize("method,tol", [("euler", 0.1), ("rk2", 5e-3), ("rk4", 1e-5), ("exp_euler", 1e-8),
                                        ("exact", 1e-12)])
def test_methods_against_the_analytic_leaky_membrane(method, tol):
    # dv/dt = (E - v)/tau + I/C, dI/dt = -I/tau_s (an exponential current): analytic solution at dt = 0.5 ms.
    # exp_euler is exact for v alone, so it is tested with the current held (tau_s huge); exact and rk4 for the
    # coupled system. Tolerances (relative to the peak deflection) are 2-10x the measured errors: euler 0.048,
    # rk2 2.1e-3, rk4 1.3e-6, exp_euler 2.5e-10, exact 2.8e-15.
    tau, tau_s, C, E, I0, dt = 10.0, 5.0, 250.0, -65.0, 500.0, 0.5
    if method == "exp_euler":
        tau_s = 1e9
    with jax.enable_x64(True):
        model = EquationNeuron(1, {"v": "(E - v)/tau + I/C", "I": "-I/tau_s"},
                               params=dict(tau=tau, tau_s=tau_s, C=C, E=E), threshold="v > 1000", method=method,
                               initial={"v": E, "I": I0})
        state = model.init()
        vs = []
        for _ in range(40):
            state, _ = model.step(state, None, dt)
            vs.append(float(state.v[0]))
    t = dt * np.arange(1, 41)
    a = I0 / C / (1 / tau - 1 / tau_s)
    exact = E + a * (np.exp(-t / tau_s) - np.exp(-t / tau))
    err = np.max(np.abs(np.array(vs) - exact)) / np.max(np.abs(exact - E))
    assert err < tol


@pytest.mark.parametrize("method", ["euler", "exp_euler"])
def test_white_noise_variance_matches_ornstein_uhlenbeck(method):
    # dv/dt = (E - v)/tau + sigma*sqrt(2/tau)*xi has stationary variance sigma^2, whatever dt. Measured over
    # 4000 neurons x 20 snapshots one tau apart (relative standard error of the variance ~0.6 %); the bound is
    # 5 % at every dt from 0.01 to 0.1 ms.
    tau, sigma, E = 10.0, 3.0, -60.0
    model = EquationNeuron(4000, "dv/dt = (E - v)/tau + sigma*sqrt(2/tau)*xi : volt", params=dict(
        tau=tau, sigma=sigma, E=E), threshold="v > 1000", method=method, initial={"v": E})
    for dt in (0.01, 0.05, 0.1):
        every = round(tau / dt)

        @jax.jit
        def run(key):
            def body(s, k):
                return model.step(s, None, dt, key=k)[0], None

            def snapshot(s, k):
                s = jax.lax.scan(body, s, jax.random.split(k, every))[0]
                return s, s.v

            return jax.lax.scan(snapshot, model.init(), jax.random.split(key, 25))[1][5:]

        var = float(jnp.var(run(jax.random.key(1))))
        assert abs(var / sigma ** 2 - 1) < 0.05, f"{method} dt={dt}: variance {var:.3f} vs {sigma ** 2}"


def test_noise_needs_a_key():
    model = EquationNeuron(2, "dv/dt = -v/10 + xi : volt", threshold="v > 1")
    with pytest.raises(ValueError, match="give a key"):
        model.step(model.init(), None, 0.1)


WANG_BUZSAKI = """
dv/dt = (-g_Na*m_inf**3*h*(v - E_Na) - g_K*n**4*(v - E_K) - g_L*(v - E_L) + I_app + I_syn)/C_m : volt
m_inf = alpha_m/(alpha_m + beta_m) : 1
alpha_m = 0.1*(v + 35)/(1 - exp(-0.1*(v + 35))) : Hz
beta_m = 4*exp(-(v + 60)/18) : Hz
dh/dt = phi*(alpha_h*(1 - h) - beta_h*h) : 1
alpha_h = 0.07*exp(-(v + 58)/20) : Hz
beta_h = 1/(exp(-0.1*(v + 28)) + 1) : Hz
dn/dt = phi*(alpha_n*(1 - n) - beta_n*n) : 1
alpha_n = 0.01*(v + 34)/(1 - exp(-0.1*(v + 34))) : Hz
beta_n = 0.125*exp(-(v + 44)/80) : Hz
"""
# Wang & Buzsaki (1996), per unit area: uF/cm^2, mS/cm^2, uA/cm^2 (consistent with mV and ms)
WB_PARAMS = dict(g_Na=35.0, g_K=9.0, g_L=0.1, E_Na=55.0, E_K=-90.0, E_L=-65.0, phi=5.0, C_m=1.0)


def _wang_buzsaki_network(n=40, g_syn=0.1, seed=0):
    rng = np.random.default_rng(seed)
    cells = EquationNeuron(n, WANG_BUZSAKI, params=dict(WB_PARAMS, I_app=rng.uniform(0.8, 1.4, n)),
                           threshold="v > -20", refractory="v > -20", method="rk4",
                           initial={"v": -64.0, "h": 0.78, "n": 0.09})
    pop = bs.Population(cells, {"gaba": bs.Receptor(bs.Exponential(10.0), bs.ConductanceOutput(-75.0))},
                        initial={"v": bs.distributions.Uniform(-70.0, -50.0)})
    weights = bs.connectivity.fixed_probability(jax.random.key(seed), n, n, 0.5, g_syn, autapses=False)
    return bs.Network({"I": pop}, {"II": bs.Projection("I", "I", "gaba", weights)})


def test_wang_buzsaki_network_under_simulate_vmap_and_grad():
    net = _wang_buzsaki_network()
    dt, steps = 0.02, 2500  # 50 ms
    result = bs.simulate(net, steps * dt, dt, key=jax.random.key(0), state=net.init(dt, key=jax.random.key(1)),
                         monitors=[bs.SpikeMonitor("I"), bs.StateMonitor("I", "v", every=5)])
    rate = result.spikes["I"].mean_rate()
    uncoupled = bs.simulate(_wang_buzsaki_network(g_syn=0.0), steps * dt, dt, key=jax.random.key(0),
                            state=net.init(dt, key=jax.random.key(1)), monitors=[bs.SpikeMonitor("I")])
    assert 2.0 < rate < uncoupled.spikes["I"].mean_rate(), rate  # the inhibition slows the cells
    times, v = result.traces["I.v"]
    assert v.shape == (500, 40) and np.all(np.isfinite(v))

    def mean_v(net, drive):  # mean membrane potential over 10 ms with the applied currents scaled by ``drive``
        scaled = eqx.tree_at(lambda n: n.populations["I"].model.params["I_app"], net, replace_fn=lambda i: i * drive)
        state = scaled.init(dt, key=jax.random.key(1))
        _, (mean,) = bs.run(scaled, state, 500, dt, key=jax.random.key(0), monitors=[bs.MeanMonitor("I", "v")])
        return jnp.mean(mean)

    values = jax.vmap(lambda d: mean_v(net, d))(jnp.array([0.5, 1.0, 2.0]))
    assert values.shape == (3,) and np.all(np.isfinite(values))
    assert np.all(np.diff(np.asarray(values)) > 0)  # more drive, higher mean potential
    assert np.isfinite(jax.grad(lambda d: mean_v(net, d))(1.0))  # through the spikes: a surrogate gradient
    # without synaptic weights the network is a smooth ODE: the gradient is exact (float64: float32 loses
    # the 10 ms of HH spikes' sensitivity to rounding; measured agreement 1e-8 relative)
    with jax.enable_x64(True):
        quiet = _wang_buzsaki_network(g_syn=0.0)
        grad = float(jax.grad(lambda d: mean_v(quiet, d))(1.0))
        fd = float(mean_v(quiet, 1.0 + 1e-5) - mean_v(quiet, 1.0 - 1e-5)) / 2e-5
    assert grad > 0 and abs(grad - fd) < 1e-5 * abs(fd), (grad, fd)


@pytest.mark.parametrize("kwargs,match", [
    (dict(equations="dv/dt = (E - v)/tau : volt", threshold="v > 0", params=dict(E=0.0)), "'tau' without a value"),
    (dict(equations="dv/dt = -v : volt", threshold="v"), "one comparison"),
    (dict(equations="dv/dt = -v : volt", threshold="v > 1", reset="u = 0"), "unknown variable 'u'"),
    (dict(equations="v = 3", threshold="v > 1"), "no differential equation"),
    (dict(equations="dv/dt = -v + (", threshold="v > 1"), "cannot parse"),
    (dict(equations="dv/dt = -v : volt", threshold="v > 1", method="heun"), "method"),
    (dict(equations="dv/dt = -v : volt", threshold="v > 1", membrane="u"), "membrane 'u'"),
    (dict(equations="dv/dt = -v*xi**2 : volt", threshold="v > 1"), "additively"),
    (dict(equations="dv/dt = a : volt\na = b : 1\nb = a : 1", threshold="v > 1"), "cycle"),
    (dict(equations="dv/dt = -v : volt", threshold="v > 1", refractory=-1.0), "refractory"),
])
def test_errors_name_the_problem(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        EquationNeuron(3, **kwargs)


def test_state_and_initial_conditions():
    model = EquationNeuron(4, ADEX_TEXT, params=ADEX_PARAMS, threshold="v > 0", reset="v = v_reset; w += b",
                           initial={"v": "E_L"})
    state = model.init(w=5.0)
    assert state._fields == ("v", "w", "refractory")
    np.testing.assert_allclose(state.v, -70.6)
    np.testing.assert_allclose(state.w, 5.0)
    with pytest.raises(TypeError, match="unknown variables"):
        model.init(u=1.0)
    # two models from the same text share their compiled functions (one compiled program for both)
    again = EquationNeuron(4, ADEX_TEXT, params=ADEX_PARAMS, threshold="v > 0", reset="v = v_reset; w += b")
    assert again.derivatives == model.derivatives and hash(again.threshold) == hash(model.threshold)


def test_escape_noise_fires_at_its_rate_whatever_dt():
    # a constant intensity of 40 Hz: Poisson spiking at 40 Hz (1000 neurons x 1 s: 40 000 spikes, s.e. 0.5 %);
    # an intensity rising with v: more depolarised cells fire more
    for dt in (0.05, 0.5):
        model = EquationNeuron(1000, "dv/dt = (E - v)/10 : volt", params=dict(E=-60.0), threshold=None,
                               escape_rate="40*Hz", reset="v = E", initial={"v": -60.0})

        def body(s, k):
            return model.step(s, None, dt, key=k)

        spikes = jax.lax.scan(body, model.init(), jax.random.split(jax.random.key(0), round(1000 / dt)))[1]
        assert abs(float(spikes.sum()) / 1000 - 40.0) < 1.5, (dt, float(spikes.sum()) / 1000)
    graded = EquationNeuron(2, "dv/dt = 0 : volt", threshold=None, escape_rate="10*Hz*exp((v + 50)/4)",
                            initial={"v": np.array([-60.0, -50.0])})
    spikes = jax.lax.scan(lambda s, k: graded.step(s, None, 1.0, key=k), graded.init(),
                          jax.random.split(jax.random.key(1), 3000))[1]
    counts = np.asarray(spikes.sum(0))
    assert counts[1] > 5 * counts[0] and abs(counts[1] / 3.0 - 10.0) < 6.0  # 10 Hz at v = -50 mV (30 +- 5.5)


def test_ornstein_uhlenbeck_conductance():
    # the docstring's example: g_e is an OU process (mean g_e0, std sigma_e) driving the membrane
    model = EquationNeuron(2000, """
        dv/dt = (g_L*(E_L - v) + g_e*(E_e - v) + I_syn)/C_m : volt
        dg_e/dt = (g_e0 - g_e)/tau_e + sigma_e*sqrt(2/tau_e)*xi_e : siemens
        """, params=dict(g_L=10.0, E_L=-70.0, E_e=0.0, C_m=200.0, g_e0=5.0, tau_e=2.7, sigma_e=1.5),
        threshold="v > 1000", method="exp_euler", initial={"v": -70.0, "g_e": 5.0})

    def body(s, k):
        return model.step(s, None, 0.1, key=k)[0], s.g_e

    _, g = jax.lax.scan(body, model.init(), jax.random.split(jax.random.key(4), 600))
    g = np.asarray(g[100::27])  # snapshots one tau_e apart
    assert abs(g.mean() - 5.0) < 0.05 and abs(g.std() / 1.5 - 1) < 0.05


# ------------------------------------------------------------------------------------- synapses from equations
ALPHA_TEXT = """
dg/dt = (e*y - g)/tau : siemens
dy/dt = -y/tau : siemens
"""


def test_equation_kinetics_equal_the_built_in_alpha_and_dual_exponential():
    from brainsim.synapses import EquationKinetics

    cases = [
        (bs.Alpha(2.0), EquationKinetics(ALPHA_TEXT, params={"tau": 2.0, "e": float(np.e)}, on_arrival="y += w")),
        (bs.DualExponential(1.0, 5.0), EquationKinetics(
            {"a": lambda q: -q.a / q.tau_d, "b": lambda q: -q.b / q.tau_r},
            params={"tau_r": 1.0, "tau_d": 5.0, "norm": float(bs.DualExponential(1.0, 5.0)._peak_normalisation())},
            on_arrival="a += w; b += w", value="norm*(a - b)")),
    ]
    for built_in, ours in cases:
        s1, s2 = built_in.init(3), ours.init(3)
        w = jnp.array([1.0, 2.0, 0.5])
        v1, v2 = [], []
        for k in range(200):
            if k in (10, 60):
                s1, s2 = built_in.arrive(s1, w), ours.arrive(s2, w)
            v1.append(built_in.value(s1, 0.1))
            v2.append(ours.value(s2, 0.1))
            s1, s2 = built_in.decay(s1, 0.1), ours.decay(s2, 0.1)
        np.testing.assert_allclose(np.array(v2), np.array(v1), rtol=1e-4, atol=1e-6)
    assert len(cases[0][1].time_constants()) == 2


def test_equation_kinetics_drive_a_network_like_the_built_in():
    from brainsim.synapses import EquationKinetics

    def trace(kinetics):
        net = bs.Network({"src": bs.Population(bs.SpikeTimes(1, [1.0, 3.0], [0, 0], 0.1)),
                          "n": bs.Population(bs.LIF(1, v_th=1e9), {"g": bs.Receptor(kinetics, bs.ConductanceOutput(0.0))})},
                         {"p": bs.Projection("src", "n", "g", bs.connectivity.from_indices([0], [0], 1, 1, 2.0))})
        return bs.simulate(net, 20.0, 0.1, key=jax.random.key(0), monitors=[bs.StateMonitor("n", "v")]).traces["n.v"][1]

    ours = EquationKinetics(ALPHA_TEXT, params={"tau": 2.0, "e": float(np.e)}, on_arrival="y += w")
    np.testing.assert_allclose(trace(ours), trace(bs.Alpha(2.0)), atol=1e-4)


def test_equation_kinetics_errors():
    from brainsim.synapses import EquationKinetics

    with pytest.raises(ValueError, match="linear and homogeneous"):
        EquationKinetics("dg/dt = -g*g : siemens", on_arrival="g += w")
    with pytest.raises(ValueError, match="linear and homogeneous"):
        EquationKinetics("dg/dt = 1 - g : siemens", on_arrival="g += w")
    with pytest.raises(ValueError, match="on_arrival must say"):
        EquationKinetics("dg/dt = -g : siemens")
    with pytest.raises(ValueError, match="unknown variable 'h'"):
        EquationKinetics("dg/dt = -g : siemens", on_arrival="h += w")
    with pytest.raises(ValueError, match="'tau' without a value"):
        EquationKinetics("dg/dt = -g/tau : siemens", on_arrival="g += w")
