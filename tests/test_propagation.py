"""Event-driven propagation equals the dense and BCOO references, never drops spikes, has weight gradients."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.experimental import sparse

from brainsim import connectivity
from brainsim.propagation import EventOperator, compact_spikes


def _random_case(seed, n_pre, n_post, p, spike_p):
    key = jax.random.key(seed)
    mat = connectivity.fixed_probability(key, n_pre, n_post, p, lambda rng, n: rng.normal(size=n))
    rng = np.random.default_rng(seed)
    spikes = (rng.random(n_pre) < spike_p).astype(np.float32)
    return mat, jnp.asarray(spikes)


# native CPU kernel and the portable pure-JAX path; native=True fails where a compiler is present but the
# kernels do not build (the `native` and `native_kernels` fixtures in conftest.py)
@pytest.mark.parametrize("native", [True, False], indirect=True)
@settings(max_examples=6, deadline=None)  # each example compiles anew (shapes differ)
@given(seed=st.integers(0, 10_000), n_pre=st.integers(1, 120), n_post=st.integers(1, 90),
       p=st.floats(0.0, 1.0), spike_p=st.sampled_from([0.0, 0.02, 0.3, 1.0]), capacity=st.integers(1, 64))
def test_event_operator_equals_dense_and_bcoo(native, seed, n_pre, n_post, p, spike_p, capacity):
    mat, spikes = _random_case(seed, n_pre, n_post, p, spike_p)
    dense = np.asarray(mat.todense())
    expected = np.asarray(spikes) @ dense
    op = EventOperator.from_sparse(mat, capacity=capacity, native=native)
    np.testing.assert_allclose(np.asarray(jax.jit(op.__call__)(spikes)), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(sparse.bcoo_dot_general(
        mat, spikes, dimension_numbers=(([0], [0]), ([], [])))), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(op.to_dense()), dense, rtol=0, atol=0)


@pytest.mark.parametrize("native", [True, False], indirect=True)
def test_every_neuron_spiking_beyond_capacity_is_exact(native):
    mat, _ = _random_case(3, 500, 400, 0.1, 0.0)
    op = EventOperator.from_sparse(mat, capacity=8, native=native)
    spikes = jnp.ones(500)
    np.testing.assert_allclose(np.asarray(jax.jit(op.__call__)(spikes)), np.asarray(mat.todense()).sum(0),
                               rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("native", [True, False], indirect=True)
def test_homogeneous_weights(native):
    mat = connectivity.fixed_probability(jax.random.key(8), 300, 200, 0.05, 6.0)
    op = EventOperator.from_sparse(mat, homogeneous=True, native=native)
    assert op.weights.shape == () and op.homogeneous
    spikes = (jax.random.uniform(jax.random.key(9), (300,)) < 0.1).astype(jnp.float32)
    np.testing.assert_allclose(np.asarray(op(spikes)), np.asarray(spikes @ mat.todense()), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(op.to_dense()), np.asarray(mat.todense()))
    g = jax.grad(lambda w: jnp.sum(eqx.tree_at(lambda o: o.weights, op, w)(spikes) ** 2))(op.weights)
    g_dense = jax.grad(lambda w: jnp.sum((spikes @ jnp.where(mat.todense() != 0, w, 0.0)) ** 2))(op.weights)
    np.testing.assert_allclose(float(g), float(g_dense), rtol=1e-4)
    with pytest.raises(ValueError, match="homogeneous=True needs all weights equal"):
        EventOperator.from_sparse(connectivity.from_indices([0, 1], [0, 0], 2, 1, [1.0, 2.0]), homogeneous=True)


def test_float_spike_values_are_weighted():
    mat, spikes = _random_case(4, 50, 30, 0.3, 0.5)
    op = EventOperator.from_sparse(mat, capacity=50)
    values = spikes * jnp.linspace(0.1, 1.0, 50)
    np.testing.assert_allclose(np.asarray(op(values)), np.asarray(values @ mat.todense()), rtol=1e-5, atol=1e-5)


def test_bcsr_input_is_accepted():
    mat, spikes = _random_case(5, 40, 30, 0.2, 0.3)
    op = EventOperator.from_sparse(sparse.BCSR.from_bcoo(mat))
    np.testing.assert_allclose(np.asarray(op(spikes)), np.asarray(spikes @ mat.todense()), rtol=1e-5, atol=1e-5)


# sparse, exact, native
@pytest.mark.parametrize("capacity, native", [(4, False), (200, False), (4, True)], indirect=["native"])
def test_weight_and_spike_gradients_match_dense_autodiff(capacity, native):
    mat, spikes = _random_case(6, 200, 50, 0.1, 0.1)
    op = EventOperator.from_sparse(mat, capacity=capacity, native=native)
    target = jnp.linspace(-1, 1, 50)

    def loss_event(op, s):
        return jnp.sum((op(s) - target) ** 2)

    def loss_dense(w, s):
        return jnp.sum((s @ w - target) ** 2)

    g_op, g_s = eqx.filter_grad(loss_event, )(op, spikes), jax.grad(loss_event, argnums=1)(op, spikes)
    g_w_dense, g_s_dense = jax.grad(loss_dense, argnums=(0, 1))(op.to_dense(), spikes)
    # gradient w.r.t. each stored weight = dense gradient at its (pre, post) position
    rows, slots = np.nonzero(np.asarray(op.targets) < op.n_post)
    cols = np.asarray(op.targets)[rows, slots]
    np.testing.assert_allclose(np.asarray(g_op.weights)[rows, slots], np.asarray(g_w_dense)[rows, cols],
                               rtol=1e-5, atol=1e-5)
    # the spike-value gradient is exact for every presynaptic neuron, spiking or not (surrogate gradients
    # reach silent neurons through it)
    np.testing.assert_allclose(np.asarray(g_s), np.asarray(g_s_dense), rtol=1e-4, atol=1e-4)


def test_gradients_under_vmap():
    mat, spikes = _random_case(7, 60, 40, 0.2, 0.2)
    op = EventOperator.from_sparse(mat)
    batch = jnp.stack([spikes, 1.0 - spikes, jnp.ones_like(spikes)])
    loss = lambda w, s: jnp.sum(eqx.tree_at(lambda o: o.weights, op, w)(s) ** 2)
    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0))(op.weights, batch)
    dense = jax.vmap(jax.grad(lambda w, s: jnp.sum((s @ w) ** 2)), in_axes=(None, 0))(op.to_dense(), batch)
    rows, slots = np.nonzero(np.asarray(op.targets) < op.n_post)
    cols = np.asarray(op.targets)[rows, slots]
    np.testing.assert_allclose(np.asarray(per_example)[:, rows, slots], np.asarray(dense)[:, rows, cols],
                               rtol=1e-4, atol=1e-4)


def test_compact_spikes_counts_and_pads():
    spikes = jnp.array([0, 1, 0, 1, 1, 0.0])
    idx, count = compact_spikes(spikes, 5)
    assert int(count) == 3
    np.testing.assert_array_equal(np.asarray(idx), [1, 3, 4, 6, 6])


def test_bad_inputs():
    mat, _ = _random_case(1, 10, 10, 0.5, 0)
    op = EventOperator.from_sparse(mat)
    with pytest.raises(ValueError, match=r"spikes have shape \(9,\), expected \(10,\)"):
        op(jnp.zeros(9))
    with pytest.raises(TypeError, match="expects a jax.experimental.sparse BCOO/BCSR matrix"):
        EventOperator.from_sparse(np.eye(3))
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        EventOperator.from_sparse(mat, capacity=0)


@pytest.mark.parametrize("native", [True, False], indirect=True)
def test_accumulate_with_row_offset_and_its_gradients(native):
    mat, _ = _random_case(10, 30, 25, 0.3, 0.0)
    op = EventOperator.from_sparse(mat, capacity=4, native=native)
    full = (jax.random.uniform(jax.random.key(11), (50,)) < 0.4).astype(jnp.float32)
    g0 = jnp.linspace(0.0, 1.0, 25)
    dense = mat.todense()
    expected = g0 + full[10:40] @ dense
    np.testing.assert_allclose(np.asarray(jax.jit(lambda g, s: op.accumulate(g, s, 10))(g0, full)),
                               np.asarray(expected), rtol=1e-5, atol=1e-5)
    loss = lambda g, s: jnp.sum(jnp.sin(op.accumulate(g, s, 10)))
    dense_loss = lambda g, s: jnp.sum(jnp.sin(g + s[10:40] @ dense))
    for got, want in zip(jax.grad(loss, argnums=(0, 1))(g0, full), jax.grad(dense_loss, argnums=(0, 1))(g0, full)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="have no rows 30..60"):
        op.accumulate(g0, full, 30)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_pack_spikes_matches_numpy_packbits(n):
    from brainsim.propagation import pack_spikes

    spikes = (np.random.default_rng(n).random(n) < 0.3).astype(np.float32)
    spikes[::5] *= 0.5  # STP-scaled values are spikes too
    got = np.asarray(jax.jit(pack_spikes)(jnp.asarray(spikes)))
    np.testing.assert_array_equal(got, np.packbits(spikes != 0))
