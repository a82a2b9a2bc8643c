"""brainsim.counts: counter-based binomial counts, exact in distribution, on the native and the pure-JAX path."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from scipy import stats

from brainsim import counts

SIZE = 200_000


def _pure(key, n, p, size, stream=0):
    """The pure-JAX path of ``counts.binomial`` (what runs without the native kernel or on accelerators)."""
    n, p = (jnp.asarray(a, jnp.float32) for a in (n, p))
    return jax.jit(lambda: counts._pure_counts(key, counts.key_words(key), n, p, size, stream))()


def _chi2_pvalue(draws, n, p):
    observed = np.bincount(draws.astype(np.int64), minlength=n + 1)
    expected = stats.binom.pmf(np.arange(len(observed)), n, p) * len(draws)
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    rest_obs, rest_exp = observed[~keep].sum(), expected[~keep].sum()  # the tails, pooled
    chi2 += (rest_obs - rest_exp) ** 2 / max(rest_exp, 1.0)
    return stats.chi2.sf(chi2, max(int(keep.sum()), 1))


def test_threefry_matches_jax_and_the_known_answer():
    k = np.array([0x13198A2E, 0x03707344], np.uint32)
    x = np.array([0x243F6A88, 0x85A308D3], np.uint32)
    assert [int(w) for w in counts.threefry2x32(k[0], k[1], x[0], x[1])] == [0xC4923A9C, 0x483DF7A0]  # Random123
    rng = np.random.default_rng(0)
    key = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    data = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    ours = np.concatenate([np.asarray(w) for w in counts.threefry2x32(key[0], key[1], data[:32], data[32:])])
    np.testing.assert_array_equal(ours, np.asarray(threefry_2x32(jnp.asarray(key), jnp.asarray(data))))


@pytest.mark.parametrize("n,p", [(800, 0.0025), (1, 0.3), (1000, 0.025), (2000, 0.05), (50, 0.9), (5000, 0.5)])
def test_counts_follow_the_binomial_distribution(n, p):
    # three keys: a failure at 1e-3 in every one of them is not chance
    pvalues = [_chi2_pvalue(np.asarray(counts.binomial(jax.random.key(s), n, p, SIZE)), n, p) for s in range(3)]
    assert max(pvalues) > 1e-3, pvalues
    pure = [_chi2_pvalue(np.asarray(_pure(jax.random.key(s), n, p, SIZE)), n, p) for s in range(3)]
    assert max(pure) > 1e-3, pure


@pytest.mark.parametrize("n,p,agree", [(800, 0.0025, 0.9999), (1000, 0.025, 0.9999), (1, 0.7, 1.0),
                                       (3000, 0.01, 0.9999)])
def test_native_and_pure_paths_draw_the_same_counts(n, p, agree):
    # (for means <= CENTERED_ABOVE; above it the pure path uses jax.random.binomial, checked for its distribution)
    if not counts.native_available():
        pytest.skip(f"native counts kernel unavailable: {counts._COUNTS.why_unavailable()}")
    key = jax.random.key(11)
    native = np.asarray(jax.jit(lambda k: counts.binomial(k, n, p, SIZE))(key))
    assert np.mean(native == np.asarray(_pure(key, n, p, SIZE))) >= agree


def test_per_element_parameters_runs_and_edges():
    size = 5000
    rng = np.random.default_rng(1)
    n = np.repeat(rng.integers(0, 60, 50), 100).astype(np.float32)  # runs of equal values (the table path)
    p = np.where(np.arange(size) % 7 == 0, rng.uniform(0, 1, size), 0.3).astype(np.float32)  # and single ones
    p[:10], p[10:20], n[20:30] = 0.0, 1.0, 0.0
    key = jax.random.key(4)
    draws = np.asarray(counts.binomial(key, n, p, size))
    assert np.all(draws[:10] == 0) and np.all(draws[10:20] == n[10:20]) and np.all(draws[20:30] == 0)
    assert np.all((draws >= 0) & (draws <= n) & (draws == np.round(draws)))
    walked = (n * p <= counts.CENTERED_ABOVE) & (n * np.log1p(-np.minimum(p, 1 - 1e-7)) > -80)  # walked by both paths
    np.testing.assert_array_equal(draws[walked], np.asarray(_pure(key, n, p, size))[walked])
    # the mean over many keys matches n p element by element (within 5 standard errors)
    many = np.stack([np.asarray(counts.binomial(jax.random.key(s), n, p, size)) for s in range(200)])
    se = np.sqrt(n * p * (1 - p) / 200) + 1e-6
    assert np.all(np.abs(many.mean(0) - n * p) <= 5 * se + 1e-6)


def test_draws_depend_only_on_key_element_and_stream():
    key = jax.random.key(5)
    a = np.asarray(counts.binomial(key, 40, 0.1, 1000))
    np.testing.assert_array_equal(a, np.asarray(counts.binomial(key, 40, 0.1, 1000)))
    np.testing.assert_array_equal(a[:300], np.asarray(counts.binomial(key, 40, 0.1, 300)))  # not on the size
    other = np.asarray(counts.binomial(key, 40, 0.1, 1000, stream=1))
    assert np.mean(a == other) < 0.5  # P(equal) for Binomial(40, 0.1) is ~0.16
    assert np.mean(a == np.asarray(counts.binomial(jax.random.key(6), 40, 0.1, 1000))) < 0.5


def test_no_gradient_flows_and_vmap_works():
    def total(p, key):
        return jnp.sum(counts.binomial(key, 100, p, 50) * p)

    grad = jax.grad(total)(jnp.float32(0.2), jax.random.key(0))
    expected = float(jnp.sum(counts.binomial(jax.random.key(0), 100, 0.2, 50)))  # d(c p)/dp with c constant
    assert math.isclose(float(grad), expected, rel_tol=1e-6)
    keys = jax.random.split(jax.random.key(2), 4)
    batched = jax.vmap(lambda k: counts.binomial(k, 30, 0.2, 100))(keys)
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(counts.binomial(keys[i], 30, 0.2, 100)))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="must be scalars or \\(10,\\) arrays"):
        counts.binomial(jax.random.key(0), jnp.ones(3), 0.5, 10)
