"""Spatial layers: convolutions, pooling and flattening as synaptic maps, in Sequential and in Network."""
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import brainsim as bs
from brainsim.evaluation import LayerByLayer, StepByStep
from brainsim.monitors import SpikeMonitor
from brainsim.network import Network, Population
from brainsim.neurons import LIF, AdaptiveLIF
from brainsim.projections import DenseProjection, MappedProjection
from brainsim.simulate import run
from brainsim.synapses import CurrentOutput, Exponential, Instant, Receptor
from brainsim.train import (AvgPool2d, Chain, Conv1d, Conv2d, Flatten, LeakyReadout, Linear, MaxPool2d, Sequential,
                            SpikingLayer, SumPool2d, fit, losses, ml_lif)


def _conv_reference(x, w, b, stride, pad, dilation, groups):
    """Cross-correlation by explicit sums: x (C, *S), w (O, C/groups, *K), pad ((lo, hi), ...)."""
    x = np.pad(x, [(0, 0)] + list(pad))
    c_out, c_per = w.shape[:2]
    k = w.shape[2:]
    out_sizes = [(x.shape[1 + a] - dilation[a] * (k[a] - 1) - 1) // stride[a] + 1 for a in range(len(k))]
    y = np.zeros((c_out, *out_sizes))
    for o in range(c_out):
        g = o // (c_out // groups)
        for pos in itertools.product(*[range(n) for n in out_sizes]):
            total = 0.0 if b is None else b[o]
            for c in range(c_per):
                for off in itertools.product(*[range(n) for n in k]):
                    idx = tuple(pos[a] * stride[a] + off[a] * dilation[a] for a in range(len(k)))
                    total += x[(g * c_per + c,) + idx] * w[(o, c) + off]
            y[(o,) + pos] = total
    return y


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, "same", 2, 1),
                                                            (1, ((0, 1), (2, 0)), 1, 2)])
def test_conv2d_equals_explicit_cross_correlation(stride, padding, dilation, groups):
    key = jax.random.key(0)
    conv = Conv2d((4, 7, 6), 6, (3, 2), stride=stride, padding=padding, dilation=dilation, groups=groups, key=key)
    conv = eqx.tree_at(lambda c: c.bias, conv, jnp.arange(6.0) * 0.1)
    x = np.asarray(jax.random.normal(jax.random.key(1), (4, 7, 6)))
    y = conv(jnp.asarray(x.reshape(-1)))
    ref = _conv_reference(x, np.asarray(conv.weight), np.asarray(conv.bias), conv.stride, conv.padding,
                          conv.dilation, groups)
    assert conv.out_shape == ref.shape
    np.testing.assert_allclose(np.asarray(y).reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)
    # leading axes (time, batch) pass through
    xs = jnp.stack([jnp.asarray(x.reshape(-1))] * 3)
    np.testing.assert_allclose(conv(xs)[1], y, rtol=1e-5, atol=1e-6)


def test_conv1d_equals_explicit_cross_correlation():
    conv = Conv1d((3, 10), 5, 4, stride=2, padding=1, key=jax.random.key(0))
    x = np.asarray(jax.random.normal(jax.random.key(1), (3, 10)))
    ref = _conv_reference(x, np.asarray(conv.weight), np.asarray(conv.bias), conv.stride, conv.padding, (1,), 1)
    np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x.reshape(-1)))).reshape(ref.shape), ref, rtol=1e-4,
                               atol=1e-5)


def test_pooling_equals_numpy_windows():
    x = np.asarray(jax.random.normal(jax.random.key(2), (3, 6, 4)))
    windows = x.reshape(3, 3, 2, 2, 2).transpose(0, 1, 3, 2, 4)  # (C, 3, 2, 2x2 window)
    for pool, ref in ((SumPool2d((3, 6, 4), 2), windows.sum((3, 4))), (AvgPool2d((3, 6, 4), 2), windows.mean((3, 4))),
                      (MaxPool2d((3, 6, 4), 2), windows.max((3, 4)))):
        assert pool.out_shape == (3, 3, 2)
        np.testing.assert_allclose(np.asarray(pool(jnp.asarray(x.reshape(-1)))).reshape(3, 3, 2), ref, rtol=1e-6)
    # overlapping windows with padding: AvgPool counts the zeros of the padding (PyTorch's default)
    avg = AvgPool2d((1, 3, 3), 3, stride=1, padding=1)
    y = np.asarray(avg(jnp.ones(9))).reshape(3, 3)
    np.testing.assert_allclose(y[0, 0], 4 / 9, rtol=1e-6)
    np.testing.assert_allclose(y[1, 1], 1.0, rtol=1e-6)
    g = jax.grad(lambda v: MaxPool2d((1, 2, 2), 2)(v).sum())(jnp.array([0.0, 3.0, 1.0, 2.0]))
    np.testing.assert_array_equal(g, [0, 1, 0, 0])


def test_shapes_and_errors_name_the_parameter():
    conv = Conv2d((2, 5, 5), 3, 3, key=jax.random.key(0))
    assert conv.out_shape == (3, 3, 3) and conv.n_in == 50 and conv.n_out == 27
    assert Flatten((3, 3, 3)).out_shape == (27,)
    chain = Chain([conv, MaxPool2d(conv.out_shape, 3), Flatten((3, 1, 1))])
    assert chain.in_shape == (2, 5, 5) and chain.out_shape == (3,)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d((2, 5, 5), 3, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="does not fit"):
        Conv2d((2, 5, 5), 3, 7, key=jax.random.key(0))
    with pytest.raises(ValueError, match="in_shape"):
        Conv2d((5, 5), 3, 3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        Conv2d((2, 5, 5), 3, 3)
    with pytest.raises(ValueError, match="groups"):
        Conv2d((2, 5, 5), 3, 3, groups=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="padding"):
        Conv2d((2, 5, 5), 3, 3, padding="full", key=jax.random.key(0))
    with pytest.raises(ValueError, match="maps\\[0\\] gives 27"):
        Chain([conv, Flatten((3, 3, 2))])
    with pytest.raises(TypeError, match="maps\\[1\\]"):
        Chain([conv, jnp.tanh])
    with pytest.raises(ValueError, match="expected 50"):
        conv(jnp.zeros(49))
    with pytest.raises(ValueError, match="either n_in and n_out or a synaptic map"):
        SpikingLayer(conv, 27)


def _conv_net(key, neuron=None):
    k1, k2, k3 = jax.random.split(key, 3)
    c1 = Conv2d((2, 6, 6), 4, 3, padding=1, key=k1, scale=4.0)
    c2 = Conv2d((4, 3, 3), 6, 2, key=k2, scale=4.0)
    return Sequential([
        SpikingLayer(Chain([c1, SumPool2d(c1.out_shape, 2)]), neuron=neuron),
        SpikingLayer(c2),
        LeakyReadout(Chain([Flatten(c2.out_shape), Linear(24, 3, key=k3)])),
    ])


def _inputs(key, t=25):
    return (jax.random.uniform(key, (t, 2, 6, 6)) < 0.3).astype(jnp.float32)


def test_conv_sequential_runs_fused_and_step_by_step_alike():
    net, xs = _conv_net(jax.random.key(0)), _inputs(jax.random.key(1))
    out_full, aux_full = net(xs, record=True)
    out_ckpt, aux_ckpt = net(xs, mode="checkpointed", record=True)
    assert sum(float(c.sum()) for c in aux_full["counts"]) > 20  # the layers spike
    for a, b in zip(aux_full["spikes"], aux_ckpt["spikes"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(out_full, out_ckpt, rtol=1e-5, atol=1e-5)
    # flat input of the same data gives the same run
    np.testing.assert_array_equal(net(xs.reshape(25, -1))[0], out_full)
    with pytest.raises(ValueError, match="\\(T, 2, 6, 6\\)"):
        net(jnp.zeros((25, 6, 6, 2)))
    # gradients of the two runs agree
    loss = lambda m, mode: jnp.sum(m(xs, mode=mode)[0] ** 2)
    g_full = jax.grad(loss)(net, "full")
    g_ckpt = jax.grad(loss)(net, "checkpointed")
    for a, b in zip(jax.tree_util.tree_leaves(g_full), jax.tree_util.tree_leaves(g_ckpt)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)


def test_conv_network_form_simulates_with_monitors_and_shapes():
    net, xs = _conv_net(jax.random.key(0)), _inputs(jax.random.key(1))
    network, dt = net.to_network(xs.reshape(25, -1))
    assert isinstance(network.projections["layer0->layer1"], MappedProjection)
    assert network.populations["layer0"].shape == (4, 3, 3)
    res = bs.simulate(network, xs.shape[0] * dt, dt, key=jax.random.key(0), monitors=[SpikeMonitor("layer1")],
                      progress=False)
    _, aux = net(xs, record=True)
    steps, neurons = np.nonzero(np.asarray(aux["spikes"][1]))
    trains = res.spikes["layer1"]
    assert len(trains.times) == len(steps) > 0
    np.testing.assert_array_equal(np.round(trains.times / dt).astype(int), steps)
    np.testing.assert_array_equal(trains.indices, neurons)
    assert network.populations["layer1"].unflatten(aux["spikes"][1]).shape == (25, 6, 2, 2)


def test_alif_conv_layer_uses_amounts_of_the_whole_sequence_with_the_same_result():
    neuron = ml_lif(36, adaptive=True, a=0.0, b=0.0, delta_theta=0.2, tau_theta=50.0)
    net, xs = _conv_net(jax.random.key(3), neuron=neuron), _inputs(jax.random.key(4))
    network, dt = net.to_network(xs.reshape(25, -1))
    monitors = [SpikeMonitor(name, differentiable=True) for name in ("layer0", "layer1")]
    state = network.init(dt)
    _, by_layer = run(network, state, 25, dt, key=jax.random.key(0), monitors=monitors, order=LayerByLayer())
    _, by_step = run(network, state, 25, dt, key=jax.random.key(0), monitors=monitors, order=StepByStep())
    assert float(by_layer[0].sum()) > 10
    for a, b in zip(by_layer, by_step):
        np.testing.assert_array_equal(a, b)


def test_dense_sequence_amounts_equal_step_by_step_delivery_for_a_recurrent_alif():
    neuron = ml_lif(16, adaptive=True, a=0.0, b=0.0, delta_theta=0.3, tau_theta=100.0)
    net = Sequential([SpikingLayer(10, 16, key=jax.random.key(0), neuron=neuron, recurrent=True, scale=4.0),
                      LeakyReadout(16, 3, key=jax.random.key(1))])
    xs = (jax.random.uniform(jax.random.key(2), (40, 10)) < 0.2).astype(jnp.float32)
    out, aux = net(xs, record=True)
    out2, aux2 = net(xs, mode="checkpointed", record=True)
    assert float(aux["counts"][0].sum()) > 10
    np.testing.assert_array_equal(aux["spikes"][0], aux2["spikes"][0])
    np.testing.assert_allclose(out, out2, rtol=1e-5, atol=1e-5)


def test_mapped_projection_in_a_network_under_grad_and_vmap():
    conv = Conv1d((1, 8), 2, 3, padding=1, key=jax.random.key(0))
    conv = eqx.tree_at(lambda c: c.weight, conv, jnp.abs(conv.weight))

    def network_with(synapses):
        source = bs.PoissonSource(8, rate=200.0)
        target = LIF(16, t_ref=0.0)
        receptors = {"I": Receptor(Exponential(5.0), CurrentOutput())}
        return Network({"in": Population(source), "out": Population(target, receptors, shape=(2, 8))},
                       {"conv": MappedProjection("in", "out", "I", synapses)})

    def rate(scale):
        network = network_with(eqx.tree_at(lambda c: c.weight, conv, conv.weight * scale))
        _, (counts,) = run(network, network.init(0.1), 200, 0.1, key=jax.random.key(1),
                           monitors=[SpikeMonitor("out", differentiable=True)])
        return counts.sum()

    rates = jax.vmap(rate)(jnp.array([300.0, 600.0]))
    assert rates[1] > rates[0] > 0
    assert np.isfinite(float(jax.grad(rate)(450.0)))
    with pytest.raises(ValueError, match="maps 8 outputs of 'in' to shape \\(16,\\)"):
        Network({"in": Population(bs.PoissonSource(8, rate=1.0)), "out": Population(LIF(12), {"I": Receptor(
            Instant(), CurrentOutput())})}, {"conv": MappedProjection("in", "out", "I", conv)})
    with pytest.raises(ValueError, match="shape"):
        Population(LIF(16), shape=(3, 5))


def test_fit_trains_a_small_conv_model():
    x = np.zeros((64, 10, 1, 4, 4), np.float32)
    y = np.arange(64) % 2
    x[y == 0, :, 0, :, :2] = 1.0  # left half lit
    x[y == 1, :, 0, :, 2:] = 1.0  # right half lit
    k1, k2 = jax.random.split(jax.random.key(0))
    conv = Conv2d((1, 4, 4), 4, 3, padding=1, key=k1, scale=3.0)
    model = Sequential([SpikingLayer(conv), LeakyReadout(Chain([SumPool2d(conv.out_shape, 2),
                                                                Flatten((4, 2, 2)), Linear(16, 2, key=k2)]))])

    def loss_fn(m, xs, label, key):
        out, _ = m(xs)
        return losses.ce_max_membrane(out, label), {"accuracy": losses.accuracy_max_membrane(out, label)}

    result = fit(model, loss_fn, (x, y), optimizer=optax.adam(1e-2), epochs=8, batch_size=16, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_accuracy"] >= 0.9
