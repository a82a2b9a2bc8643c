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


@pytest.fixture(params=["native", "numpy"])
def sampler(request, monkeypatch):
    """Both samplers of distinct partners: the native routine (connect.cc) and the NumPy fallback."""
    if request.param == "native":
        if conn._CONNECT.library() is None:
            pytest.skip(f"native connectivity unavailable: {conn._CONNECT.why_unavailable()}")
    else:
        monkeypatch.setattr(conn, "_native_rows", lambda *args, **kwargs: None)
    return request.param


@pytest.mark.parametrize("k", [3, 40, 57, 59])  # sparse rows, bitmap rows, complement rows, all but the diagonal
def test_every_builder_gives_sorted_distinct_exact_rows(sampler, k):
    for autapses in (True, False):
        for build, rows, degree_of in ((conn.fixed_in_degree, 1, "post"), (conn.fixed_out_degree, 0, "pre")):
            mat = build(jax.random.key(k), 60, 60, k, autapses=autapses)
            pre, post = _pairs(mat)
            keys = pre.astype(np.int64) * 60 + post
            assert np.all(np.diff(keys) > 0)  # sorted by (pre, post), no duplicate
            assert np.all(np.bincount(_pairs(mat)[rows], minlength=60) == k), (degree_of, autapses)
            if not autapses:
                assert not np.any(pre == post)


def test_partners_are_uniform(sampler):
    # every presynaptic neuron is equally likely to be one of a neuron's k sources (chi-square over 10^5 draws)
    mat = conn.fixed_in_degree(jax.random.key(9), 100, 5000, 20, autapses=True)
    observed = np.bincount(_pairs(mat)[0], minlength=100)
    expected = 5000 * 20 / 100
    from scipy import stats

    assert stats.chi2.sf(((observed - expected) ** 2 / expected).sum(), 99) > 1e-4
    # and neighbouring neurons share sources as often as chance has them do: k^2 / n = 4 on average
    pre, post = _pairs(mat)
    sources = [set(pre[post == j]) for j in range(0, 2000)]
    overlap = np.mean([len(sources[j] & sources[j + 1]) for j in range(1999)])
    assert abs(overlap - 4.0) < 0.3, overlap


def test_native_draw_is_reproducible_and_independent_of_other_rows():
    if conn._CONNECT.library() is None:
        pytest.skip("native connectivity unavailable")
    a = conn.fixed_out_degree(jax.random.key(3), 50, 400, 30)
    b = conn.fixed_out_degree(jax.random.key(3), 80, 400, 30)  # more rows: the first 50 are the same
    pa, pb = _pairs(a), _pairs(b)
    np.testing.assert_array_equal(pa[1], pb[1][: len(pa[1])])


def test_fixed_total_number_with_and_without_multapses(sampler):
    from scipy import stats

    mat = conn.fixed_total_number(jax.random.key(12), 30, 40, 20000, 2.0)  # 16.7 synapses per pair: many repeats
    pre, post = _pairs(mat)
    assert mat.nse == 20000 and np.all(np.diff(pre.astype(np.int64) * 40 + post) >= 0)  # sorted, repeats kept
    counts = np.bincount(pre.astype(np.int64) * 40 + post, minlength=1200)
    assert stats.chi2.sf(((counts - 20000 / 1200) ** 2 / (20000 / 1200)).sum(), 1199) > 1e-4  # uniform pairs
    distinct = conn.fixed_total_number(jax.random.key(13), 30, 30, 600, autapses=False, multapses=False)
    pre, post = _pairs(distinct)
    keys = pre.astype(np.int64) * 30 + post
    assert distinct.nse == 600 and np.all(np.diff(keys) > 0) and not np.any(pre == post)
    with pytest.raises(ValueError, match="exceeds the 870 distinct pairs"):
        conn.fixed_total_number(jax.random.key(0), 30, 30, 871, autapses=False, multapses=False)


def test_multapses_deliver_every_synapse():
    from brainsim.propagation import EventOperator

    mat = conn.fixed_total_number(jax.random.key(14), 20, 10, 500, 1.0)
    op = EventOperator.from_sparse(mat, homogeneous=True)
    spikes = np.zeros(20, np.float32)
    spikes[[3, 7]] = 1.0
    pre, post = _pairs(mat)
    expected = np.bincount(post[(pre == 3) | (pre == 7)], minlength=10)
    np.testing.assert_allclose(np.asarray(op(jax.numpy.asarray(spikes))), expected)


def test_weight_and_initial_distributions():
    from brainsim import LIF, Network, Normal, Population, Uniform

    mat = conn.fixed_in_degree(jax.random.key(1), 400, 400, 50, Normal(87.8, 30.0, low=0.0))  # redrawn >= 0
    w = np.asarray(mat.data)
    assert w.min() >= 0 and abs(w.mean() - 87.8) < 2.0  # (the truncation moves the mean up by < 0.4)
    clipped = Normal(1.5, 0.75, low=0.1, bounds="clip")(np.random.default_rng(0), 10000)
    assert clipped.min() == pytest.approx(0.1) and np.mean(clipped == 0.1) > 0.02
    net = Network({"P": Population(LIF(1000), initial={"v": Uniform(-70.0, -50.0)})})
    state = net.init(0.1, key=jax.random.key(3))
    v = np.asarray(state.neurons["P"].v)
    assert v.min() >= -70 and v.max() < -50 and v.std() > 5
    np.testing.assert_array_equal(v, np.asarray(net.init(0.1, key=jax.random.key(3)).neurons["P"].v))
    with pytest.raises(ValueError, match="initial conditions \\['v'\\] are distributions"):
        net.init(0.1)
    with pytest.raises(ValueError, match="high .* must exceed low"):
        Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        Normal(0.0, -1.0)


def test_distance_dependent_probability_follows_the_profile():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 1000.0, size=(1500, 2))  # µm
    profile = lambda d: 0.4 * np.exp(-d / 150.0)  # noqa: E731
    m = conn.distance_dependent(jax.random.key(0), pos, pos, profile, 0.5, autapses=False)
    pre, post = np.asarray(m.indices).T
    assert np.all(pre != post) and np.all(np.asarray(m.data) == 0.5)
    assert np.all(np.diff(pre) >= 0)  # sorted rows
    d_all = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    d_syn = d_all[pre, post]
    bins = np.array([0, 50, 100, 200, 400, 800])
    for lo, hi in zip(bins[:-1], bins[1:]):
        candidates = (d_all >= lo) & (d_all < hi)
        np.fill_diagonal(candidates, False)
        expected = profile(d_all[candidates]).sum()
        got = np.count_nonzero((d_syn >= lo) & (d_syn < hi))
        assert abs(got - expected) < 4 * np.sqrt(expected) + 1, (lo, hi, got, expected)
    again = conn.distance_dependent(jax.random.key(0), pos, pos, profile, 0.5, autapses=False,
                                            chunk_pairs=100_000)
    np.testing.assert_array_equal(np.asarray(again.indices), np.asarray(m.indices))  # chunking changes nothing


def test_distance_dependent_periodic_box_and_errors():
    pos = np.array([[5.0], [995.0], [500.0]])
    near = lambda d: (d < 20.0).astype(float)  # noqa: E731
    torus = conn.distance_dependent(jax.random.key(1), pos, pos, near, autapses=False, box=1000.0)
    assert sorted(map(tuple, np.asarray(torus.indices).tolist())) == [(0, 1), (1, 0)]  # 10 µm apart across the edge
    flat = conn.distance_dependent(jax.random.key(1), pos, pos, near, autapses=False)
    assert flat.nse == 0
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        conn.distance_dependent(jax.random.key(1), pos, pos, lambda d: d)
    with pytest.raises(ValueError, match="same dims"):
        conn.distance_dependent(jax.random.key(1), pos, np.zeros((3, 2)), near)
