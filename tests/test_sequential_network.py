"""Training layers are network components: a ``Sequential`` and its ``Network`` form give identical spikes, and a
model trained with ``fit`` runs in ``simulate`` with monitors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from brainsim.simulate import SpikeMonitor, StateMonitor, run, simulate
from brainsim.train import LeakyReadout, Sequential, SpikingLayer, fit, losses


def _model(key, n_in=20):
    k = jax.random.split(key, 3)
    return Sequential([SpikingLayer(n_in, 30, key=k[0], recurrent=True, tau_syn=5.0, scale=3.0),
                       SpikingLayer(30, 16, key=k[1], scale=3.0),  # plain LIF: Sequential runs it fused
                       LeakyReadout(16, 3, key=k[2])])


def test_sequential_and_its_network_give_identical_spikes():
    model = _model(jax.random.key(0))
    xs = (jax.random.uniform(jax.random.key(1), (120, 20)) < 0.2).astype(jnp.float32)
    out, aux = model(xs, record=True)
    net, dt = model.to_network(xs)
    assert dt == 1.0 and list(net.populations) == ["in", "layer0", "layer1", "readout"]
    _, (s0, s1, v) = run(net, net.init(dt), 120, dt, key=jax.random.key(2),
                         monitors=[SpikeMonitor("layer0"), SpikeMonitor("layer1"), StateMonitor("readout", "v")])
    assert int(s0.sum()) > 100 and int(s1.sum()) > 50
    np.testing.assert_array_equal(np.asarray(s0), np.asarray(aux["spikes"][0]) > 0)
    np.testing.assert_array_equal(np.asarray(s1), np.asarray(aux["spikes"][1]) > 0)
    np.testing.assert_allclose(np.asarray(v[1:]), np.asarray(out[:-1]), rtol=1e-5, atol=1e-5)


def test_network_form_without_same_step_delivery_lags_one_step_per_layer():
    # the same model with Brian2's order (every projection at the end of the step) is a different model:
    # the option is what makes the two forms identical, so this must differ
    from brainsim import Network
    from brainsim.projections import DenseProjection

    model = _model(jax.random.key(0))
    xs = (jax.random.uniform(jax.random.key(1), (60, 20)) < 0.2).astype(jnp.float32)
    _, aux = model(xs, record=True)
    net, dt = model.to_network(xs)
    p = net.projections["in->layer0"]
    lagged = Network(net.populations, {**net.projections,
                                       "in->layer0": DenseProjection(p.pre, p.post, p.receptor, p.weight, bias=p.bias)})
    _, (s0,) = run(lagged, lagged.init(dt), 60, dt, key=jax.random.key(2), monitors=[SpikeMonitor("layer0")])
    assert not np.array_equal(np.asarray(s0), np.asarray(aux["spikes"][0]) > 0)


def test_model_trained_with_fit_is_simulated_with_monitors():
    rng = np.random.default_rng(0)
    T, n_in, n = 40, 20, 64
    y = rng.integers(0, 3, n)
    rates = np.full((n, n_in), 0.05)
    for c in range(3):
        rates[y == c, c * 6:(c + 1) * 6] = 0.5
    x = (rng.random((n, T, n_in)) < rates[:, None, :]).astype(np.float32)

    def loss_fn(model, xb, yb, key):
        out, _ = model(xb)
        return losses.ce_mean_membrane(out, yb)

    model0 = _model(jax.random.key(3))
    result = fit(model0, loss_fn, (x, y), optimizer=optax.adam(2e-2), epochs=2, batch_size=16, progress=False)
    model = result.model
    w0, w1 = model0.layers[0].projection.weight, model.layers[0].projection.weight
    assert not np.allclose(np.asarray(w0), np.asarray(w1))  # fit changed the model that is then simulated
    out, aux = model(jnp.asarray(x[0]), record=True)
    net, dt = model.to_network(x[0])
    res = simulate(net, T * dt, dt, key=jax.random.key(0),
                   monitors=[SpikeMonitor("layer0"), SpikeMonitor("layer1"), StateMonitor("readout", "v")])
    for i, name in enumerate(("layer0", "layer1")):
        steps, neurons = np.nonzero(np.asarray(aux["spikes"][i]))
        trains = res.spikes[name]
        assert len(trains.times) == len(steps) > 0
        np.testing.assert_array_equal(np.round(trains.times / dt).astype(int), steps)
        np.testing.assert_array_equal(trains.indices, neurons)
    np.testing.assert_allclose(res.traces["readout.v"][1][1:], np.asarray(out[:-1]), rtol=1e-5, atol=1e-5)


def test_to_network_needs_an_input_and_matching_steps():
    model = _model(jax.random.key(0))
    with pytest.raises(ValueError, match="give the input xs"):
        model.to_network()
    net, _ = model.to_network(n_steps=5)
    assert net.populations["in"].model.values.shape == (5, 20)


def test_same_step_projection_needs_its_pre_population_first():
    from brainsim import Network
    from brainsim.projections import DenseProjection

    net, _ = _model(jax.random.key(0)).to_network(n_steps=3)
    populations = dict(reversed(list(net.populations.items())))
    with pytest.raises(ValueError, match="must come before"):
        Network(populations, net.projections)
    with pytest.raises(ValueError, match=r"weights of shape \(2, 3\)"):
        Network(net.populations, {"x": DenseProjection("in", "readout", "I", jnp.ones((2, 3)))})
