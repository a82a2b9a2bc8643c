"""What snnTorch/Spyx users expect around the layers: trainable defaults, model summary, mixed precision, dropout,
batch norm."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from brainsim.network import Network, Population
from brainsim.neurons import LIF
from brainsim.plasticity.modulators import Signal
from brainsim.synapses import CurrentOutput, Instant, Receptor
from brainsim.train import (BatchNorm, Chain, Conv2d, Dropout, Flatten, LeakyReadout, Linear, Positive, Precision,
                            Sequential, SpikingLayer, SumPool2d, calibrate_batch_norm, constrain, fit, inference_mode,
                            losses, mixed_precision, ml_lif, resolve, summary, trainable, with_dropout_keys)


def _model(key=jax.random.key(0), **kw):
    k1, k2 = jax.random.split(key)
    return Sequential([SpikingLayer(6, 8, key=k1, recurrent=True, scale=4.0, **kw), LeakyReadout(8, 3, key=k2)])


def test_weights_and_declared_parameters_train_constants_do_not():
    spec = trainable(_model(tau_syn=4.0))
    layer, readout = spec.layers
    assert layer.projection.weight is True and layer.projection.bias is True and layer.recurrent_weight is True
    assert layer.neuron.tau_m.raw is True and layer.neuron.v_th.raw is True  # ml_lif's learn_tau, learn_threshold
    assert layer.synapse.tau.raw is True and readout.tau.raw is True  # tau_syn and the readout's tau
    for name in ("C_m", "v_rest", "v_reset", "t_ref"):
        assert getattr(layer.neuron, name) is False, name
    fixed = trainable(SpikingLayer(6, 8, key=jax.random.key(0), neuron=ml_lif(8, learn_tau=False,
                                                                             learn_threshold=False)))
    assert not any(jax.tree_util.tree_leaves(fixed.neuron))
    # a biophysical model: its constants stay unless declared learnable
    lif = LIF(5)
    assert not any(jax.tree_util.tree_leaves(trainable(lif)))
    assert any(jax.tree_util.tree_leaves(trainable(constrain(lif, tau_m=Positive(1.0)))))
    # a network's input replay and neuron constants are not parameters; its projections' weights are
    net, _ = _model().to_network(n_steps=5)
    spec = trainable(net)
    assert spec.populations["in"].model.values is False
    assert spec.projections["in->layer0"].weight is True


def test_ml_presets_are_consistent():
    alif = ml_lif(4, adaptive=True)
    assert float(jnp.max(alif.b)) == 0.0 and float(jnp.max(alif.a)) == 0.0  # no biophysical adaptation current
    assert float(alif.delta_theta[0]) == pytest.approx(0.3) and float(resolve(alif).v_th[0]) == 1.0


def test_fit_trains_what_trainable_says():
    model = _model()
    rng = np.random.default_rng(0)
    x = (rng.random((32, 15, 6)) < 0.3).astype(np.float32)
    y = (np.arange(32) % 3).astype(np.int32)
    x[y == 1, :, :3] = 1.0

    def loss_fn(m, xs, label, key):
        out, _ = m(xs)
        return losses.ce_max_membrane(out, label)

    result = fit(model, loss_fn, (x, y), optimizer=optax.adam(1e-2), epochs=2, batch_size=16, progress=False)
    before, after = model.layers[0].neuron, result.model.layers[0].neuron
    np.testing.assert_array_equal(after.C_m, before.C_m)
    np.testing.assert_array_equal(after.v_reset, before.v_reset)
    assert not np.allclose(resolve(after).v_th, resolve(before).v_th)
    assert not np.allclose(after.tau_m.raw, before.tau_m.raw)


def test_summary_counts_parameters():
    conv = Conv2d((1, 6, 6), 4, 3, padding=1, key=jax.random.key(0))
    model = Sequential([SpikingLayer(conv), LeakyReadout(Chain([SumPool2d(conv.out_shape, 2), Flatten((4, 3, 3)),
                                                                Linear(36, 5, key=jax.random.key(1))]))])
    text = summary(model)
    assert "Conv2d" in text and "SumPool2d > Flatten > Linear" in text and "4x6x6" in text
    conv_params = 4 * 9 + 4 + 2 * 144  # weights, bias, per-neuron tau_m and v_th
    readout = 36 * 5 + 5 + 5
    assert f"trainable parameters: {conv_params + readout:,}" in text
    assert f"fixed: {4 * 144:,}" in text  # C_m, v_rest, v_reset, t_ref of 144 neurons
    assert "trainable parameters" in summary(LIF(3))
    assert f"trainable parameters: {conv_params + readout + 4 * 144:,}" in summary(model, eqx.is_inexact_array)


def test_mixed_precision_keeps_float32_state_and_parameters():
    model = _model(jax.random.key(3))
    low = mixed_precision(model, jnp.bfloat16)
    assert isinstance(low.layers[0].projection, Precision) and low.layers[0].projection.compute_dtype == "bfloat16"
    assert low.layers[0].projection.synapses.weight.dtype == jnp.float32  # master weights stay float32
    xs = (jax.random.uniform(jax.random.key(4), (30, 6)) < 0.3).astype(jnp.float32)
    out32, aux32 = model(xs)
    out16, aux16 = low(xs)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(out16, out32, rtol=0.05, atol=0.05)
    grads = jax.grad(lambda m: jnp.sum(m(xs)[0] ** 2))(low)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(g.dtype == jnp.float32 and np.all(np.isfinite(g)) for g in leaves)
    back = mixed_precision(low, jnp.float32)
    np.testing.assert_array_equal(back(xs)[0], out32)
    with pytest.raises(ValueError, match="compute_dtype"):
        Precision(model.layers[0].projection, jnp.int8)


def test_batched_calls_for_equinox_and_nnx_users():
    model = _model(jax.random.key(7))
    xb = (jax.random.uniform(jax.random.key(8), (3, 12, 6)) < 0.3).astype(jnp.float32)
    out, aux = model.batch(xb)
    assert out.shape == (3, 12, 3) and aux["counts"][0].shape == (3, 8)
    np.testing.assert_allclose(out[1], model(xb[1])[0], rtol=1e-6)
    with pytest.raises(ValueError, match="\\(B, T, ...\\)"):
        model.batch(xb[0])
    nnx = pytest.importorskip("flax.nnx")
    from brainsim.train.nnx import EqxModule
    wrapped = EqxModule(model)
    np.testing.assert_allclose(wrapped(xb, method="batch")[0], out, rtol=1e-6)


def _delay_model(key=jax.random.key(9)):
    from brainsim.delays import DelayedDense
    k1, k2 = jax.random.split(key)
    return Sequential([SpikingLayer(DelayedDense(6, 8, 5, key=k1, weight_scale=4.0)), LeakyReadout(8, 3, key=k2)])


def test_learnable_delays_are_an_ordinary_layer():
    from brainsim.projections import DelayLineProjection
    model = _delay_model()
    xs = (jax.random.uniform(jax.random.key(10), (30, 6)) < 0.3).astype(jnp.float32)
    out, aux = model(xs, record=True)
    out_ckpt, aux_ckpt = model(xs, mode="checkpointed", record=True)  # step by step through the delay line
    assert float(aux["counts"][0].sum()) > 10
    np.testing.assert_array_equal(aux["spikes"][0], aux_ckpt["spikes"][0])
    np.testing.assert_allclose(out, out_ckpt, rtol=1e-5, atol=1e-5)
    # the layer's own per-step equations on the delayed currents give the same spikes
    layer = model.layers[0]
    _, (s, _) = jax.lax.scan(lambda st, c: layer.step(st, c), layer.init(), layer.project(xs))
    np.testing.assert_array_equal(s, aux["spikes"][0])
    network, _ = model.to_network(xs)
    assert isinstance(network.projections["in->layer0"], DelayLineProjection)
    # the delays learn
    g = jax.grad(lambda m: jnp.sum(m(xs)[0] ** 2))(model)
    assert float(jnp.abs(g.layers[0].projection.delay_raw).sum()) > 0
    assert trainable(model).layers[0].projection.delay_raw is True


def test_delay_line_state_carries_across_runs():
    from brainsim.evaluation import LayerByLayer, StepByStep
    from brainsim.monitors import SpikeMonitor
    from brainsim.simulate import run
    model = _delay_model()
    xs = (jax.random.uniform(jax.random.key(11), (30, 6)) < 0.3).astype(jnp.float32)
    network, dt = model.to_network(xs)
    mon = [SpikeMonitor("layer0", differentiable=True)]
    state0 = network.init(dt)
    _, (whole,) = run(network, state0, 30, dt, key=jax.random.key(0), monitors=mon, order=StepByStep())
    state, (first,) = run(network, state0, 12, dt, key=jax.random.key(0), monitors=mon, order=LayerByLayer())
    _, (second,) = run(network, state, 18, dt, key=jax.random.key(0), monitors=mon, order=LayerByLayer())
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)


def test_dropout_drops_units_per_example_only_with_a_key():
    """One mask per example, the same units at every step, the kept ones scaled by 1 / (1 - p); identity without
    a key (evaluation); through ``fit`` (its per-example keys) the model trains."""
    drop = Dropout((200,), p=0.25)
    x = jnp.ones((7, 200))
    np.testing.assert_array_equal(np.asarray(drop(x)), np.asarray(x))
    keyed = with_dropout_keys(drop, jax.random.key(1))
    y = np.asarray(keyed(x))
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / 0.75], rtol=1e-6)
    assert (y == y[0]).all()  # the same units at every step
    assert 0.15 < float((y[0] == 0).mean()) < 0.35
    assert with_dropout_keys(keyed, None).key is None
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        Dropout((3,), p=1.0)

    k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
    model = Sequential([SpikingLayer(Chain([Dropout((6,), p=0.5), Linear(6, 8, key=k1, scale=4.0)]), recurrent=True,
                                     key=k3),
                        LeakyReadout(8, 3, key=k2)])
    rng = np.random.default_rng(0)
    xs = (rng.random((16, 15, 6)) < 0.4).astype(np.float32)
    plain, _ = model.batch(xs)
    np.testing.assert_allclose(np.asarray(plain), np.asarray(model.batch(xs)[0]))  # no key: deterministic
    a, _ = model.batch(xs, key=jax.random.key(3))
    b, _ = model.batch(xs, key=jax.random.key(4))
    assert not np.allclose(np.asarray(a), np.asarray(plain)) and not np.allclose(np.asarray(a), np.asarray(b))
    y = (np.arange(16) % 3).astype(np.int32)

    def loss_fn(m, x, label, key):
        return losses.ce_max_membrane(m(x, key=key)[0], label)

    # the key reaches the masks: the gradient differs from the same model without dropout
    g_drop = eqx.filter_grad(loss_fn)(model, xs[0], y[0], jax.random.key(5))
    g_plain = eqx.filter_grad(loss_fn)(model, xs[0], y[0], None)
    w = lambda g: np.asarray(g.layers[0].projection.maps[1].weight)  # noqa: E731
    assert not np.allclose(w(g_drop), w(g_plain))
    result = fit(model, loss_fn, (xs, y), optimizer=optax.adam(1e-2), epochs=3, batch_size=8, progress=False,
                 eval_data=(xs, y))
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    # evaluation runs in inference mode: dropout off although loss_fn passes a key
    plain_loss = float(jnp.mean(jax.vmap(lambda x, label: loss_fn(result.model, x, label, None))(xs, y)))
    assert min(h["eval_loss"] for h in result.history) == pytest.approx(plain_loss, rel=1e-5)  # the best model
    assert not np.allclose(result.model.layers[0].projection.maps[1].weight, model.layers[0].projection.maps[1].weight)


def test_batch_norm_statistics_running_statistics_and_calibration():
    """Training: per channel, mean 0 and variance 1 over the batch's examples (the vmapped axis named "batch"),
    steps and positions; one example outside such a vmap: its own statistics. Inference: the running statistics,
    which ``calibrate_batch_norm`` sets so that inference on the calibration batch gives the training output;
    ``trainable`` leaves them out; ``fit`` evaluates in inference mode and returns a calibrated model."""
    bn = BatchNorm((3, 4), weight=2.0)
    x = 3.0 + jax.random.normal(jax.random.key(1), (5, 7, 12)) * jnp.arange(1.0, 13.0)  # (B, T, C*P)
    y = jax.vmap(bn, axis_name="batch")(x).reshape(5, 7, 3, 4)
    np.testing.assert_allclose(np.asarray(y.mean((0, 1, 3))), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y.var((0, 1, 3))), 4.0, rtol=1e-3)
    alone = bn(x[0]).reshape(7, 3, 4)
    np.testing.assert_allclose(np.asarray(alone.mean((0, 2))), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inference_mode(bn)(x[0])), 2.0 * np.asarray(x[0]), rtol=1e-5)
    spec = trainable(bn)
    assert spec.weight is True and spec.bias is True and spec.running_mean.value is False
    with pytest.raises(ValueError, match="shape must be positive whole sizes"):
        BatchNorm((2.5,))
    # under a bfloat16 policy the statistics are taken in float32: a small variance on a large mean survives
    low = Precision(BatchNorm((2,)), "bfloat16")
    z = 30.0 + 0.7 * jax.random.normal(jax.random.key(3), (400, 2))
    np.testing.assert_allclose(np.asarray(low(z).var(0)), 1.0, rtol=0.1)

    k1, k2, k3, k4 = jax.random.split(jax.random.key(2), 4)
    model = Sequential([SpikingLayer(Chain([Linear(6, 8, key=k1, scale=2.0), BatchNorm((8,))]), key=k2,
                                     recurrent=True),
                        LeakyReadout(Chain([Linear(8, 3, key=k3), BatchNorm((3,))]), key=k4)])
    rng = np.random.default_rng(0)
    xs = (rng.random((16, 15, 6)) < 0.4).astype(np.float32)
    train_out, aux = model.batch(xs)
    assert float(aux["counts"][0].mean()) > 0.5
    calibrated = calibrate_batch_norm(model, xs)
    assert not np.allclose(calibrated.layers[0].projection.maps[1].running_mean.value, 0.0)
    np.testing.assert_allclose(np.asarray(inference_mode(calibrated).batch(xs)[0]), np.asarray(train_out),
                               rtol=1e-4, atol=1e-4)

    labels = (np.arange(16) % 3).astype(np.int32)

    def loss_fn(m, x, label, key):
        return losses.ce_max_membrane(m(x)[0], label)

    g = eqx.filter_grad(lambda m: jnp.mean(jax.vmap(lambda x, l: loss_fn(m, x, l, None), axis_name="batch")(
        jnp.asarray(xs), labels)))(model)
    assert float(jnp.abs(g.layers[0].projection.maps[1].weight).max()) > 0
    result = fit(model, loss_fn, (xs, labels), optimizer=optax.adam(1e-2), epochs=2, batch_size=8,
                 progress=False, eval_data=(xs, labels))
    assert all(np.isfinite(h["eval_loss"]) for h in result.history)
    with pytest.raises(ValueError, match="calibration_examples must be a positive integer"):
        fit(model, loss_fn, (xs, labels), epochs=1, batch_size=8, progress=False, calibration_examples=0)
    final = result.model.layers[0].projection.maps[1]
    expected = calibrate_batch_norm(result.model, xs).layers[0].projection.maps[1]
    np.testing.assert_allclose(np.asarray(final.running_var.value), np.asarray(expected.running_var.value), rtol=1e-5)
