"""``SimulationResult.to_neo()`` read by Elephant: its mean rates, CVs and correlation coefficients agree with
brainsim's own statistics, and traces keep their units."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import brainsim as bs

neo = pytest.importorskip("neo")
elephant = pytest.importorskip("elephant")
import quantities as pq  # noqa: E402  (installed with neo)
from elephant.conversion import BinnedSpikeTrain  # noqa: E402
from elephant.spike_train_correlation import correlation_coefficient  # noqa: E402
from elephant.statistics import cv, isi, mean_firing_rate  # noqa: E402


@pytest.fixture(scope="module")
def result():
    n = 60
    lif = bs.LIF(n, tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0)
    net = bs.Network({"E": bs.Population(lif, {"ge": bs.Receptor(bs.Exponential(5.0), bs.ConductanceOutput(0.0))})},
                     {"EE": bs.Projection("E", "E", "ge", bs.connectivity.fixed_probability(
                         jax.random.key(0), n, n, 0.1, 0.5, autapses=False))},
                     drives=[bs.PoissonInput("E", "ge", 100, 10.0, 1.0)])
    return bs.simulate(net, 1000.0, 0.1, key=jax.random.key(1), state=net.init(0.1),
                       monitors=[bs.SpikeMonitor("E"), bs.StateMonitor("E", "v", every=10, indices=[0, 1]),
                                 bs.StateMonitor("E", "ge", every=10, indices=[0]), bs.RateMonitor("E")])


def test_spike_trains_and_statistics_agree_with_elephant(result):
    trains = result.spikes["E"]
    block = result.to_neo()
    sts = block.segments[0].spiketrains
    assert len(sts) == 60 and sts[5].annotations == {"population": "E", "neuron": 5}
    assert sts[0].t_stop == 1000.0 * pq.ms and sts[0].units == pq.ms
    rates = np.array([float(mean_firing_rate(st).rescale("Hz")) for st in sts])
    np.testing.assert_allclose(rates, trains.counts() / 1.0)
    assert 2.0 < trains.mean_rate() < 100.0
    np.testing.assert_allclose(rates.mean(), trains.mean_rate())
    cvs = [cv(isi(st)) for st in sts if len(st) >= 3]
    np.testing.assert_allclose(np.mean(cvs), trains.cv_isi(), rtol=1e-6)
    cc = correlation_coefficient(BinnedSpikeTrain(sts[:10], bin_size=5 * pq.ms))
    ours = bs.monitors.SpikeTrains(trains.times, trains.indices, trains.size, trains.duration,
                                   neurons=np.arange(10)).correlation(5.0)
    np.testing.assert_allclose(cc, ours, atol=1e-9)


def test_traces_keep_their_units_and_times(result):
    signals = {s.name: s for s in result.to_neo(units={"E.ge": "nS"}).segments[0].analogsignals}
    v = signals["E.v"]
    assert v.units == pq.mV and v.shape == (1000, 2) and v.sampling_period == 1.0 * pq.ms
    np.testing.assert_allclose(np.asarray(v), result.traces["E.v"][1])
    assert signals["E.ge"].units == pq.nS
    assert signals["E.rate"].units == pq.Hz and signals["E.rate"].shape == (10000, 1)
