"""Connectivity builders: exact degrees, no duplicates/autapses when asked, determinism, statistics, errors."""
import jax
import numpy as np
import pytest

from brainsim import connectivity as conn


def _pairs(mat):
    idx = np.asarray(mat.indices)
    return idx[:, 0], idx[:, 1]


def test_fixed_probability_statistics_and_uniqueness():
    mat = conn.fixed_probability(jax.random.key(0), 2000, 1500, 0.05, 2.5, autapses=True)
    pre, post = _pairs(mat)
    expected = 2000 * 1500 * 0.05
    assert abs(mat.nse - expected) < 4 * np.sqrt(expected)  # binomial: 4 standard deviations
    assert len(np.unique(pre.astype(np.int64) * 1500 + post)) == mat.nse
    np.testing.assert_allclose(np.asarray(mat.data), 2.5)


def test_no_autapses():
    mat = conn.fixed_probability(jax.random.key(1), 300, 300, 0.5, autapses=False)
    pre, post = _pairs(mat)
    assert not np.any(pre == post)
    full = conn.all_to_all(50, 50, autapses=False)
    assert full.nse == 50 * 49


def test_fixed_degrees_are_exact():
    out = conn.fixed_out_degree(jax.random.key(2), 100, 60, 7)
    pre, post = _pairs(out)
    assert np.all(np.bincount(pre, minlength=100) == 7)
    inn = conn.fixed_in_degree(jax.random.key(3), 80, 120, 9, autapses=True)
    pre, post = _pairs(inn)
    assert np.all(np.bincount(post, minlength=120) == 9)
    dense = conn.fixed_out_degree(jax.random.key(4), 20, 20, 19, autapses=False)  # dense-row path
    pre, post = _pairs(dense)
    assert np.all(np.bincount(pre, minlength=20) == 19) and not np.any(pre == post)


def test_deterministic_given_key_and_different_across_keys():
    a = conn.fixed_probability(jax.random.key(5), 200, 200, 0.1)
    b = conn.fixed_probability(jax.random.key(5), 200, 200, 0.1)
    c = conn.fixed_probability(jax.random.key(6), 200, 200, 0.1)
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    assert a.nse != c.nse or not np.array_equal(np.asarray(a.indices), np.asarray(c.indices))


def test_one_to_one_from_indices_and_weight_functions():
    np.testing.assert_array_equal(np.asarray(conn.one_to_one(5, 3.0).todense()), 3.0 * np.eye(5))
    mat = conn.from_indices([0, 2], [1, 0], 3, 2, weight=[1.5, -2.0])
    np.testing.assert_array_equal(np.asarray(mat.todense()), [[0, 1.5], [0, 0], [-2.0, 0]])
    mat = conn.fixed_out_degree(jax.random.key(7), 10, 10, 3, weight=lambda rng, n: rng.uniform(1, 2, n))
    assert np.all((np.asarray(mat.data) >= 1) & (np.asarray(mat.data) <= 2))


def test_errors():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        conn.fixed_probability(jax.random.key(0), 10, 10, 1.5)
    with pytest.raises(ValueError, match="needs an explicit key"):
        conn.fixed_probability(None, 10, 10, 0.1)
    with pytest.raises(ValueError, match="fixed_probability: n_pre must be a positive integer, got 0"):
        conn.fixed_probability(jax.random.key(0), 0, 10, 0.1)
    with pytest.raises(ValueError, match="autapses=False needs n_pre == n_post"):
        conn.all_to_all(3, 4, autapses=False)
    with pytest.raises(ValueError, match=r"k must be in \[0, 9\]"):
        conn.fixed_in_degree(jax.random.key(0), 10, 10, 10, autapses=False)
    with pytest.raises(ValueError, match="duplicate"):
        conn.from_indices([0, 0], [1, 1], 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        conn.from_indices([0, 5], [1, 1], 2, 2)
    with pytest.raises(ValueError, match="NaN"):
        conn.one_to_one(3, weight=[1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="one per synapse"):
        conn.from_indices([0, 1], [1, 0], 2, 2, weight=[1.0, 2.0, 3.0])
