"""Parameter editing (``with_params``) and vectorised sweeps (``sweep``) with decoded results."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import brainsim as bs


def _net(n=20):
    lif = bs.LIF(n, tau_m=20.0, C_m=200.0, v_rest=-65.0, v_th=-50.0, v_reset=-65.0, t_ref=2.0)
    return bs.Network({"E": bs.Population(lif, {"ge": bs.Receptor(bs.Exponential(5.0), bs.ConductanceOutput(0.0))})},
                      drives=[bs.PoissonInput("E", "ge", 50, 20.0, 1.0)])


def test_with_params_replaces_broadcasts_and_checks():
    net = _net()
    slow = bs.with_params(net, {"populations.E.model.tau_m": 30.0, "drives.0.rate": lambda r: 2 * r})
    np.testing.assert_allclose(slow.populations["E"].model.tau_m, 30.0)
    assert float(slow.drives[0].rate) == 40.0
    np.testing.assert_allclose(net.populations["E"].model.tau_m, 20.0)  # the original is untouched
    per_neuron = bs.with_params(net, {"populations.E.model.tau_m": np.linspace(10, 30, 20)})
    assert per_neuron.populations["E"].model.tau_m.shape == (20,)
    with pytest.raises(ValueError, match="does not name a part"):
        bs.with_params(net, {"populations.I.model.tau_m": 1.0})
    with pytest.raises(ValueError, match="not an array parameter"):
        bs.with_params(net, {"populations.E.model.size": 3})
    with pytest.raises(ValueError, match="has shape"):
        bs.with_params(net, {"populations.E.model.tau_m": np.ones(3)})
    with pytest.raises(ValueError, match="NaN"):
        bs.with_params(net, {"populations.E.model.tau_m": float("nan")})


def test_sweep_equals_one_simulation_per_set():
    net = _net()
    rates = [10.0, 20.0, 40.0]
    results = bs.sweep(net, {"drives.0.rate": rates}, 300.0, 0.1, key=jax.random.key(0),
                       monitors=[bs.SpikeMonitor("E"), bs.StateMonitor("E", "v", every=10, indices=[0])])
    assert len(results) == 3
    means = [r.spikes["E"].mean_rate() for r in results]
    assert means[0] < means[1] < means[2]  # more drive, more spikes
    for rate, r in zip(rates, results):
        one = bs.simulate(bs.with_params(net, {"drives.0.rate": rate}), 300.0, 0.1, key=jax.random.key(0),
                          monitors=[bs.SpikeMonitor("E")])
        np.testing.assert_array_equal(r.spikes["E"].times, one.spikes["E"].times)
        np.testing.assert_array_equal(r.spikes["E"].indices, one.spikes["E"].indices)
        assert float(r.params["drives.0.rate"]) == rate
        times, v = r.traces["E.v"]
        assert v.shape == (300, 1) and times[1] == pytest.approx(1.0)


def test_sweep_errors():
    net = _net()
    with pytest.raises(ValueError, match="same, nonzero number"):
        bs.sweep(net, {"drives.0.rate": [1.0, 2.0], "populations.E.model.tau_m": [10.0]}, 10.0, 0.1,
                 key=jax.random.key(0))
    with pytest.raises(TypeError, match="SpikeMonitor or StateMonitor"):
        bs.sweep(net, {"drives.0.rate": [1.0]}, 10.0, 0.1, key=jax.random.key(0), monitors=[bs.RateMonitor("E")])


def test_networks_are_immutable_all_the_way_down():
    net = _net()
    with pytest.raises(TypeError, match="read-only"):
        net.populations["I"] = net.populations["E"]
    with pytest.raises(TypeError, match="read-only"):
        net.populations["E"].receptors["gi"] = net.populations["E"].receptors["ge"]
    with pytest.raises(TypeError, match="read-only"):
        net.projections.update({})
    assert list(net.populations) == ["E"]
