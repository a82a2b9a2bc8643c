"""Monitors of every part of a network: receptor conductances, projection state (learned weights of chosen
synapses, short-term plasticity variables), spike subsets, per-neuron spike trains."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import brainsim as bs
from brainsim.connectivity import fixed_probability
from brainsim.plasticity.stdp import STDP

DT = 0.1


def _driven(receptor_kinetics=None, stp=None):
    """Two spike sources -> 3 LIF neurons through a conductance receptor; source 0 fires at 1 ms and 6 ms."""
    receptor = bs.Receptor(receptor_kinetics or bs.Exponential(5.0), bs.ConductanceOutput(0.0))
    weights = bs.connectivity.from_indices([0, 0, 1], [0, 2, 1], 2, 3, [2.0, 3.0, 4.0])
    return bs.Network({"src": bs.Population(bs.SpikeTimes(2, [1.0, 6.0], [0, 0], DT)),
                       "n": bs.Population(bs.LIF(3, v_th=1e9), {"ge": receptor})},
                      {"syn": bs.Projection("src", "n", "ge", weights, stp=stp)})


def test_receptor_conductance_is_recorded_like_a_state_variable():
    net = _driven()
    result = bs.simulate(net, 10.0, DT, key=jax.random.key(0), monitors=[bs.StateMonitor("n", "ge")])
    times, g = result.traces["n.ge"]
    assert g.shape == (100, 3)
    # the spike of step 10 arrives at its end: recorded from the start of step 11, then decays with tau = 5 ms
    k = np.arange(11, 60)
    expected0 = 2.0 * np.exp(-(k - 11) * DT / 5.0)
    np.testing.assert_allclose(g[11:60, 0], expected0, rtol=1e-5)
    np.testing.assert_allclose(g[11:60, 2], 1.5 * expected0, rtol=1e-5)
    assert np.all(g[:11] == 0) and np.all(g[:, 1] == 0)  # neuron 1 hears source 1, which is silent
    # the second spike adds to what is left
    np.testing.assert_allclose(g[61, 0], 2.0 + 2.0 * np.exp(-50 * DT / 5.0), rtol=1e-5)


def test_receptor_of_a_two_state_kinetics_records_its_conductance():
    net = _driven(bs.Alpha(2.0))
    _, g = bs.simulate(net, 10.0, DT, key=jax.random.key(0), monitors=[bs.StateMonitor("n", "ge", indices=[0])]
                       ).traces["n.ge"]
    peak = int(np.argmax(g[:60, 0]))
    assert g.shape == (100, 1) and 11 + 15 <= peak <= 11 + 25  # alpha peaks tau = 2 ms after arrival


def test_short_term_plasticity_state_per_presynaptic_neuron():
    stp = bs.TsodyksMarkram(U=0.3, tau_f=50.0, tau_d=200.0)
    net = _driven(stp=stp)
    result = bs.simulate(net, 10.0, DT, key=jax.random.key(0),
                         monitors=[bs.ProjectionMonitor("syn", "stp.x", every=5),
                                   bs.ProjectionMonitor("syn", "stp.u", indices=[0])])
    times, x = result.traces["syn.stp.x"]
    assert x.shape == (20, 2) and np.allclose(times[:3], [0.5, 1.0, 1.5])  # recorded after every 5th step
    assert x[0, 0] == 1.0 and x[-1, 0] < 0.6  # two releases deplete source 0's resources
    np.testing.assert_allclose(x[:, 1], 1.0)  # source 1 never fires
    _, u = result.traces["syn.stp.u"]
    assert u.shape == (100, 1) and u[-1, 0] > u[20, 0] > 0.0  # facilitation after the second spike


def test_learned_weights_of_chosen_synapses_over_time():
    cur = {"i": bs.Receptor(bs.Exponential(5.0), bs.CurrentOutput())}
    w_in = fixed_probability(jax.random.key(0), 40, 20, 0.5, lambda r, n: r.uniform(20.0, 60.0, n))
    net = bs.Network({"in": bs.Population(bs.PoissonSource(40, 40.0)),
                      "hid": bs.Population(bs.LIF(20, tau_m=10.0, C_m=100.0, v_rest=-70.0, v_th=-55.0,
                                                  v_reset=-70.0), cur)},
                     {"stdp": bs.Projection("in", "hid", "i", w_in, plasticity=STDP(A_plus=0.5, A_minus=0.55,
                                                                                  w_max=100.0))})
    pre, post = np.asarray(w_in.indices[:3]).T
    pairs = list(zip(pre.tolist(), post.tolist()))
    result = bs.simulate(net, 200.0, 0.5, key=jax.random.key(1),
                         monitors=[bs.ProjectionMonitor("stdp", "rule.weights", synapses=pairs, every=10)])
    times, w = result.traces["stdp.rule.weights"]
    assert w.shape == (40, 3) and times[-1] == 200.0
    np.testing.assert_allclose(w[0], np.asarray(w_in.data[:3]), atol=2.0)  # near the start after 10 steps
    learned = net.projections["stdp"].learned(result.state.projections["stdp"])
    dense, _ = np.asarray(learned.weights), None
    final = [float(dense[p][np.nonzero(np.asarray(learned.targets)[p] == q)[0][0]]) for p, q in pairs]
    np.testing.assert_allclose(w[-1], final)  # the last record is the final state's weights
    assert np.any(np.abs(w[-1] - w[0]) > 0.1)  # they changed
    with pytest.raises(ValueError, match="no synapse"):
        missing = next((p, q) for p in range(40) for q in range(20)
                       if not np.any((np.asarray(w_in.indices) == [p, q]).all(axis=1)))
        bs.simulate(net, 1.0, 0.5, key=jax.random.key(1),
                    monitors=[bs.ProjectionMonitor("stdp", "rule.weights", synapses=[missing])])


def test_spike_subset_and_trains():
    net = bs.Network({"p": bs.Population(bs.PoissonSource(50, 40.0))})
    full = bs.simulate(net, 500.0, DT, key=jax.random.key(2), monitors=[bs.SpikeMonitor("p")]).spikes["p"]
    some = bs.simulate(net, 500.0, DT, key=jax.random.key(2),
                       monitors=[bs.SpikeMonitor("p", indices=[3, 7, 11])]).spikes["p"]
    all_trains = full.trains()
    assert len(all_trains) == 50 and set(some.trains()) == {3, 7, 11}
    for n, t in some.trains().items():
        np.testing.assert_array_equal(t, all_trains[n])
    np.testing.assert_array_equal(some.counts(), full.counts()[[3, 7, 11]])
    np.testing.assert_allclose(some.mean_rate(), np.mean(full.counts()[[3, 7, 11]]) / 0.5)


def test_monitor_errors():
    net = _driven()
    with pytest.raises(ValueError, match="unknown projection 'nope'"):
        bs.simulate(net, 1.0, DT, key=jax.random.key(0), monitors=[bs.ProjectionMonitor("nope", "x")])
    with pytest.raises(ValueError, match="has no 'rule.weights'"):
        bs.simulate(net, 1.0, DT, key=jax.random.key(0), monitors=[bs.ProjectionMonitor("syn", "rule.weights")])
    with pytest.raises(ValueError, match="no variable 'gx'"):
        bs.simulate(net, 1.0, DT, key=jax.random.key(0), monitors=[bs.StateMonitor("n", "gx")])
    with pytest.raises(ValueError, match="synapses or indices"):
        bs.ProjectionMonitor("syn", "x", synapses=[(0, 1)], indices=[0])
    with pytest.raises(ValueError, match="indices out of range"):
        bs.simulate(net, 1.0, DT, key=jax.random.key(0), monitors=[bs.SpikeMonitor("n", indices=[5])])


def test_long_format_tables():
    net = _driven()
    result = bs.simulate(net, 10.0, DT, key=jax.random.key(0),
                         monitors=[bs.SpikeMonitor("src"), bs.StateMonitor("n", "ge", every=10)])
    spikes = result.table("spikes")
    assert spikes["population"].tolist() == ["src", "src"] and spikes["neuron"].tolist() == [0, 0]
    np.testing.assert_allclose(spikes["time_ms"], [1.0, 6.0])
    traces = result.table("traces")
    assert len(traces["value"]) == 10 * 3 and set(traces["element"].tolist()) == {0, 1, 2}
    t, g = result.traces["n.ge"]
    np.testing.assert_allclose(traces["value"][traces["element"] == 2], g[:, 2])
    with pytest.raises(ValueError, match="section"):
        result.table("weights")
