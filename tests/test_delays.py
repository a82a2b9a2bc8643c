"""Per-synapse delays (event-driven, exact) and learnable DCLS delays."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse
import pytest

from brainsim.connectivity import fixed_probability
from brainsim.delays import DelayedDense, DelayedEventOperator, anneal_sigma, check_integer_delays
from brainsim.inputs import SpikeTimes
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF
from brainsim.synapses import CurrentOutput, Delta, Receptor


def brute_force(dense_w, dense_d, spikes):
    """out[t, j] = sum_i w_ij * spikes[t - d_ij, i] over existing synapses (d = -1: none)."""
    T = spikes.shape[0]
    out = np.zeros((T, dense_w.shape[1]))
    for i, j in zip(*np.nonzero(dense_d >= 0)):
        d = dense_d[i, j]
        for t in np.nonzero(spikes[:, i])[0]:
            if t + d < T:
                out[t + d, j] += dense_w[i, j] * spikes[t, i]
    return out


def propagate_all(op, spikes):
    """Input arriving at every step, ``(T, n_post)``, for spikes ``(T, n_pre)`` emitted through ``op``."""
    def body(carry, x):
        buf, t = carry
        buf, arrived = op.propagate(buf, t, x)
        return (buf, t + 1), arrived
    return jax.lax.scan(body, (op.init_buffer(), jnp.int32(0)), spikes)[1]


def delay_matrix(m, values):
    """Delays at the stored entries of ``m``: a sparse matrix of the same synapses."""
    return sparse.BCOO((jnp.asarray(values), m.indices), shape=m.shape)


def random_operator(seed, n_pre=12, n_post=9, max_delay=7, p=0.5, capacity=None):
    rng = np.random.default_rng(seed)
    m = fixed_probability(jax.random.key(seed), n_pre, n_post, p, lambda r, n: r.normal(1.0, 0.5, n))
    delays = rng.integers(0, max_delay + 1, size=m.nse)
    return (DelayedEventOperator.from_sparse(m, delay_matrix(m, delays), max_delay=max_delay, capacity=capacity), m,
            delays)


@pytest.mark.parametrize("seed, capacity", [(0, None), (1, 2), (2, 1)])
def test_heterogeneous_delays_equal_brute_force(seed, capacity):
    op, m, delays = random_operator(seed, capacity=capacity)
    rng = np.random.default_rng(seed + 10)
    T = 60
    spikes = (rng.random((T, op.n_pre)) < 0.25).astype(np.float32) * rng.uniform(0.5, 1.5, (T, op.n_pre))

    got = np.asarray(jax.jit(propagate_all)(op, jnp.asarray(spikes)))
    W, D = op.to_dense()
    # the dense reference is built from the BCOO input, not from the ELL layout
    Wr, Dr = np.zeros_like(W), np.full(D.shape, -1)
    idx = np.asarray(m.indices)
    Wr[idx[:, 0], idx[:, 1]] = np.asarray(m.data)
    Dr[idx[:, 0], idx[:, 1]] = delays
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_allclose(got, brute_force(Wr, Dr, spikes), rtol=1e-5, atol=1e-5)


def test_delay_buffer_memory_is_max_delay_times_neurons():
    op, _, _ = random_operator(0, n_pre=50, n_post=40, max_delay=20, p=0.9)
    assert op.init_buffer().shape == (21, 40)
    assert op.delays.dtype == jnp.int8  # 1 byte per synapse for delays < 128 steps


def test_heterogeneous_delays_in_network_are_exact():
    # spike sources -> delta-current receptor: arrival step of each spike is visible in the input current
    dt, n_pre, n_post, T = 0.5, 6, 4, 40
    rng = np.random.default_rng(4)
    times = np.array([0.0, 1.0, 3.0, 5.5, 7.0, 7.0])
    idx = np.array([0, 1, 2, 3, 4, 5])
    m = fixed_probability(jax.random.key(3), n_pre, n_post, 0.7, lambda r, n: r.uniform(1, 2, n))
    delays_ms = dt * rng.integers(0, 9, size=m.nse)
    op = DelayedEventOperator.from_sparse(m, delay_matrix(m, delays_ms), dt=dt, max_delay=10)
    net = Network({"src": Population(SpikeTimes(n_pre, times, idx, dt)),
                   "post": Population(LIF(n_post, v_th=1e9), {"i": Receptor(Delta(), CurrentOutput())})},
                  {"p": Projection("src", "post", "i", op)})
    state = net.init(dt)
    step = jax.jit(lambda state, key: net.step(state, dt, key=key)[0])
    arrivals = []
    for k in range(T):
        state = step(state, jax.random.key(k))
        arrivals.append(np.asarray(state.receptors["post"]["i"]))
    spikes = np.zeros((T, n_pre))
    spikes[np.round(times / dt).astype(int), idx] = 1.0
    W, D = op.to_dense()
    np.testing.assert_allclose(np.stack(arrivals), brute_force(W, D, spikes), rtol=1e-6, atol=1e-6)


def test_delayed_operator_gradient_matches_finite_differences():
    op, _, _ = random_operator(5, n_pre=5, n_post=4, max_delay=3, p=0.8)
    spikes = jnp.asarray((np.random.default_rng(0).random((12, 5)) < 0.4).astype(np.float32))

    def loss(w):
        out = propagate_all(eqx.tree_at(lambda o: o.weights, op, w), spikes)
        return jnp.sum(out ** 2 * jnp.arange(12.0)[:, None])

    g = jax.grad(loss)(op.weights)
    eps = 1e-2
    for (i, k) in [(0, 0), (1, 1), (3, 0)]:
        if int(op.targets[i, k]) >= op.n_post:
            continue
        e = jnp.zeros_like(op.weights).at[i, k].set(eps)
        fd = (loss(op.weights + e) - loss(op.weights - e)) / (2 * eps)
        np.testing.assert_allclose(float(g[i, k]), float(fd), rtol=2e-2, atol=1e-2)


def test_dcls_hard_kernel_equals_event_operator_and_gradients_flow():
    layer = DelayedDense(6, 3, 9, key=jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (50, 6)) < 0.2).astype(jnp.float32)
    op = layer.to_event_operator()

    outs = jax.jit(lambda x: propagate_all(op, x))(x)
    np.testing.assert_allclose(np.asarray(outs), np.asarray(layer(x, hard=True)), rtol=1e-5, atol=1e-5)
    W = np.asarray(layer.weight)
    np.testing.assert_allclose(np.asarray(layer(x, hard=True)),
                               brute_force(W, layer.integer_delays(), np.asarray(x)), rtol=1e-5, atol=1e-5)
    # soft kernel: normalised over taps, gradient w.r.t. the delays is finite and nonzero
    k = layer.kernel(2.0)
    np.testing.assert_allclose(np.asarray(k.sum(0)), W, rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda l: jnp.sum(l(x, 2.0)[:, 0] * jnp.arange(50.0)))(layer)
    assert np.all(np.isfinite(np.asarray(g.delay_raw))) and np.abs(np.asarray(g.delay_raw)).max() > 0
    frozen = DelayedDense(6, 3, 9, key=jax.random.key(0), learn_delays=False)
    g0 = jax.grad(lambda l: jnp.sum(l(x, 2.0)))(frozen)
    assert np.all(np.asarray(g0.delay_raw) == 0)
    assert float(anneal_sigma(0, 10, 4.0)) == pytest.approx(4.0) and float(anneal_sigma(9, 10, 4.0)) == pytest.approx(0.5)


def test_dcls_batched_input():
    layer = DelayedDense(4, 2, 5, key=jax.random.key(2))
    x = (jax.random.uniform(jax.random.key(3), (3, 20, 4)) < 0.3).astype(jnp.float32)
    np.testing.assert_allclose(np.asarray(layer(x, 1.5)[1]), np.asarray(layer(x[1], 1.5)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ bad input
def test_negative_delays_rejected():
    m = fixed_probability(jax.random.key(0), 4, 3, 0.9, 1.0)
    with pytest.raises(ValueError, match=r"DelayedEventOperator.from_sparse: delays must be >= 0 steps, got -1"):
        DelayedEventOperator.from_sparse(m, -1)


def test_non_integer_delays_rejected():
    m = fixed_probability(jax.random.key(0), 4, 3, 0.9, 1.0)
    with pytest.raises(ValueError, match=r"delays in steps must be integer numbers of steps; got 1.5"):
        DelayedEventOperator.from_sparse(m, 1.5)
    # in ms, off the grid of steps: the one rounding rule of every delay (nearest step, halves up), with a warning
    with pytest.warns(UserWarning, match=r"not whole numbers of steps of dt = 0.4 ms \(e.g. 1.0 ms\)"):
        op = DelayedEventOperator.from_sparse(m, 1.0, dt=0.4)
    assert np.all(op.to_dense()[1][op.to_dense()[1] >= 0] == 3)


def test_delays_over_maximum_rejected():
    m = fixed_probability(jax.random.key(0), 4, 3, 0.9, 1.0)
    with pytest.raises(ValueError, match=r"delay of 9 steps exceeds max_delay = 5 steps"):
        DelayedEventOperator.from_sparse(m, 9, max_delay=5)


def test_delay_shape_and_nan_rejected():
    m = fixed_probability(jax.random.key(0), 4, 3, 0.9, 1.0)
    with pytest.raises(ValueError, match=r"plain array cannot be matched to the synapses"):
        DelayedEventOperator.from_sparse(m, np.ones(m.nse, int))
    with pytest.raises(ValueError, match="delays contain NaN or infinite values"):
        check_integer_delays([1.0, np.nan], "X")
    with pytest.raises(ValueError, match="max_delay must be a non-negative integer"):
        DelayedEventOperator(np.ones((2, 2)), np.zeros((2, 2), int), np.zeros((2, 2), int), 3, max_delay=2.5)


def test_projection_rejects_two_kinds_of_delay():
    op, _, _ = random_operator(0)
    with pytest.raises(ValueError, match="cannot be combined"):
        Projection("a", "b", "r", op, delay=1.0)


def test_dcls_bad_arguments():
    with pytest.raises(ValueError, match="max_delay must be an integer number of steps >= 1"):
        DelayedDense(3, 2, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"init_delays must lie in \[0, max_delay = 4\] steps"):
        DelayedDense(3, 2, 4, key=jax.random.key(0), init_delays=7.0)
    layer = DelayedDense(3, 2, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"input has shape \(10, 5\), expected \(T, 3\)"):
        layer(jnp.zeros((10, 5)))


@pytest.mark.parametrize("max_delay, homogeneous", [(7, False), (300, True), (40000, False)])  # int8, int16, int32
def test_native_schedule_equals_the_pure_path(native_kernels, max_delay, homogeneous):
    from brainsim import delays as D

    rng = np.random.default_rng(max_delay)
    m = fixed_probability(jax.random.key(3), 40, 30, 0.3, 1.0 if homogeneous else (lambda r, n: r.normal(1.0, 0.5, n)))
    op = DelayedEventOperator.from_sparse(m, delay_matrix(m, rng.integers(0, max_delay + 1, size=m.nse)),
                                          max_delay=max_delay, homogeneous=homogeneous)
    assert np.dtype(op.delays.dtype) == {7: np.int8, 300: np.int16, 40000: np.int32}[max_delay]
    buffer = jnp.asarray(rng.normal(size=(op.depth, op.n_post)), jnp.float32)
    spikes = jnp.asarray((rng.random(op.n_pre) < 0.3) * rng.uniform(0.5, 1.5, op.n_pre), jnp.float32)
    step = jnp.int32(12345)
    native = jax.jit(D._schedule_native)(buffer, spikes, op.targets, op.delays, op.weights, step)
    pure = jax.jit(D._schedule_pure, static_argnums=6)(buffer, spikes, op.targets, op.delays, op.weights, step, 5)
    np.testing.assert_allclose(np.asarray(native), np.asarray(pure), rtol=1e-6, atol=1e-6)
