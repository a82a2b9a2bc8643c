"""Delays travel with their synapses, every time and delay meets one rounding rule, and a model built for one dt
refuses to run at another (issue 18, item 8)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

import brainsim as bs
from brainsim._checks import to_steps
from brainsim.delays import DelayedEventOperator


def _onsets(operator, dt=0.1, duration=10.0):
    """Time (ms) at which each of 3 postsynaptic neurons first receives input, all presynaptic neurons firing at 0."""
    net = bs.Network({"src": bs.Population(bs.SpikeTimes(3, [0.0, 0.0, 0.0], [0, 1, 2], dt)),
                      "post": bs.Population(bs.LIF(3, v_th=1e9), {"i": bs.Receptor(bs.Delta(), bs.CurrentOutput())})},
                     {"p": bs.DelayedProjection("src", "post", "i", operator)})
    result = bs.simulate(net, duration, dt, key=jax.random.key(0), monitors=[bs.StateMonitor("post", "v")])
    times, v = result.traces["post.v"]
    moved = np.abs(v - v[0]) > 1e-6
    return np.round(times[np.argmax(moved, axis=0)], 6)


# the synapses in the user's own order (not sorted by pre): 2 -> 0 after 2.2 ms, 0 -> 2 after 7.2, 1 -> 1 after 4.5
PRE, POST, DELAYS = np.array([2, 0, 1]), np.array([0, 2, 1]), np.array([2.2, 7.2, 4.5])
# by postsynaptic neuron: the spike of step 0 reaches the receptor at the end of step d, the membrane integrates
# it in step d + 1, and the record at the start of step d + 2 shows it
EXPECTED = [2.2 + 0.2, 4.5 + 0.2, 7.2 + 0.2]


def test_delays_listed_with_their_indices_stay_with_their_synapses():
    op = DelayedEventOperator.from_indices(PRE, POST, 3, 3, weights=100.0, delays=DELAYS, dt=0.1)
    np.testing.assert_allclose(_onsets(op), EXPECTED)


def test_a_delay_matrix_is_matched_by_position_not_by_storage_order():
    weights = bs.connectivity.from_indices(PRE, POST, 3, 3, 100.0)  # stored sorted by (pre, post)
    delays = sparse.BCOO((jnp.asarray(DELAYS), jnp.stack([PRE, POST], axis=1)), shape=(3, 3))  # the user's order
    op = DelayedEventOperator.from_sparse(weights, delays, dt=0.1)
    np.testing.assert_allclose(_onsets(op), EXPECTED)


def test_delays_that_cannot_be_matched_are_refused():
    weights = bs.connectivity.from_indices(PRE, POST, 3, 3, 100.0)
    with pytest.raises(ValueError, match="plain array cannot be matched"):
        DelayedEventOperator.from_sparse(weights, DELAYS, dt=0.1)
    other = sparse.BCOO((jnp.asarray(DELAYS), jnp.stack([PRE, (POST + 1) % 3], axis=1)), shape=(3, 3))
    with pytest.raises(ValueError, match="does not hold the same synapses"):
        DelayedEventOperator.from_sparse(weights, other, dt=0.1)
    with pytest.raises(ValueError, match="one value per synapse"):
        DelayedEventOperator.from_indices(PRE, POST, 3, 3, weights=1.0, delays=DELAYS[:2], dt=0.1)


def test_repeated_pairs_keep_their_own_delays():
    op = DelayedEventOperator.from_indices([0, 0, 0], [1, 1, 1], 1, 2, weights=[1.0, 2.0, 3.0], delays=[3, 1, 2])
    pairs = sorted(zip(np.asarray(op.weights[0, :3]).tolist(), np.asarray(op.delays[0, :3]).tolist()))
    assert pairs == [(1.0, 3), (2.0, 1), (3.0, 2)]


def test_one_rounding_rule_for_delays_and_spike_times():
    # nearest step, halves up: 0.15 ms at dt 0.1 is 2 steps for a homogeneous delay, a per-synapse delay and a
    # spike time alike (np.round would give 2 for 0.15 but 0 for 0.05 and 2 for 0.25: halves to even)
    assert to_steps([0.05, 0.15, 0.25, 0.35], 0.1)[0].tolist() == [1, 2, 3, 4]
    with pytest.warns(UserWarning, match="rounded"):
        assert bs.projections.presynaptic.delay_steps(0.15, 0.1) == 2
    with pytest.warns(UserWarning, match="rounded"):
        op = DelayedEventOperator.from_indices([0], [0], 1, 1, weights=1.0, delays=0.15, dt=0.1)
    assert int(op.delays[0, 0]) == 2
    source = bs.SpikeTimes(1, [0.15, 0.25], [0, 0], 0.1)
    assert np.asarray(source.event_steps).tolist() == [2, 3]


def test_a_model_built_for_one_dt_refuses_another():
    source = bs.SpikeTimes(3, [1.0], [0], 0.1)
    with pytest.raises(ValueError, match=r"SpikeTimes: .* dt = 0.1 ms, but it is stepped with dt = 0.05 ms"):
        source.step(source.init(), None, 0.05)
    op = DelayedEventOperator.from_indices(PRE, POST, 3, 3, weights=1.0, delays=DELAYS, dt=0.1)
    net = bs.Network({"a": bs.Population(bs.LIF(3)),
                      "b": bs.Population(bs.LIF(3), {"i": bs.Receptor(bs.Delta(), bs.CurrentOutput())})},
                     {"p": bs.DelayedProjection("a", "b", "i", op)})
    with pytest.raises(ValueError, match=r"converted to steps of dt = 0.1 ms, but it is stepped with dt = 0.05 ms"):
        net.init(0.05)
    with pytest.raises(ValueError, match=r"converted to steps of dt = 0.1 ms"):
        net.step(net.init(0.1), 0.05, key=jax.random.key(0))
    # a homogeneous delay: the state made at one dt holds the ring of that dt
    plain = bs.Network({"a": bs.Population(bs.LIF(3)),
                        "b": bs.Population(bs.LIF(3), {"i": bs.Receptor(bs.Delta(), bs.CurrentOutput())})},
                       {"p": bs.Projection("a", "b", "i", bs.connectivity.from_indices(PRE, POST, 3, 3), delay=1.0)})
    with pytest.raises(ValueError, match="initialise the state with the dt you step with"):
        plain.step(plain.init(0.1), 0.05, key=jax.random.key(0))


def test_spike_times_without_spikes():
    source = bs.SpikeTimes(3, [], [], 0.1)
    state = source.init()
    for _ in range(3):
        state, spikes = source.step(state, None, 0.1)
        assert float(spikes.sum()) == 0.0
