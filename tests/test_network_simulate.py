"""Network step and simulate: delays, monitors, chunking, determinism, vmap, inputs, compile-once, errors."""
import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainsim as bs
from brainsim import connectivity as conn
from brainsim.inputs import CurrentStep, PoissonInput, PoissonSource, SpikeTimes
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF
from brainsim.simulate import RateMonitor, SpikeMonitor, StateMonitor, run, simulate
from brainsim.synapses import AMPA, Delta, Exponential, Receptor, CurrentOutput, TsodyksMarkram

simulate_module = importlib.import_module("brainsim.simulate")  # the module: brainsim.simulate is the function

DT = 0.1


def _relay(delay=0.0, stp=None):
    """A spike source -> one LIF through a delta synapse (a 30 mV kick), so each input spike causes one output spike."""
    source = SpikeTimes(1, times=[1.0, 5.0], indices=[0, 0], dt=DT)
    target = LIF(1, tau_m=10.0, C_m=100.0, v_rest=-70, v_th=-50, v_reset=-70, t_ref=0.0)
    rec = {"I": Receptor(Delta(), CurrentOutput())}
    proj = Projection("src", "out", "I", conn.one_to_one(1, 3000.0), delay=delay, stp=stp)
    return Network({"src": Population(source), "out": Population(target, rec)}, {"p": proj})


def test_homogeneous_delay_is_exact_in_steps():
    for delay in (0.0, 0.3, 2.0):
        res = simulate(_relay(delay), 10.0, DT, key=jax.random.key(0), monitors=[SpikeMonitor("src"), SpikeMonitor("out")])
        src, out = res.spikes["src"].times, res.spikes["out"].times
        np.testing.assert_allclose(src, [1.0, 5.0], atol=1e-9)
        # arrival at the end of step (emission + delay); the target crosses threshold one step later
        np.testing.assert_allclose(out, src + delay + DT, atol=1e-6)


def test_stp_scales_delivery():
    stp = TsodyksMarkram(U=0.5, tau_f=1e-3, tau_d=1e4)  # pure depression, no recovery
    net = _relay(stp=stp)
    state = net.init(DT)
    state, _ = run(net, state, 30, DT, key=jax.random.key(0))
    # one spike at 1 ms: u jumps to U + U (1 - U) = 0.75 and releases u x = 0.75 of the resources
    assert float(state.projections["p"].stp.x[0]) == pytest.approx(0.25, rel=1e-3)  # tau_d = 10 s: ~1e-4 recovery in 2 ms


def _poisson_net(rate=20.0, n=50):
    src = PoissonSource(200, rate)
    lif = LIF(n, tau_m=20.0, C_m=200.0, v_rest=-60, v_th=-50, v_reset=-60, t_ref=2.0)
    proj = Projection("in", "E", "ge", conn.fixed_probability(jax.random.key(1), 200, n, 0.2, 3.0))
    return Network({"in": Population(src), "E": Population(lif, {"ge": AMPA()})}, {"in_E": proj},
                   drives=[PoissonInput("E", "ge", 100, 5.0, 1.0)])


def test_chunking_does_not_change_results_and_is_deterministic():
    net = _poisson_net()
    mons = [SpikeMonitor("E"), StateMonitor("E", "v", every=5, indices=(0, 3)), RateMonitor("in")]
    a = simulate(net, 100.0, DT, key=jax.random.key(3), monitors=mons)
    b = simulate(net, 100.0, DT, key=jax.random.key(3), monitors=mons, chunk_steps=150, progress=False)
    c = simulate(net, 100.0, DT, key=jax.random.key(4), monitors=mons)
    np.testing.assert_array_equal(a.spikes["E"].indices, b.spikes["E"].indices)
    np.testing.assert_allclose(a.spikes["E"].times, b.spikes["E"].times)
    np.testing.assert_allclose(a.traces["E.v"][1], b.traces["E.v"][1], rtol=1e-6)
    assert a.traces["E.v"][1].shape == (200, 2)
    np.testing.assert_allclose(a.traces["E.v"][0][:3], [0.0, 0.5, 1.0])
    assert len(a.spikes["E"].times) > 0
    assert not np.array_equal(a.spikes["E"].times, c.spikes["E"].times)
    rate_t, rate = a.rates["in"]
    assert rate.shape == (1000,) and abs(rate.mean() - 20.0) < 4.0  # 200 sources × 20 Hz × 0.1 s = 400 spikes


def test_poisson_input_mean_drive():
    net = _poisson_net()
    drive = net.drives[0]
    counts = drive.arrivals(20000, 0.1, jax.random.key(0))
    # 100 sources × 5 Hz × 0.1 ms = 0.05 expected arrivals per step, weight 1 nS
    assert abs(float(counts.mean()) - 0.05) < 0.01


def test_current_step_and_current_arrays():
    lif = LIF(2, tau_m=10.0, C_m=100.0, v_rest=-70, v_th=0.0, v_reset=-70)
    net = Network({"L": Population(lif)}, drives=[CurrentStep("L", 100.0, start=5.0, stop=10.0)])
    mon = [StateMonitor("L", "v")]
    res = simulate(net, 20.0, DT, key=jax.random.key(0), monitors=mon)
    t, v = res.traces["L.v"]
    assert np.all(v[t <= 5.0] == -70.0) and v[t == 10.0][0, 0] > -70.0 + 3.0
    currents = np.zeros((200, 2), np.float32)
    currents[50:100, 1] = 100.0
    res2 = simulate(Network({"L": Population(lif)}), 20.0, DT, key=jax.random.key(0), monitors=mon,
                    currents={"L": currents})
    np.testing.assert_allclose(res2.traces["L.v"][1][:, 1], v[:, 1], atol=1e-4)
    assert np.all(res2.traces["L.v"][1][:, 0] == -70.0)


def test_run_vmaps_over_trials_and_parameters():
    net = _poisson_net(n=20)
    state = net.init(DT)
    keys = jax.random.split(jax.random.key(0), 3)

    def trial_rate(key):
        _, (spikes,) = run(net, state, 500, DT, key=key, monitors=[SpikeMonitor("E")])
        return spikes.mean() * 1e4

    rates = jax.jit(jax.vmap(trial_rate))(keys)
    assert rates.shape == (3,) and len(set(np.asarray(rates).tolist())) > 1

    def sweep(tau):
        swept = eqx.tree_at(lambda n: n.populations["E"].model.tau_m, net, jnp.full((20,), tau))
        _, (spikes,) = run(swept, state, 500, DT, key=keys[0], monitors=[SpikeMonitor("E")])
        return spikes.mean() * 1e4

    swept = jax.vmap(sweep)(jnp.array([5.0, 40.0]))
    assert float(swept[1]) > float(swept[0])  # longer membrane integration -> more spikes


def test_simulate_compiles_once_per_chunk_shape(caplog):
    net = _poisson_net(n=10)

    @eqx.debug.assert_max_traces(max_traces=1)
    def chunk(state, key):
        return run(net, state, 100, DT, key=key)

    state = net.init(DT)
    for i in range(3):
        state, _ = eqx.filter_jit(chunk)(state, jax.random.key(i))
    # simulate: 1000 steps in chunks of 250 -> one compilation
    simulate_module._COMPILED_CHUNKS.clear()
    with jax.log_compiles(), caplog.at_level("WARNING", logger="jax"):  # XLA compilations of the chunk function
        res = simulate(net, 100.0, DT, key=jax.random.key(0), chunk_steps=250, monitors=[SpikeMonitor("E")])
    logs = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Finished XLA compilation of jit(chunk_fn)") for m in logs) == 1, logs
    assert len(simulate_module._COMPILED_CHUNKS) == 1
    assert res.compile_s > 0 and res.run_s > 0


def test_simulate_reuses_compilation_for_the_same_structure():
    # a second simulation of a network of the same structure (other weights: arrays are arguments) skips
    # compilation and gives the same result as a freshly compiled run
    net = _poisson_net(n=10)
    mons = [SpikeMonitor("E"), StateMonitor("E", "v", every=5)]
    simulate_module._COMPILED_CHUNKS.clear()
    first = simulate(net, 50.0, DT, key=jax.random.key(1), monitors=mons)
    again = simulate(net, 50.0, DT, key=jax.random.key(1), monitors=mons)
    assert first.compile_s > 0 and again.compile_s == 0.0
    np.testing.assert_array_equal(first.spikes["E"].indices, again.spikes["E"].indices)
    heavier = jax.tree_util.tree_map(lambda a: a * 1.5 if eqx.is_inexact_array(a) and a.ndim == 2 else a, net)
    cached = simulate(heavier, 50.0, DT, key=jax.random.key(1), monitors=mons)
    assert cached.compile_s == 0.0
    simulate_module._COMPILED_CHUNKS.clear()
    fresh = simulate(heavier, 50.0, DT, key=jax.random.key(1), monitors=mons)
    assert fresh.compile_s > 0
    np.testing.assert_array_equal(cached.spikes["E"].indices, fresh.spikes["E"].indices)
    np.testing.assert_allclose(cached.traces["E.v"][1], fresh.traces["E.v"][1], rtol=1e-6)


def test_bad_inputs_give_clear_errors():
    net = _poisson_net(n=5)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="dt must be > 0 ms"):
        simulate(net, 10.0, 0.0, key=key)
    with pytest.raises(ValueError, match="dt must be > 0 ms"):
        simulate(net, 10.0, -0.1, key=key)
    with pytest.raises(ValueError, match="duration must be > 0 ms"):
        simulate(net, -1.0, DT, key=key)
    with pytest.raises(ValueError, match="duration must be > 0 ms"):
        simulate(net, float("nan"), DT, key=key)
    with pytest.raises(ValueError, match="unknown population 'X'"):
        simulate(net, 1.0, DT, key=key, monitors=[SpikeMonitor("X")])
    with pytest.raises(ValueError, match="has no variable 'w'"):
        simulate(net, 1.0, DT, key=key, monitors=[StateMonitor("E", "w")])
    with pytest.raises(ValueError, match=r"currents\['E'\] has shape \(3,\)"):
        simulate(net, 1.0, DT, key=key, currents={"E": np.zeros(3)})
    with pytest.raises(ValueError, match="NaN"):
        simulate(net, 1.0, DT, key=key, currents={"E": np.full(10, np.nan)})
    with pytest.raises(ValueError, match="every must be a positive integer"):
        StateMonitor("E", "v", every=0)
    lif = LIF(3)
    with pytest.raises(ValueError, match="unknown receptor 'gx'"):
        Network({"A": Population(lif, {"ge": AMPA()})},
                {"p": Projection("A", "A", "gx", conn.one_to_one(3))})
    with pytest.raises(ValueError, match="unknown pre population 'B'"):
        Network({"A": Population(lif, {"ge": AMPA()})}, {"p": Projection("B", "A", "ge", conn.one_to_one(3))})
    with pytest.raises(ValueError, match=r"weights of shape \(4, 4\) but A->A needs \(3, 3\)"):
        Network({"A": Population(lif, {"ge": AMPA()})}, {"p": Projection("A", "A", "ge", conn.one_to_one(4))})
    with pytest.raises(ValueError, match="delay must be >= 0 ms"):
        Projection("A", "A", "ge", conn.one_to_one(3), delay=-1.0)
    with pytest.raises(ValueError, match="a neuron has two spikes in the same time step"):
        SpikeTimes(2, [1.0, 1.01], [0, 0], dt=0.1)
    with pytest.raises(ValueError, match="has no membrane"):
        Population(PoissonSource(3, 5.0), {"ge": AMPA()})


def test_packed_spike_records_decode_to_the_raster():
    from brainsim.monitors import decode_spikes as _decode_spikes

    rng = np.random.default_rng(0)
    raster = rng.random((37, 21)) < 0.1
    steps, neurons = _decode_spikes(np.asarray(jnp.packbits(jnp.asarray(raster), axis=1)))
    want_steps, want_neurons = np.nonzero(raster)
    np.testing.assert_array_equal(steps, want_steps)
    np.testing.assert_array_equal(neurons, want_neurons)
    net = _poisson_net(n=13)
    _, (plain, packed) = run(net, net.init(DT), 50, DT, key=jax.random.key(0),
                             monitors=[SpikeMonitor("in"), SpikeMonitor("in", packed=True)])
    assert packed.shape == (50, 25) and packed.dtype == jnp.uint8
    np.testing.assert_array_equal(np.unpackbits(np.asarray(packed), axis=1)[:, :200], np.asarray(plain))
