"""Astrocytes: NEST/Brian2/SciPy references, multi-rate stepping, tripartite connectivity, coupling,
plasticity, gradients and bad input."""
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse
from scipy.integrate import solve_ivp

from brainsim.astrocytes import (AstroSTDP, GapJunctions, GChI, GlobalAstrocyte, LiRinzel, MultiRate,
                                 TripartiteSynapse, astrocyte_pools, branching_factor, run_multirate,
                                 tripartite_bernoulli_with_pool)
from brainsim.networks.astrocytes import with_astrocytes
from brainsim.train import AstroLIFLayer

DATA = Path(__file__).parent / "reference" / "data"
NEST = json.loads((DATA / "nest_astrocyte.json").read_text())
BRIAN = json.loads((DATA / "brian2_gliotransmission.json").read_text())


def _run_lr(model, state, inputs, dt):
    def body(s, x):
        s, sic = model.step(s, x, dt)
        return s, (s.IP3, s.Ca, s.h, sic)
    return jax.lax.scan(body, state, jnp.asarray(inputs))


# ---------------------------------------------------------------- NEST astrocyte_lr_1994 ----------

def test_nest_defaults_match_reference():
    m = LiRinzel(1)
    for k, v in NEST["defaults"].items():
        assert float(getattr(m, k)[0]) == pytest.approx(v, rel=1e-6), k


def test_single_spike_matches_nest():
    ref = NEST["single_spike"]
    m = LiRinzel(1)
    inputs = np.zeros((1000, 1), np.float32)
    inputs[99] = 1.0  # spike arriving at t = 10.0 ms: added at the end of the step ending at 10.0 ms
    _, (ip3, ca, h, _) = _run_lr(m, m.init(IP3=1.0, Ca=1.0, h=1.0), inputs, 0.1)
    for mine, k in ((ip3, "IP3"), (ca, "Ca"), (h, "h")):
        mine = np.asarray(mine)[:999, 0]
        np.testing.assert_allclose(mine, ref[k], rtol=1e-3, err_msg=k)
    assert float(ip3[998, 0]) == pytest.approx(ref["IP3"][-1], rel=1e-5)  # t = 99.9 ms


def test_spike_train_drive_matches_nest():
    ref = NEST["poisson_drive"]
    m = LiRinzel(1, delta_IP3=0.2)
    n = 200_000
    inputs = np.zeros((n, 1), np.float32)
    inputs[np.round(np.asarray(ref["spike_times_ms"]) / 0.1).astype(int) - 1] = 1.0
    _, (ip3, ca, h, _) = _run_lr(m, m.init(), inputs, 0.1)
    rows = np.round(np.asarray(ref["times_ms"]) / 0.1).astype(int) - 1
    for mine, k in ((ip3, "IP3"), (ca, "Ca"), (h, "h")):
        np.testing.assert_allclose(np.asarray(mine)[rows, 0], ref[k], rtol=1e-3, err_msg=k)


def _period(t, c):
    mid = 0.5 * (c.min() + c.max())
    up = np.nonzero((c[:-1] < mid) & (c[1:] >= mid))[0]
    tc = t[up] + (mid - c[up]) / (c[up + 1] - c[up]) * (t[up + 1] - t[up])
    return float(np.mean(np.diff(tc)))


def _lr_rhs(ip3, p=None):
    p = NEST["defaults"] if p is None else p

    def f(t, y):
        c, h = y
        m, n_ = ip3 / (ip3 + p["Kd_IP3_1"]), c / (c + p["Kd_act"])
        er = (p["Ca_tot"] - c) / p["ratio_ER_cyt"]
        dc = p["ratio_ER_cyt"] * (p["rate_IP3R"] * (m * n_ * h) ** 3 + p["rate_L"]) * (er - c) \
            - p["rate_SERCA"] * c * c / (p["Km_SERCA"] ** 2 + c * c)
        q2 = p["Kd_inh"] * (ip3 + p["Kd_IP3_1"]) / (ip3 + p["Kd_IP3_2"])
        return [dc, p["k_IP3R"] * (q2 * (1 - h) - c * h)]
    return f


def _clamped_ca(ip3_values, duration, dt):
    ip3_values = np.atleast_1d(np.asarray(ip3_values, np.float32))
    m = LiRinzel(len(ip3_values), IP3_0=ip3_values)
    _, (_, ca, _, _) = _run_lr(m, m.init(IP3=ip3_values), np.zeros((int(duration / dt), len(ip3_values)), np.float32), dt)
    return np.arange(1, int(duration / dt) + 1) * dt, np.asarray(ca)


def test_li_rinzel_period_matches_scipy_and_nest():
    t, ca = _clamped_ca([0.5], 60_000.0, 1.0)
    keep = t > 20_000
    p_bs = _period(t[keep], ca[keep, 0])
    sol = solve_ivp(_lr_rhs(0.5), (0, 60_000.0), [0.073, 0.793], method="DOP853", rtol=1e-10, atol=1e-12,
                    dense_output=True)
    tt = np.arange(20_000.0, 60_000.0, 1.0)
    p_sp = _period(tt, sol.sol(tt)[0])
    ref = NEST["clamped_ip3"]
    p_nest = _period(np.asarray(ref["times_ms"]), np.asarray(ref["Ca"]))
    assert p_bs == pytest.approx(p_sp, rel=1e-3)
    assert p_bs == pytest.approx(p_nest, rel=1e-3)
    assert 10_000 < p_bs < 13_000  # ~11.5 s


def _oscillates_scipy(ip3):
    sol = solve_ivp(_lr_rhs(ip3), (0, 120_000.0), [0.073, 0.793], method="LSODA", rtol=1e-9, atol=1e-12,
                    dense_output=True)
    c = sol.sol(np.arange(80_000.0, 120_000.0, 5.0))[0]
    return c.max() - c.min() > 0.01


def test_li_rinzel_onset_offset_match_scipy():
    # SciPy: bisection of the oscillation boundaries (from the same initial state), to 2.5e-3 µM
    bounds = []
    for lo, hi in ((0.3, 0.4), (0.68, 0.76)):
        p_lo = _oscillates_scipy(lo)
        assert p_lo != _oscillates_scipy(hi)
        while hi - lo > 2.5e-3:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _oscillates_scipy(mid) == p_lo else (lo, mid)
        bounds.append(0.5 * (lo + hi))
    on, off = bounds
    # brainsim (float32, dt = 2 ms) on both sides of each boundary, 0.01 µM away
    probe = np.array([on - 0.01, on + 0.01, off - 0.01, off + 0.01])
    t, ca = _clamped_ca(probe, 120_000.0, 2.0)
    late = t > 80_000
    osc = (ca[late].max(0) - ca[late].min(0)) > 0.01
    assert osc.tolist() == [False, True, True, False], (on, off, osc)


def test_sic_output():
    m = LiRinzel(3, SIC_scale=2.0)
    ca = jnp.array([0.1, 0.19669 + 0.0005, 0.19669 + 0.1])
    np.testing.assert_allclose(m.sic(ca), [0.0, 0.0, 2.0 * np.log(100.0)], rtol=1e-4)
    smooth = LiRinzel(3, SIC_scale=2.0, smooth=0.0005)
    g = jax.grad(lambda c: smooth.sic(c).sum())(ca)
    assert np.all(np.isfinite(g)) and float(g[1]) > 0  # smooth threshold: gradient at the edge


# ---------------------------------------------------------------- G-ChI and gliotransmission ------

def _glio_run(dtype_tol):
    astro = GChI(2, F_ex=2e-3, I_bias=jnp.asarray(BRIAN["I_bias_uM"]), O_beta=0.0)
    syn = TripartiteSynapse(3)
    idx = np.round(np.asarray(BRIAN["spike_times_ms"])).astype(int)
    spikes = np.zeros(17_100, np.float32)
    spikes[idx] = 1.0

    def body(c, s):
        a, y = c
        y, r = syn.step(y, jnp.full(3, s), 1.0, jnp.concatenate([jnp.zeros(1), a.G_A]))
        a, rel = astro.step(a, None, 1.0)
        return (a, y), (r, rel)

    _, (r, rel) = jax.lax.scan(body, (astro.init(I=BRIAN["I0_uM"], C=BRIAN["C0_uM"], h=BRIAN["h0"]), syn.init()),
                               jnp.asarray(spikes))
    return np.asarray(r)[idx].T, np.asarray(rel)


def test_gliotransmission_release_matches_brian2():
    r, rel = _glio_run(None)
    ref = np.asarray(BRIAN["r_S"])
    np.testing.assert_allclose(r, ref, atol=3e-4)  # float32; identical to 1e-13 in float64
    means = r.mean(1)
    assert means[0] > means[1] > means[2]  # no > weak > stronger (release-decreasing, alpha = 0)
    assert rel[:, 0].sum() >= 1 and rel[:, 1].sum() >= 1  # both astrocytes released gliotransmitter


GLIO_WEIGHTS = sparse.BCOO((jnp.ones(2), jnp.array([[0, 1], [1, 2]])), shape=(2, 3))


def _glio_network(alpha=0.0):
    """Three presynaptic neurons with the Brian2 spike train; neuron 0 has no astrocyte, 1 the weak one, 2 the
    stronger one (same GChI astrocytes as the standalone protocol). One-to-one unit weights onto a Delta receptor,
    so the receptor of post neuron i holds the release r_S of presynaptic neuron i in the step of its spike."""
    from brainsim.inputs import SpikeTimes
    from brainsim.network import Network, Population, Projection
    from brainsim.neurons import LIF
    from brainsim.synapses import CurrentOutput, Receptor
    from brainsim.synapses.kinetics import Delta
    t = np.asarray(BRIAN["spike_times_ms"], float)
    pre = SpikeTimes(3, np.tile(t, 3), np.repeat(np.arange(3), len(t)), dt=1.0)
    one_to_one = sparse.BCOO((jnp.ones(3), jnp.array([[0, 0], [1, 1], [2, 2]])), shape=(3, 3))
    net = Network({"pre": Population(pre), "post": Population(LIF(3), {"e": Receptor(Delta(), CurrentOutput())})},
                  {"syn": Projection("pre", "post", "e", one_to_one, stp=TripartiteSynapse(3, alpha=alpha))})
    astro = GChI(2, F_ex=2e-3, I_bias=jnp.asarray(BRIAN["I_bias_uM"]), O_beta=0.0)
    initial = dict(I=BRIAN["I0_uM"], C=BRIAN["C0_uM"], h=BRIAN["h0"])
    return with_astrocytes(net, astro, glio_couplings={"syn": GLIO_WEIGHTS}, initial=initial), net, astro


def _glio_network_run(alpha=0.0):
    anet, _, _ = _glio_network(alpha)
    state = anet.init(1.0)
    keys = jax.random.split(jax.random.key(0), 17_100)

    def body(s, k):
        s, spk = anet.step(s, 1.0, key=k)
        return s, (s.receptors["post"]["e"], spk["pre"])

    _, (release, pre_spikes) = jax.lax.scan(body, state, keys)
    idx = np.round(np.asarray(BRIAN["spike_times_ms"])).astype(int)
    assert np.all(np.asarray(pre_spikes)[idx] == 1.0)
    return np.asarray(release)[idx].T  # (3 synapses, n_spikes)


def test_gliotransmission_in_network_matches_standalone_synapse():
    r = _glio_network_run()
    r_alone, _ = _glio_run(None)
    np.testing.assert_allclose(r, r_alone, atol=1e-5)  # same release as the standalone tripartite synapse
    np.testing.assert_allclose(r, np.asarray(BRIAN["r_S"]), atol=3e-4)  # and as Brian2
    means = r.mean(1)
    assert means[0] > means[1] > means[2]  # no > weak > stronger gliotransmission (release-decreasing)
    # release-increasing gliotransmission (alpha > U_0_star) reverses the direction
    up = _glio_network_run(alpha=1.0).mean(1)
    assert up[0] < up[1] < up[2]


def test_gliotransmission_network_bad_input():
    from brainsim.network import Network, Projection
    from brainsim.projections import StateSignal
    anet, net, astro = _glio_network()
    w = sparse.BCOO((jnp.ones(1), jnp.array([[0, 0]])), shape=(2, 3))
    with pytest.raises(ValueError, match="unknown projection 'nope'"):
        with_astrocytes(net, astro, glio_couplings={"nope": w})
    with pytest.raises(ValueError, match="shape"):
        with_astrocytes(net, astro, glio_couplings={"syn": sparse.BCOO.fromdense(jnp.ones((2, 4)))})
    with pytest.raises(ValueError, match="two signals address projection 'syn'"):
        Network(anet.populations, anet.projections, signals=[StateSignal("syn", "astro", "G_A", w)] * 2)
    with pytest.raises(ValueError, match="no state variable 'G_A'"):
        with_astrocytes(net, LiRinzel(2), glio_couplings={"syn": w})
    with pytest.raises(ValueError, match=">= 0"):
        with_astrocytes(net, astro, glio_couplings={"syn": sparse.BCOO((-jnp.ones(1), jnp.array([[0, 0]])), shape=(2, 3))})
    with pytest.raises(TypeError, match="BCOO/BCSR"):
        with_astrocytes(net, astro, glio_couplings={"syn": np.ones((2, 3))})
    with pytest.raises(ValueError, match="already has a signal of the network"):
        anet.step(anet.init(1.0), 1.0, key=jax.random.key(0), signals={"syn": jnp.zeros(3)})
    plain = eqx.tree_at(lambda n: n.projections["syn"].stp, net, None, is_leaf=lambda x: x is None)
    plain_state = plain.init(1.0)
    with pytest.raises(ValueError, match="no gliotransmitter-modulated release"):
        with_astrocytes(plain, astro, glio_couplings={"syn": w})
    with pytest.raises(ValueError, match="no gliotransmitter-modulated release"):
        plain.step(plain_state, 1.0, key=jax.random.key(0), signals={"syn": jnp.zeros(3)})
    with pytest.raises(ValueError, match="unknown projection"):
        net.step(net.init(1.0), 1.0, key=jax.random.key(0), signals={"nope": jnp.zeros(3)})
    proj = net.projections["syn"]
    with pytest.raises(ValueError, match="TripartiteSynapse of size 4 but 3 presynaptic neurons"):
        Network(net.populations, {"syn": Projection("pre", "post", "e", proj.operator, stp=TripartiteSynapse(4))})
    with pytest.raises(ValueError, match="built for 3"):
        TripartiteSynapse(3).init(5)


def test_gchi_glutamate_drives_ip3():
    m = GChI(2)
    s, _ = jax.lax.scan(lambda s, _: m.step(s, jnp.array([0.0, 50.0]), 1.0), m.init(), None, length=2000)
    assert float(s.Gamma_A[1]) > float(s.Gamma_A[0])
    assert float(s.I[1]) > float(s.I[0])


def test_gap_junctions_conserve_and_diffuse():
    gj = GapJunctions.ring(5, F=0.002)
    ip3 = jnp.array([2.0, 0.1, 0.1, 0.1, 0.1])
    J = gj.flux(ip3)
    assert float(J.sum()) == pytest.approx(0.0, abs=1e-7)
    assert float(J[0]) < 0 and float(J[1]) > 0 and float(J[4]) > 0 and float(J[2]) == pytest.approx(0.0, abs=1e-7)
    m = GChI(5)
    s = m.init(I=ip3)
    s2, _ = m.step(s, None, 1.0, J_IP3=J)
    assert float(s2.I[1]) > float(m.step(s, None, 1.0)[0].I[1])


# ---------------------------------------------------------------- multi-rate --------------------

def test_multirate_equals_slow_model_with_binned_inputs():
    m = LiRinzel(4, delta_IP3=0.05)
    rng = np.random.default_rng(0)
    fast = (rng.random((5000, 4)) < 0.002).astype(np.float32)  # 0.1 ms steps, 500 ms
    mr = MultiRate(m, every=10)

    def body(s, x):
        s, out = mr.step(s, x, 0.1)
        return s, s.inner.Ca

    s_mr, ca_mr = jax.lax.scan(body, mr.init(), jnp.asarray(fast))
    s_slow, _, states = run_multirate(m, m.init(), jnp.asarray(fast), 0.1, 10)
    np.testing.assert_allclose(np.asarray(ca_mr)[9::10], np.asarray(states.Ca), rtol=1e-6)
    np.testing.assert_allclose(s_mr.inner.IP3, s_slow.IP3, rtol=1e-6)
    # and close to the single-rate 0.1 ms solution (spike timing shifted by < 1 ms)
    _, (_, ca_fast, _, _) = _run_lr(m, m.init(), fast, 0.1)
    np.testing.assert_allclose(np.asarray(ca_mr)[-1], np.asarray(ca_fast)[-1], rtol=5e-3)


def test_multirate_bad_input():
    with pytest.raises(ValueError, match="positive whole multiple"):
        MultiRate.from_dt(LiRinzel(1), 0.1, 0.25)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        MultiRate(LiRinzel(1), 0)


# ---------------------------------------------------------------- connectivity ------------------

def test_pool_block_and_random():
    assert astrocyte_pools(None, 8, 4, 1, "block")[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert astrocyte_pools(None, 2, 4, 2, "block").tolist() == [[0, 1], [2, 3]]
    pools = astrocyte_pools(jax.random.key(0), 50, 20, 5, "random")
    assert pools.shape == (50, 5) and all(len(set(p)) == 5 for p in pools)
    tri = tripartite_bernoulli_with_pool(jax.random.key(1), 200, 100, 50, p_primary=0.1, p_third_if_primary=0.5,
                                         pool_size=2, pool_type="random")
    post = np.asarray(tri.primary.indices)[:, 1]
    paired = tri.astro_of_synapse >= 0
    assert 0.4 < paired.mean() < 0.6
    assert all(a in tri.pools[p] for a, p in zip(tri.astro_of_synapse[paired], post[paired]))
    assert float(tri.pre_to_astro.data.sum()) == paired.sum() == float(tri.astro_to_post.data.sum())


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_post=10, n_astro=4, pool_size=1, pool_type="block"), "multiple of the number of astrocytes"),
    (dict(n_post=4, n_astro=10, pool_size=1, pool_type="block"), "multiple of the number of target neurons"),
    (dict(n_post=4, n_astro=8, pool_size=1, pool_type="block"), "needs pool_size = 2"),
    (dict(n_post=10, n_astro=5, pool_size=2, pool_type="block"), "needs pool_size = 1"),
    (dict(n_post=10, n_astro=5, pool_size=6, pool_type="random"), "between 1 and the number of astrocytes"),
    (dict(n_post=10, n_astro=5, pool_size=1, pool_type="ring"), "unknown pool_type"),
])
def test_pool_that_does_not_fit_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tripartite_bernoulli_with_pool(jax.random.key(0), 10, kwargs.pop("n_post"), kwargs.pop("n_astro"),
                                       p_primary=0.1, p_third_if_primary=0.5, **kwargs)


def test_bad_probabilities_rejected():
    with pytest.raises(ValueError, match="p_third_if_primary must be a probability"):
        tripartite_bernoulli_with_pool(jax.random.key(0), 10, 10, 10, p_primary=0.1, p_third_if_primary=1.5)


# ---------------------------------------------------------------- bad input ---------------------

@pytest.mark.parametrize("make, message", [
    (lambda: LiRinzel(2, rate_IP3R=-0.1), r"rate_IP3R \(1/ms\) must be >= 0"),
    (lambda: LiRinzel(2, Ca_tot=-2.0), r"Ca_tot \(µM\) must be > 0"),
    (lambda: LiRinzel(2, tau_IP3=0.0), r"tau_IP3 \(ms\) must be > 0"),
    (lambda: LiRinzel(2, IP3_0=np.nan), "NaN"),
    (lambda: LiRinzel(2).init(Ca=-0.1), "initial Ca must be a concentration >= 0"),
    (lambda: LiRinzel(2).init(IP3=[-1.0, 0.1]), "initial IP3 must be a concentration >= 0"),
    (lambda: LiRinzel(2).init(h=1.5), r"initial h must be in \[0, 1\]"),
    (lambda: LiRinzel(2, substeps=0), "substeps must be a positive integer"),
    (lambda: GChI(2, O_beta=-1.0), r"O_beta \(µM/ms\) must be >= 0"),
    (lambda: GChI(2).init(C=-1.0), "initial C must be a concentration >= 0"),
    (lambda: GChI(2, foo=1.0), "unknown parameter"),
    (lambda: TripartiteSynapse(2, Omega_c=-1.0), r"Omega_c \(1/ms\) must be > 0"),
    (lambda: TripartiteSynapse(2, U_0_star=1.5), r"U_0_star must be in \[0, 1\]"),
    (lambda: GapJunctions([[0, 0]], 3), "two different astrocytes"),
    (lambda: GapJunctions([[0, 5]], 3), "indices must be in"),
    (lambda: GapJunctions([[0, 1]], 3, F=-1.0), r"F \(µM/ms\) must be >= 0"),
    (lambda: GlobalAstrocyte(tau=-1.0), r"tau \(ms\) must be > 0"),
    (lambda: AstroSTDP(modulation=2.0), r"modulation must be in \[0, 1\]"),
])
def test_bad_input_messages(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------- network coupling --------------

def _small_astro_network(n=40, weight_sic=50.0):
    from brainsim.network import Network, Population, Projection
    from brainsim.neurons import LIF
    from brainsim.propagation import EventOperator
    from brainsim.synapses import CurrentOutput, Exponential, Receptor
    tri = tripartite_bernoulli_with_pool(jax.random.key(0), n, n, n // 2, p_primary=0.2, p_third_if_primary=1.0,
                                         pool_size=1, pool_type="block", weight=20.0, weight_sic=weight_sic)
    net = Network({"P": Population(LIF(n), {"e": Receptor(Exponential(5.0), CurrentOutput())})},
                  {"ee": Projection("P", "P", "e", EventOperator.from_sparse(tri.primary))})
    astro = MultiRate(LiRinzel(n // 2, delta_IP3=0.05), every=10)
    anet = with_astrocytes(net, astro, spike_couplings={"P": tri.pre_to_astro}, sic_couplings={"P": tri.astro_to_post},
                           initial={"IP3": 0.4})
    return anet, net, astro, tri


def test_astro_network_simulates_with_monitors():
    from brainsim.simulate import SpikeMonitor, StateMonitor, simulate
    anet, _, _, tri = _small_astro_network()
    assert list(anet.populations) == ["P", "astro"] and set(anet.projections) == {"ee", "P->astro", "astro->P"}
    result = simulate(anet, 200.0, 0.1, key=jax.random.key(1),
                      monitors=[SpikeMonitor("P"), StateMonitor("astro", "IP3", every=10)],
                      currents={"P": np.full((2000,), 400.0)})
    assert result.spikes["P"].mean_rate() > 1.0
    t, ip3 = result.traces["astro.IP3"]
    assert ip3.shape == (200, 20)
    np.testing.assert_allclose(ip3[0], 0.4)  # the population's initial conditions
    assert float(ip3[-1].max()) > 0.4  # glutamate from paired synapses raised IP3


def test_astro_network_matches_hand_coupled_loop():
    """The astrocyte population and its couplings in one Network give the same trajectory as the coupling written
    by hand around the neuronal network: spikes of step t raise IP3 in step t, the SIC of step t drives step t+1."""
    anet, net, astro, tri = _small_astro_network(weight_sic=400.0)
    dt, n_steps = 0.1, 3000
    drive = jnp.full((40,), 400.0)
    pre_to_astro, astro_to_post = tri.pre_to_astro.todense(), tri.astro_to_post.todense()

    def hand(carry, key):
        s, a, sic = carry
        s, spikes = net.step(s, dt, key=key, currents={"P": drive + sic @ astro_to_post})
        a, sic = astro.step(a, spikes["P"] @ pre_to_astro, dt)
        return (s, a, sic), (spikes["P"], a.inner.IP3, sic)

    def together(s, key):
        s, spikes = anet.step(s, dt, key=key, currents={"P": drive})
        return s, (spikes["P"], s.neurons["astro"].IP3, spikes["astro"])

    keys = jax.random.split(jax.random.key(3), n_steps)
    init = (net.init(dt), astro.init(IP3=0.4), jnp.zeros(20))
    _, (spk_h, ip3_h, sic_h) = jax.lax.scan(hand, init, keys)
    _, (spk_t, ip3_t, sic_t) = jax.lax.scan(together, anet.init(dt), keys)
    assert float(spk_h.sum()) > 100 and float(sic_h.max()) > 0  # the coupling acts in both directions
    first = int(np.argmax(np.asarray(spk_h != spk_t).any(1))) if bool((spk_h != spk_t).any()) else n_steps
    assert first > n_steps // 2  # float summation order may flip a spike late in a chaotic run, not early
    np.testing.assert_allclose(ip3_t[:first], ip3_h[:first], rtol=1e-5)
    np.testing.assert_allclose(sic_t[:first], sic_h[:first], rtol=1e-5, atol=1e-4)


def test_graded_projection_current():
    from brainsim.projections import GradedProjection
    from brainsim.core.contracts import StepContext
    from brainsim.synapses.kinetics import Instant
    w = sparse.BCOO((jnp.array([1.0, 2.0, 0.5]), jnp.array([[0, 0], [1, 0], [1, 2]])), shape=(2, 3))
    proj = GradedProjection("astro", "P", "sic", w)
    ctx = StepContext(dt=0.1, step=jnp.int32(0), spikes={"astro": jnp.array([3.0, 4.0])}, signals={})
    _, target = proj.deliver(None, jnp.zeros(3), Instant(), ctx)
    np.testing.assert_allclose(target, [3.0 + 8.0, 0.0, 2.0])
    assert proj.n_synapses == 3


def test_astro_network_shape_errors():
    from brainsim.network import Population
    from brainsim.neurons import LIF
    from brainsim.synapses import ConductanceOutput, Receptor
    from brainsim.synapses.kinetics import Exponential
    _, net, astro, tri = _small_astro_network()
    with pytest.raises(ValueError, match=r"projection 'P->astro' has weights of shape \(40, 7\)"):
        with_astrocytes(net, astro, spike_couplings={"P": sparse.BCOO.fromdense(jnp.ones((40, 7)))})
    with pytest.raises(ValueError, match="SIC coupling to unknown population 'Q'"):
        with_astrocytes(net, astro, sic_couplings={"Q": tri.astro_to_post})
    with pytest.raises(ValueError, match="'astro' is already a population"):
        with_astrocytes(with_astrocytes(net, astro), astro)
    with pytest.raises(ValueError, match="must be voltage-independent"):
        Population(astro, {"g": Receptor(Exponential(5.0), ConductanceOutput(0.0))})
    with pytest.raises(ValueError, match=r"initial conditions \['v0'\] do not fit LiRinzel"):
        Population(LiRinzel(2), initial={"v0": 1.0})
    with pytest.raises(TypeError, match="astrocyte model"):
        MultiRate(LIF(2), every=2)


# ---------------------------------------------------------------- plasticity --------------------

def test_branching_factor():
    assert branching_factor([2, 2, 2, 2]) == pytest.approx(1.0)
    assert branching_factor([1, 2, 4, 8]) == pytest.approx(2.0)
    assert branching_factor(np.array([[4, 2, 1, 0, 0]])) == pytest.approx(1 / 3)  # 2/4, 1/2, 0/1


def test_astro_stdp_depresses_overactive_liquid():
    n = 20
    W0 = jnp.full((n, n), 0.5) * (1 - jnp.eye(n))
    mask = (1 - jnp.eye(n))
    rng = np.random.default_rng(0)
    spikes = jnp.asarray((rng.random((300, n)) < 0.3).astype(np.float32))  # very active, no input
    results = {}
    for m in (0.0, 1.0):
        rule = AstroSTDP(A_plus=0.01, A_minus=0.01, modulation=m, astrocyte=GlobalAstrocyte(tau=20.0))
        st, W = rule.init(n), W0
        for t in range(1, 300):
            st, W = rule.step(st, W, mask, spikes[t - 1], spikes[t], jnp.asarray(0.0), 1.0)
        results[m] = float(W.sum())
        assert float(st.A) < 0
    assert results[1.0] < results[0.0]


# ---------------------------------------------------------------- gradients ---------------------

def test_gradient_li_rinzel_matches_finite_difference():
    with jax.enable_x64(True):
        ca_target = 0.3

        def loss(rate_serca):
            m = LiRinzel(1, rate_SERCA=rate_serca)
            _, (_, ca, _, _) = _run_lr(m, m.init(IP3=1.0, Ca=1.0, h=1.0), np.zeros((200, 1)), 10.0)
            return jnp.mean((ca - ca_target) ** 2)

        x = jnp.asarray(0.0009, jnp.float64)
        g = jax.grad(loss)(x)
        eps = 1e-8
        fd = (loss(x + eps) - loss(x - eps)) / (2 * eps)
        assert float(g) == pytest.approx(float(fd), rel=1e-4)


def test_gradient_through_gliotransmitter_threshold():
    def total_release(C_Theta):
        m = GChI(1, C_Theta=C_Theta, smooth=0.02)
        s = m.init(I=1.0, C=0.1)

        def body(s, _):
            s, rel = m.step(s, None, 10.0)
            return s, rel
        _, rel = jax.lax.scan(body, s, None, length=300)
        return rel.sum()
    g = jax.grad(total_release)(jnp.asarray(0.3))
    assert np.isfinite(float(g)) and float(g) != 0.0


def test_astro_lif_layer_trains():
    from brainsim.train.layers import LeakyReadout, Sequential
    key = jax.random.key(0)
    k1, k2 = jax.random.split(key)
    net = Sequential([AstroLIFLayer(4, 8, key=k1, gain_astro=0.5, local=True), LeakyReadout(8, 2, key=k2)])
    xs = jnp.asarray((np.random.default_rng(0).random((30, 4)) < 0.4).astype(np.float32)) * 3.0

    def loss(model):
        out, _ = model(xs)
        return jnp.mean((out[-1] - jnp.array([1.0, -1.0])) ** 2)

    grads = eqx.filter_grad(loss)(net)
    g_gain = grads.layers[0].neuron.gain_astro.raw  # declared learnable (Constrained)
    assert np.all(np.isfinite(np.asarray(g_gain))) and float(jnp.abs(g_gain).sum()) > 0
    from brainsim.train import trainable
    spec = trainable(net).layers[0].neuron
    assert spec.gain_astro.raw is True and spec.tau_astro.raw is True
