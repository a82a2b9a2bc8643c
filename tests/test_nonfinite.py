"""simulate stops at the first non-finite state with a message naming the variable, step and time, and keeps the
last finite state and the records up to it; results of a continued run carry on the time axis."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

import brainsim
from brainsim.inputs import PoissonSource
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF
from brainsim.simulate import SpikeMonitor, StateMonitor, simulate
from brainsim.synapses import CurrentOutput, Exponential, Receptor

N = 50


def _blowing_up(weight=1e37, inhibition=1.0):
    """Current synapses of absurd weight: excitatory and inhibitory currents overflow to +inf and -inf, whose sum
    is NaN."""
    w = sparse.BCOO.fromdense(jnp.full((N, N), weight) * (jax.random.uniform(jax.random.key(0), (N, N)) < 0.2).astype(jnp.float32))
    return Network({"src": Population(PoissonSource(N, 200.0)),
                    "E": Population(LIF(N), {"e": Receptor(Exponential(5.0), CurrentOutput()),
                                             "i": Receptor(Exponential(10.0), CurrentOutput())})},
                   {"exc": Projection("src", "E", "e", w), "inh": Projection("src", "E", "i", -inhibition * w)})


def test_nonfinite_state_stops_with_the_step_and_the_last_finite_state():
    net = _blowing_up()
    with pytest.raises(brainsim.NonFiniteError, match=r"receptors\['E'\]\['i'\] became non-finite in step \d+") as err:
        simulate(net, 100.0, 0.1, key=jax.random.key(1), monitors=[SpikeMonitor("E"), StateMonitor("E", "v")],
                 chunk_steps=100, progress=False)
    e = err.value
    assert 0 < e.step < 1000 and e.time_ms == pytest.approx(e.step * 0.1)
    leaves = jax.tree_util.tree_leaves(e.state)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves if jnp.issubdtype(x.dtype, jnp.floating))
    assert int(e.state.step) == e.step  # the state at the start of the step that produced the non-finite values
    t, v = e.result.traces["E.v"]
    assert v.shape == (e.step, N) and t[-1] == pytest.approx((e.step - 1) * 0.1)  # records up to that state
    assert e.result.duration == pytest.approx(e.step * 0.1)
    # the same step is found whatever the chunking, and the error's state continues the run identically
    with pytest.raises(brainsim.NonFiniteError) as again:
        simulate(net, 100.0, 0.1, key=jax.random.key(1), chunk_steps=1000, progress=False)
    assert again.value.step == e.step and again.value.where == e.where


def test_nonfinite_warn_and_ignore():
    net = _blowing_up()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = simulate(net, 60.0, 0.1, key=jax.random.key(1), chunk_steps=100, nonfinite="warn", progress=False)
    messages = [str(w.message) for w in caught if "non-finite" in str(w.message)]
    assert len(messages) == 1 and "simulating on" in messages[0]
    assert r.duration == pytest.approx(60.0)
    simulate(net, 60.0, 0.1, key=jax.random.key(1), nonfinite="ignore", progress=False)
    with pytest.raises(ValueError, match="nonfinite must be"):
        simulate(net, 1.0, 0.1, key=jax.random.key(1), nonfinite="stop")


def test_finite_run_is_unchanged_and_time_axis_continues():
    net = _blowing_up(weight=500.0, inhibition=0.2)
    whole = simulate(net, 20.0, 0.1, key=jax.random.key(2), monitors=[SpikeMonitor("E"), StateMonitor("E", "v", every=5)],
                     progress=False)
    first = simulate(net, 10.0, 0.1, key=jax.random.key(2), monitors=[SpikeMonitor("E"), StateMonitor("E", "v", every=5)],
                     progress=False)
    rest = simulate(net, 10.0, 0.1, key=jax.random.key(2), state=first.state,
                    monitors=[SpikeMonitor("E"), StateMonitor("E", "v", every=5)], progress=False)
    assert whole.spikes["E"].times.size > 0
    np.testing.assert_allclose(np.concatenate([first.spikes["E"].times, rest.spikes["E"].times]),
                               whole.spikes["E"].times)
    np.testing.assert_array_equal(np.concatenate([first.spikes["E"].indices, rest.spikes["E"].indices]),
                                  whole.spikes["E"].indices)
    np.testing.assert_allclose(np.concatenate([first.traces["E.v"][0], rest.traces["E.v"][0]]), whole.traces["E.v"][0])
    assert rest.spikes["E"].start == pytest.approx(10.0) and rest.spikes["E"].mean_rate() > 0
