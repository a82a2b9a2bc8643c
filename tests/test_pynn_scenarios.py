"""PyNN's own system-test scenarios run against the brainsim PyNN backend, plus direct tests of the backend.

Every scenario function of the PyNN sdist's ``test/system/scenarios`` is called with ``sim=brainsim.pynn``
and is passed, failed, or not applicable (a feature brainsim cannot represent, or the scenario skips itself);
the table is printed and at least 80 % of the applicable scenarios must pass.
"""
import numpy as np
import pytest

pytest.importorskip("pyNN")
pytest.importorskip("neo")

import brainsim as bs  # noqa: E402
import brainsim.pynn as sim  # noqa: E402

from pynn_support import run_all, scenario_dir, table  # noqa: E402

PASS_FRACTION = 0.80


@pytest.fixture(scope="module")
def system_dir(tmp_path_factory):
    try:
        return scenario_dir(tmp_path_factory.mktemp("pynn_sdist"))
    except LookupError as e:
        pytest.skip(str(e))


def test_pynn_scenarios(system_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # scenarios that save to files write under ./Results
    rows = run_all(system_dir, sim)
    with capsys.disabled():
        print("\n" + table(rows))
    applicable = [r for r in rows if r[2] != "not applicable"]
    passed = [r for r in applicable if r[2] == "passed"]
    failed = [f"{m}::{n}: {why}" for m, n, s, why, _ in applicable if s == "failed"]
    fraction = len(passed) / max(len(applicable), 1)
    with capsys.disabled():
        print(f"\npassed {len(passed)} of {len(applicable)} applicable scenarios ({fraction:.0%}); "
              f"{len(rows) - len(applicable)} not applicable")
    assert fraction >= PASS_FRACTION, "failed scenarios:\n" + "\n".join(failed)


def test_unit_conversions():
    """cm nF -> pF, i_offset nA -> pA, weights nA -> pA and uS -> nS."""
    sim.setup(timestep=0.1)
    p = sim.Population(1, sim.IF_cond_exp(cm=0.25, tau_m=10.0, e_rev_E=5.0))
    model, receptors = p.celltype.brainsim_model(p._native_values(), 1)
    assert float(np.asarray(model.C_m).ravel()[0]) == pytest.approx(250.0)
    assert float(receptors["excitatory"].output.E_rev) == pytest.approx(5.0)
    assert p.celltype.weight_scale == 1000.0
    assert sim.Izhikevich().weight_scale == 1.0
    sim.end()


def test_dc_source_matches_brainsim_lif():
    """IF_curr_exp driven by a DCSource = brainsim's LIF with the same current (pA) step by step."""
    dt, T, amp = 0.1, 100.0, 0.8
    sim.setup(timestep=dt)
    cell = sim.Population(1, sim.IF_curr_exp(tau_m=20.0, cm=1.0, v_rest=-65.0, v_thresh=-55.0, v_reset=-70.0,
                                             tau_refrac=2.0))
    sim.DCSource(amplitude=amp, start=10.0, stop=80.0).inject_into(cell)
    cell.record(["v", "spikes"])
    sim.run(T)
    data = cell.get_data().segments[0]
    v_pynn = np.asarray(data.analogsignals[0].magnitude)[:, 0]
    spikes_pynn = np.asarray(data.spiketrains[0].magnitude)
    sim.end()

    n = int(round(T / dt))
    t = np.arange(n) * dt
    lif = bs.LIF(1, tau_m=20.0, C_m=1000.0, v_rest=-65.0, v_th=-55.0, v_reset=-70.0, t_ref=2.0, method="exact",
                 refractory_convention="nest")
    net = bs.Network({"n": bs.Population(lif, {"e": bs.Receptor(bs.Exponential(5.0), bs.CurrentOutput())})})
    current = np.where((t >= 10.0) & (t < 80.0), amp * 1000.0, 0.0)[:, None]
    import jax
    res = bs.simulate(net, T, dt, key=jax.random.key(0), currents={"n": current},
                      monitors=[bs.StateMonitor("n", "v"), bs.SpikeMonitor("n")], progress=False)
    v_bs = res.traces["n.v"][1][:, 0]
    assert len(spikes_pynn) > 0
    np.testing.assert_allclose(v_pynn[:n], v_bs, atol=1e-4)
    np.testing.assert_allclose(spikes_pynn, res.spikes["n"].times + dt, atol=1e-6)


def test_continuing_runs_equal_one_run():
    """run(50); run(50) gives the same spikes and membrane trace as run(100)."""
    def once(chunks):
        sim.setup(timestep=0.1)
        src = sim.Population(5, sim.SpikeSourceArray(spike_times=[[3.0, 40.0, 77.0]] * 5))
        cells = sim.Population(3, sim.IF_cond_exp(i_offset=0.3))
        sim.Projection(src, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.01, delay=1.5))
        cells.record(["v", "spikes"])
        for c in chunks:
            sim.run(c)
        seg = cells.get_data().segments[0]
        out = np.asarray(seg.analogsignals[0].magnitude), [np.asarray(s) for s in seg.spiketrains]
        sim.end()
        return out
    v1, s1 = once([100.0])
    v2, s2 = once([50.0, 50.0])
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    for a, b in zip(s1, s2):
        np.testing.assert_allclose(a, b)


def test_reset_starts_new_segment():
    sim.setup(timestep=0.1)
    cells = sim.Population(1, sim.IF_curr_exp(i_offset=1.0))
    cells.record("spikes")
    sim.run(50.0)
    sim.reset()
    assert sim.get_current_time() == 0.0
    sim.run(50.0)
    segs = cells.get_data().segments
    assert len(segs) == 2
    assert len(segs[0].spiketrains[0]) > 0
    np.testing.assert_allclose(segs[0].spiketrains[0].magnitude, segs[1].spiketrains[0].magnitude)
    sim.end()
