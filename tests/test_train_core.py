"""brainsim.train: surrogates, bijections, layers, BPTT modes, gradients (finite differences in float64)."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.neurons import LIF
from brainsim.spikes import spike
from brainsim.train import (Bounded, Constrained, DaleSign, LeakyReadout, Positive, Sequential, SparseLinear,
                            SpikingLayer, SURROGATES, bptt, constrain, encoders, freeze, losses, ml_lif,
                            regularizers, resolve, surrogate_derivative, trainable)


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogates_exact_forward_and_unit_integral(name):
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_array_equal(np.asarray(spike(x, name, 4.0)), (np.asarray(x) > 0).astype(np.float32))
    grid = jnp.linspace(-40, 40, 400_001)
    d = surrogate_derivative(name, grid, 4.0)
    assert abs(float(jnp.sum(d) * (grid[1] - grid[0])) - 1.0) < 0.02
    g = jax.grad(lambda v: spike(v, name, 4.0).sum())(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(surrogate_derivative(name, x, 4.0)), rtol=1e-6)


def test_membrane_surrogate_width_follows_distribution():
    narrow = surrogate_derivative("membrane", jnp.linspace(-0.1, 0.1, 11), 1.0)
    wide = surrogate_derivative("membrane", jnp.linspace(-10, 10, 11), 1.0)
    assert float(narrow[5]) > 50 * float(wide[5])


def test_bijections_round_trip_and_constraints():
    for bij, value in ((Positive(1.0), 3.0), (Bounded(-60.0, -40.0), -50.0)):
        c = Constrained.from_value(np.full(4, value), bij)
        np.testing.assert_allclose(np.asarray(c.value), value, rtol=1e-5)
        shifted = Constrained(c.raw - 100.0, bij).value
        assert np.all(np.isfinite(shifted))
    assert float(Constrained(jnp.array(-1e3), Positive(1.0)).value) >= 1.0
    with pytest.raises(ValueError, match="must be > 1.0"):
        Constrained.from_value(0.5, Positive(1.0), "tau_m")
    with pytest.raises(ValueError, match="lie in"):
        Constrained.from_value(0.0, Bounded(-60.0, -40.0), "v_th")


def test_dale_sign_keeps_row_signs_under_any_update():
    signs = np.array([1, 1, -1])
    w = np.abs(np.random.default_rng(0).normal(size=(3, 4))) * signs[:, None]
    c = Constrained.from_value(w, DaleSign(signs), "W")
    np.testing.assert_allclose(np.asarray(c.value), w, rtol=1e-4, atol=1e-5)
    moved = Constrained(c.raw + 50 * jax.random.normal(jax.random.key(0), c.raw.shape), c.bijection).value
    assert np.all(np.asarray(moved)[:2] >= 0) and np.all(np.asarray(moved)[2] <= 0)
    with pytest.raises(ValueError, match="Dale"):
        Constrained.from_value(-w, DaleSign(signs), "W")
    spec = trainable({"w": c})
    assert spec["w"].bijection.signs is False


def test_constrain_and_freeze_same_lif_model():
    lif = constrain(LIF(5, tau_m=10.0), tau_m=Positive(1.0), v_th=Bounded(-60.0, -40.0))
    plain = resolve(lif)
    assert isinstance(plain, LIF)
    np.testing.assert_allclose(np.asarray(plain.tau_m), 10.0, rtol=1e-5)
    spec = freeze(lif, lambda m: m.v_th, lambda m: m.C_m)
    params, _ = eqx.partition(lif, spec)
    assert params.C_m is None and params.v_th.raw is None and params.tau_m.raw is not None
    with pytest.raises(ValueError, match="no parameter"):
        constrain(LIF(5), tau_q=Positive())


def _small_net(key, recurrent=True, n_in=6, n_h=10, n_out=3, **kw):
    k1, k2 = jax.random.split(key)
    return Sequential([SpikingLayer(n_in, n_h, key=k1, recurrent=recurrent, scale=3.0, **kw),
                       LeakyReadout(n_h, n_out, key=k2)])


def test_modes_agree_forward_and_checkpointed_gradient_equals_full():
    net = _small_net(jax.random.key(0), tau_syn=5.0)
    xs = encoders.rate(jax.random.key(1), jnp.linspace(0, 1, 6), 37, max_rate=300.0)
    out_full, aux_full = net(xs, mode="full", record=True)
    out_ck, aux_ck = net(xs, mode="checkpointed", chunk=5, record=True)
    np.testing.assert_allclose(np.asarray(out_full), np.asarray(out_ck), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(aux_full["counts"][0]), np.asarray(aux_ck["counts"][0]))
    assert aux_full["spikes"][0].shape == (37, 10)
    loss = lambda m, mode: losses.ce_max_membrane(m(xs, mode=mode, chunk=6)[0], 1)
    g_full = eqx.filter_grad(loss)(net, "full")
    g_ck = eqx.filter_grad(loss)(net, "checkpointed")
    for a, b in zip(jax.tree_util.tree_leaves(g_full), jax.tree_util.tree_leaves(g_ck)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-6)


def test_truncated_window_T_equals_full_and_spatial_differs():
    net = _small_net(jax.random.key(2))
    xs = encoders.rate(jax.random.key(3), jnp.linspace(0, 1, 6), 20, max_rate=300.0)
    step_ce = losses.step_cross_entropy
    full = lambda m: jax.vmap(step_ce, (0, None))(m(xs)[0], 2).sum()
    g_full = eqx.filter_grad(full)(net)
    g_T = eqx.filter_grad(lambda m: m.online_loss(step_ce, xs, 2, window=20))(net)
    w = lambda g: np.asarray(g.layers[0].projection.weight)
    np.testing.assert_allclose(w(g_T), w(g_full), rtol=2e-4, atol=1e-6)
    assert float(net.online_loss(step_ce, xs, 2)) == pytest.approx(float(full(net)), rel=1e-5)
    g_1 = eqx.filter_grad(lambda m: m.online_loss(step_ce, xs, 2, window=1))(net)
    assert np.all(np.isfinite(w(g_1))) and not np.allclose(w(g_1), w(g_full))
    # the same truncation as bptt.truncated_loss over the layers' own step (the loop online_loss had before it
    # became run of the network form with the Truncated adjoint)
    def by_step(m, window):
        def per_step(model, state, x_t, label):
            state, (out, _) = model.step(state, x_t)
            return state, step_ce(out, label)
        return bptt.truncated_loss(per_step, m, m.init(), xs, 2, window=window)
    for window in (1, 5):
        g_new = eqx.filter_grad(lambda m: m.online_loss(step_ce, xs, 2, window=window))(net)
        np.testing.assert_allclose(w(g_new), w(eqx.filter_grad(by_step)(net, window)), rtol=2e-4, atol=1e-6)
    g_7 = eqx.filter_grad(lambda m: m.online_loss(step_ce, xs, 2, window=7))(net)  # need not divide T
    assert np.all(np.isfinite(w(g_7))) and not np.allclose(w(g_7), w(g_full))


def test_finite_differences_float64_subthreshold_and_rate_model():
    with jax.enable_x64(True):
        key = jax.random.key(4)
        layer = SpikingLayer(3, 4, key=key, neuron=ml_lif(4, v_th=1e3, surrogate="triangle"), tau_syn=4.0)  # never spikes, surrogate support not reached: smooth
        xs = jax.random.uniform(jax.random.key(5), (25, 3), dtype=jnp.float64)
        layer = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, layer)

        def loss(raw_tau, weight, tau_syn_raw):
            m = eqx.tree_at(lambda l: (l.neuron.tau_m.raw, l.projection.weight, l.synapse.tau.raw), layer,
                            (raw_tau, weight, tau_syn_raw))
            _, (_, v) = jax.lax.scan(lambda s, c: m.step(s, c), m.init(), m.project(xs))
            return jnp.sum(v ** 2) + jnp.sum(jnp.sin(v))

        args = (layer.neuron.tau_m.raw, layer.projection.weight, layer.synapse.tau.raw)
        grads = jax.grad(loss, argnums=(0, 1, 2))(*args)
        eps = 1e-6
        for k, (a, g) in enumerate(zip(args, grads)):
            flat = np.asarray(a).ravel()
            for j in range(0, flat.size, max(1, flat.size // 4)):
                d = np.zeros_like(flat)
                d[j] = eps
                bump = lambda s: tuple(jnp.asarray((flat + s * d).reshape(a.shape)) if i == k else args[i] for i in range(3))
                fd = (loss(*bump(1)) - loss(*bump(-1))) / (2 * eps)
                np.testing.assert_allclose(float(np.asarray(g).ravel()[j]), float(fd), rtol=1e-6, atol=1e-9)

        # a rate model: leaky readout driven by a smooth rate, MSE to a target trace
        ro = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a,
                                    LeakyReadout(3, 2, key=key))

        def rate_loss(raw_tau):
            m = eqx.tree_at(lambda r: r.tau.raw, ro, raw_tau)
            _, (v, _) = jax.lax.scan(lambda s, c: m.step(s, c), m.init(), m.project(xs))
            return jnp.sum((v - 0.3) ** 2)

        raw = ro.tau.raw
        g = jax.grad(rate_loss)(raw)
        for j in range(2):
            d = jnp.zeros_like(raw).at[j].set(eps)
            fd = (rate_loss(raw + d) - rate_loss(raw - d)) / (2 * eps)
            np.testing.assert_allclose(float(g[j]), float(fd), rtol=1e-6, atol=1e-9)


def test_vmap_grad_equals_grad_vmap():
    net = _small_net(jax.random.key(6))
    xb = encoders.rate(jax.random.key(7), jnp.ones((4, 6)) * 0.5, 15, max_rate=300.0).transpose(1, 0, 2)
    yb = jnp.array([0, 1, 2, 1])
    params, static = eqx.partition(net, eqx.is_inexact_array)
    per = lambda p, x, y: losses.ce_max_membrane(eqx.combine(p, static)(x)[0], y)
    g_each = jax.vmap(jax.grad(per), (None, 0, 0))(params, xb, yb)
    g_mean_of_each = jax.tree_util.tree_map(lambda a: a.mean(0), g_each)
    g_of_mean = jax.grad(lambda p: jax.vmap(per, (None, 0, 0))(p, xb, yb).mean())(params)
    for a, b in zip(jax.tree_util.tree_leaves(g_mean_of_each), jax.tree_util.tree_leaves(g_of_mean)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_sparse_layer_and_adaptive_neurons_train_their_parameters():
    key = jax.random.key(8)
    layer = SpikingLayer(8, 6, key=key, sparse_p=0.5, neuron=ml_lif(6, adaptive=True, b=0.2, a=0.01), recurrent=True)
    xs = encoders.rate(jax.random.key(9), jnp.ones(8), 30, max_rate=500.0)

    def loss(m):
        _, (s, v) = jax.lax.scan(lambda st, c: m.step(st, c), m.init(), m.project(xs))
        return jnp.sum(jax.nn.sigmoid(v)) + s.sum()

    g = eqx.filter_grad(loss)(layer)
    assert float(jnp.abs(g.projection.operator.weights).sum()) > 0  # sparse weights through EventOperator VJP
    for name in ("b", "a", "tau_w", "v_reset"):
        assert np.all(np.isfinite(np.asarray(getattr(g.neuron, name)))), name
    assert np.all(np.isfinite(np.asarray(g.neuron.v_th.raw)))  # a declared-learnable (Constrained) threshold
    assert float(jnp.abs(g.neuron.b).sum()) > 0 and float(jnp.abs(g.neuron.v_th.raw).sum()) > 0


def test_encoders_losses_regularizers():
    k = jax.random.key(10)
    p = encoders.poisson(k, jnp.full((2000,), 100.0), 50, 1.0)
    assert abs(float(p.mean()) - 0.1) < 0.01
    for lat in (encoders.latency(jnp.array([1.0, 0.011, 0.0]), 10), encoders.latency(jnp.array([1.0, 0.5, 0.0]), 10, linear=True)):
        assert lat.sum(0).tolist() == [1.0, 1.0, 0.0] and int(jnp.argmax(lat[:, 0])) < int(jnp.argmax(lat[:, 1]))
    ev = encoders.delta(jnp.array([[0.0], [0.5], [1.2], [0.1]]), 0.4)
    assert ev.shape == (4, 2) and ev[:, 0].tolist() == [0, 1, 1, 0] and ev[:, 1].tolist() == [0, 0, 0, 1]
    s = jnp.zeros((100, 3)).at[10, 0].set(1.0)
    assert float(losses.van_rossum_distance(s, s, 5.0, 1.0)) == 0.0
    assert float(losses.van_rossum_distance(s, jnp.zeros_like(s), 5.0, 1.0)) == pytest.approx(0.2 / (1 - np.exp(-0.4)), rel=1e-5)  # sum_t exp(-2t/5) dt/tau
    assert float(losses.rate_mse(s, jnp.array([10.0, 0.0, 0.0]), 1.0)) == pytest.approx(0.0)
    assert float(losses.spike_count_mse(s, jnp.array([1.0, 0, 0]))) == 0.0
    assert float(regularizers.rate_band(jnp.array([0.5, 5.0]), 100, 1.0, 10.0, 100.0)) == pytest.approx(12.5)  # 5 Hz: (10-5)^2, 50 Hz: 0
    assert float(regularizers.hoyer(jnp.array([1.0, 0, 0, 0]))) == pytest.approx(1.0)
    assert float(regularizers.membrane_distribution(jnp.zeros(3), jnp.full(3, 0.25), 0.0, 0.5)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        losses.ce_max_membrane(jnp.zeros((5, 3)), 3)


def test_bad_inputs_have_clear_errors():
    net = _small_net(jax.random.key(11))
    with pytest.raises(ValueError, match=r"shape \(T, 6\)"):
        net(jnp.zeros((10, 5)))
    with pytest.raises(ValueError, match="unknown BPTT mode"):
        net(jnp.zeros((10, 6)), mode="sideways")
    with pytest.raises(ValueError, match="do not chain"):
        Sequential([SpikingLayer(3, 4, key=jax.random.key(0)), LeakyReadout(5, 2, key=jax.random.key(1))])
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        encoders.direct(jnp.ones(3), 0)

