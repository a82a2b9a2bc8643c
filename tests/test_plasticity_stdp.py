"""STDP (pair, nearest, triplet; additive/multiplicative; hard/soft bounds) against a brute-force reference.

The reference walks every synapse through time in NumPy and evaluates each trace, at every spike, as an
explicit sum over all earlier spikes of the partner (all-to-all) or the latest one (nearest) — no traces,
no event lists, no ELL layout — applying the same documented order (pre events, then post events).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.connectivity import fixed_probability
from brainsim.plasticity import STDP, ReverseIndex, TripletSTDP
from brainsim.plasticity.base import compact, for_each_event
from brainsim.propagation import EventOperator

DT = 0.5


def _trace(spike_steps, t, tau, *, strict, nearest):
    s = spike_steps[spike_steps < t] if strict else spike_steps[spike_steps <= t]
    if len(s) == 0:
        return 0.0
    if nearest:
        return float(np.exp(-(t - s.max()) * DT / tau))
    return float(np.sum(np.exp(-(t - s) * DT / tau)))


def reference(rule, dense_w, mask, pre, post):
    """Brute force: per synapse, per step, traces as explicit sums over earlier spikes."""
    w = dense_w.astype(np.float64).copy()
    nearest = rule.pairing == "nearest"
    span = rule.w_max - rule.w_min
    for i, j in zip(*np.nonzero(mask)):
        pre_steps, post_steps = np.nonzero(pre[:, i])[0], np.nonzero(post[:, j])[0]
        wij = w[i, j]
        for t in range(pre.shape[0]):
            u = (wij - rule.w_min) / span
            if pre[t, i]:
                y = _trace(post_steps, t, rule.tau_minus, strict=True, nearest=nearest)
                amp = rule.A_minus
                if rule.triplet:
                    amp += rule.A3_minus * _trace(pre_steps, t, rule.tau_x, strict=True, nearest=nearest)
                f = u if (rule.bounds == "soft" or rule.weight_dependence == "multiplicative") else 1.0
                wij = min(max(wij - amp * y * f, rule.w_min), rule.w_max)
                u = (wij - rule.w_min) / span
            if post[t, j]:
                x = _trace(pre_steps, t, rule.tau_plus, strict=False, nearest=nearest)
                amp = rule.A_plus
                if rule.triplet:
                    amp += rule.A3_plus * _trace(post_steps, t, rule.tau_y, strict=True, nearest=nearest)
                f = 1.0 - u if rule.bounds == "soft" else 1.0
                wij = min(max(wij + amp * x * f, rule.w_min), rule.w_max)
        w[i, j] = wij
    return w


def simulate_rule(rule, op, pre, post):
    rev = ReverseIndex(op.targets, op.n_post)
    state = rule.init_state(op.weights, op.n_pre, op.n_post)

    @jax.jit
    def run(state, pre, post):
        def body(s, x):
            return rule.update(s, op.targets, rev, x[0], x[1], DT), None
        return jax.lax.scan(body, state, (pre, post))[0]

    final = run(state, jnp.asarray(pre, jnp.float32), jnp.asarray(post, jnp.float32))
    return np.asarray(EventOperator(final.weights, op.targets, op.n_post).to_dense())


RULES = {
    "pair_add_hard": dict(A_plus=0.05, A_minus=0.06),
    "pair_nearest": dict(A_plus=0.05, A_minus=0.06, pairing="nearest"),
    "pair_mult": dict(A_plus=0.05, A_minus=0.06, weight_dependence="multiplicative"),
    "pair_soft": dict(A_plus=0.08, A_minus=0.07, bounds="soft", tau_minus=30.0),
    "triplet": "triplet",
    "triplet_nearest": "triplet_nearest",
}


def make_rule(name, native):
    spec = RULES[name]
    if spec == "triplet":
        return TripletSTDP(A2_plus=0.01, A3_plus=0.03, A2_minus=0.04, A3_minus=0.01, native=native)
    if spec == "triplet_nearest":
        return TripletSTDP(A2_plus=0.01, A3_plus=0.03, A2_minus=0.04, A3_minus=0.01, pairing="nearest", native=native)
    return STDP(tau_plus=15.0, native=native, **spec)


@pytest.mark.parametrize("native", [True, False], ids=["native", "jax"], indirect=True)  # native: see conftest
@pytest.mark.parametrize("name", list(RULES))
def test_stdp_matches_brute_force(name, native):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    n_pre, n_post, T = 9, 6, 160
    op = EventOperator.from_sparse(fixed_probability(jax.random.key(1), n_pre, n_post, 0.6,
                                                     lambda r, n: r.uniform(0.2, 0.8, n)))
    pre = rng.random((T, n_pre)) < 0.08
    post = rng.random((T, n_post)) < 0.08
    post[10:14] = True  # bursts: several events in one batch / same step as pre spikes
    pre[12] = True
    rule = make_rule(name, native)
    got = simulate_rule(rule, op, pre, post)
    dense = np.asarray(op.to_dense())
    want = reference(rule, dense, dense != 0, pre, post)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert not np.allclose(got, dense)  # the rule did something


def test_stdp_event_loop_handles_more_events_than_capacity():
    # capacity 2 with up to 9 simultaneous events: the loop runs several batches, nothing is dropped
    rng = np.random.default_rng(3)
    op = EventOperator.from_sparse(fixed_probability(jax.random.key(2), 9, 6, 0.7, 0.5))
    pre, post = rng.random((60, 9)) < 0.3, rng.random((60, 6)) < 0.3
    small = STDP(A_plus=0.02, A_minus=0.025, capacity=2, native=False)
    dense = np.asarray(op.to_dense())
    np.testing.assert_allclose(simulate_rule(small, op, pre, post), reference(small, dense, dense != 0, pre, post),
                               rtol=2e-5, atol=2e-6)


def test_compact_and_for_each_event():
    rng = np.random.default_rng(0)
    for n, cap in [(10, 3), (1000, 16), (5000, 40)]:
        x = rng.random(n) < 0.01
        idx = np.asarray(compact(jnp.asarray(x), cap))
        want = np.nonzero(x)[0][:cap]
        np.testing.assert_array_equal(idx[: len(want)], want)
        assert np.all(idx[len(want):] == n)
        seen = for_each_event(jnp.asarray(x, jnp.float32), cap,
                              lambda c, i: c.at[i].add(1, mode="drop"), jnp.zeros(n, jnp.int32))
        np.testing.assert_array_equal(np.asarray(seen), x.astype(np.int32))


def test_reverse_index_lists_every_incoming_synapse():
    op = EventOperator.from_sparse(fixed_probability(jax.random.key(5), 30, 20, 0.3, 1.0))
    rev = ReverseIndex(op.targets, 20)
    targets = np.asarray(op.targets).ravel()
    slots = np.asarray(rev.slots)
    for j in range(20):
        listed = np.sort(slots[j][slots[j] < targets.size])
        np.testing.assert_array_equal(listed, np.nonzero(targets == j)[0])


def test_stdp_is_straight_through_under_grad():
    op = EventOperator.from_sparse(fixed_probability(jax.random.key(1), 5, 4, 0.8, 0.5))
    rule = STDP(A_plus=0.01, A_minus=0.01)
    rev = ReverseIndex(op.targets, 4)
    pre = jnp.ones((5,)); post = jnp.ones((4,))

    def f(w):
        s = rule.init_state(w, 5, 4)
        return rule.update(s, op.targets, rev, pre, post, 1.0).weights.sum()

    g = jax.grad(f)(op.weights)
    np.testing.assert_allclose(np.asarray(g), np.ones(op.weights.shape))


def test_deliver_and_update_gradients_match_plain_delivery():
    # the fused delivery + STDP call differentiates like a dense product in spikes and weights (the
    # delivery uses the weights before the update), plus straight-through for the updated weights
    op = EventOperator.from_sparse(fixed_probability(jax.random.key(2), 30, 20, 0.3, 0.5))
    weights = op.weights * jax.random.uniform(jax.random.key(3), op.weights.shape, minval=0.5, maxval=1.5)
    rule = STDP(A_plus=0.01, A_minus=0.012, w_max=2.0)
    rev = ReverseIndex(op.targets, 20)
    pre = (jax.random.uniform(jax.random.key(4), (30,)) < 0.4).astype(jnp.float32)
    post = (jax.random.uniform(jax.random.key(5), (20,)) < 0.4).astype(jnp.float32)
    probe = jax.random.normal(jax.random.key(6), (20,))

    def fused(w, s):
        g, new = rule.deliver_and_update(rule.init_state(w, 30, 20), op.targets, rev, s, post, 0.1)
        return jnp.sum(jnp.sin(g) * probe) + 0.3 * jnp.sum(new.weights)

    rows = jnp.broadcast_to(jnp.arange(30)[:, None], op.targets.shape)

    def plain(w, s):  # dense matrix built with JAX's own scatter, differentiated by JAX
        dense = jnp.zeros((30, 20)).at[rows, op.targets].add(w, mode="drop")
        return jnp.sum(jnp.sin(s @ dense) * probe) + 0.3 * jnp.sum(w)

    padding = np.asarray(op.targets) >= 20
    for argnum in (0, 1):
        got = np.asarray(jax.grad(fused, argnum)(weights, pre))
        want = np.asarray(jax.grad(plain, argnum)(weights, pre))
        if argnum == 0:  # padding slots carry no synapse: only the straight-through term reaches them
            got, want = got[~padding], want[~padding]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(A_plus=np.ones(3)), "A_plus (learning rate, weight units) must be a scalar, got an array of shape (3,)"),
    (dict(A_minus=-0.1), "A_minus (learning rate, weight units) must be >= 0"),
    (dict(tau_plus=0.0), "tau_plus (ms) must be > 0"),
    (dict(w_min=1.0, w_max=0.5), "w_max (0.5) must be greater than w_min (1.0)"),
    (dict(bounds="sticky"), "unknown bounds 'sticky'"),
    (dict(pairing="pairs"), "unknown pairing 'pairs'"),
    (dict(capacity=0), "capacity must be a positive integer"),
])
def test_stdp_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as err:
        STDP(**kwargs)
    assert message in str(err.value)


def test_stdp_needs_per_synapse_weights():
    from brainsim.network import Projection

    op = EventOperator.from_sparse(fixed_probability(jax.random.key(1), 5, 4, 0.8, 0.5), homogeneous=True)
    with pytest.raises(ValueError, match="plasticity needs one weight per synapse"):
        Projection("a", "b", "ge", op, plasticity=STDP())
