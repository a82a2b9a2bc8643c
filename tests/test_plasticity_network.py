"""Plasticity inside Network: local rules and Optax gradient updates in the same jitted step; homeostasis."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from brainsim.connectivity import all_to_all, fixed_probability
from brainsim.inputs import PoissonSource
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF
from brainsim.plasticity import (STDP, AntiHebbian, HomeostaticThreshold, ModulatedHebbian, Oja, Signal,
                                 SynapticScaling, oja_dw)
from brainsim.simulate import StateMonitor, run
from brainsim.synapses import CurrentOutput, Exponential, Receptor

DT = 0.5


def small_network():
    cur = {"i": Receptor(Exponential(5.0), CurrentOutput())}
    w_in = fixed_probability(jax.random.key(0), 40, 20, 0.5, lambda r, n: r.uniform(20.0, 60.0, n))
    w_out = all_to_all(20, 2, lambda r, n: r.normal(10.0, 5.0, n))
    return Network(
        {"in": Population(PoissonSource(40, 40.0)),
         "hid": Population(LIF(20, tau_m=10.0, C_m=100.0, v_rest=-70.0, v_th=-55.0, v_reset=-70.0), cur),
         "out": Population(LIF(2, tau_m=10.0, C_m=100.0, v_rest=-70.0, v_th=1e6), cur)},
        {"stdp": Projection("in", "hid", "i", w_in, plasticity=STDP(A_plus=0.5, A_minus=0.55, w_max=100.0)),
         "readout": Projection("hid", "out", "i", w_out)})


def test_local_rule_and_optax_in_the_same_step():
    net = small_network()
    target = jnp.array([-60.0, -66.0])  # mean membrane potential of the two readout neurons, mV
    is_readout = lambda n: eqx.tree_at(lambda m: m.projections["readout"].operator.weights,  # noqa: E731
                                       jax.tree_util.tree_map(lambda _: False, n), True)
    filter_spec = is_readout(net)
    opt = optax.adam(0.5)
    opt_state = opt.init(eqx.filter(net, filter_spec))

    @eqx.filter_jit
    def train_step(net, state, opt_state, key):
        diff, static = eqx.partition(net, filter_spec)

        def loss_fn(diff):
            model = eqx.combine(diff, static)
            final, (v,) = run(model, state, 200, DT, key=key, monitors=[StateMonitor("out", "v")])
            return jnp.mean((v[50:].mean(0) - target) ** 2), final

        (loss, final), grads = jax.value_and_grad(loss_fn, has_aux=True)(diff)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes its int32 step count with float arrays
            updates, opt_state = opt.update(grads, opt_state, diff)
        return eqx.apply_updates(net, updates), final, opt_state, loss

    state = net.init(DT)
    w_plastic0 = np.asarray(state.projections["stdp"].rule.weights)
    w_read0 = np.asarray(net.projections["readout"].operator.weights)
    losses = []
    for k in range(25):
        net, state, opt_state, loss = train_step(net, state, opt_state, jax.random.key(k))
        losses.append(float(loss))
    assert not np.allclose(np.asarray(state.projections["stdp"].rule.weights), w_plastic0)  # STDP acted
    assert not np.allclose(np.asarray(net.projections["readout"].operator.weights), w_read0)  # Optax acted
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:3])


def test_modulator_population_drives_a_rule_in_the_network():
    # a Signal population is the (error) modulator of a ModulatedHebbian readout
    cur = {"i": Receptor(Exponential(5.0), CurrentOutput())}
    T = 100
    sig = np.zeros((T, 2), np.float32)
    sig[:, 0] = 1.0  # only output 0 is told to potentiate
    net = Network({"in": Population(PoissonSource(10, 100.0)), "mod": Population(Signal(sig)),
                   "out": Population(LIF(2, v_th=1e6), cur)},
                  {"p": Projection("in", "out", "i", all_to_all(10, 2, 1.0),
                                   plasticity=ModulatedHebbian(lr=0.01, modulator="mod"))})
    state, _ = run(net, net.init(DT), T, DT, key=jax.random.key(0))
    w = np.asarray(state.projections["p"].rule.weights)
    assert np.all(w[:, 0] > 1.0) and np.allclose(w[:, 1], 1.0)


def test_oja_finds_the_principal_component():
    rng = np.random.default_rng(0)
    v1 = np.array([3.0, 1.0, 0.5, 0.0]); v1 /= np.linalg.norm(v1)
    x = rng.normal(size=(20000, 1)) * 3.0 * v1 + rng.normal(size=(20000, 4)) * 0.5
    w = jnp.asarray(rng.normal(size=4) * 0.1)

    def body(w, xi):
        y = jnp.dot(w, xi)
        return w + 1e-3 * oja_dw(w, xi, y), None

    w, _ = jax.lax.scan(body, w, jnp.asarray(x, jnp.float32))
    w = np.asarray(w)
    assert abs(np.linalg.norm(w) - 1.0) < 0.05
    assert abs(abs(np.dot(w, v1)) - 1.0) < 0.02


def test_synaptic_scaling_is_multiplicative_and_homeostatic():
    rule = SynapticScaling(lr=1e-3, tau_rate=50.0, target_rate=5.0)
    targets = jnp.zeros((5, 1), jnp.int32)
    w0 = jnp.asarray([[1.0], [2.0], [3.0], [4.0], [5.0]])
    s = rule.init_state(w0, 5, 1)
    upd = jax.jit(lambda s, post: rule.update(s, targets, None, jnp.zeros(5), post, DT))
    for t in range(400):  # the neuron fires at 50 Hz (> 5 Hz target): weights shrink, ratios are preserved
        s = upd(s, jnp.asarray([float(t % 40 == 0)]))
    w = np.asarray(s.weights)[:, 0]
    assert np.all(w < np.asarray(w0)[:, 0])
    np.testing.assert_allclose(w / w[0], np.arange(1, 6), rtol=1e-5)


def test_anti_hebbian_and_adaptive_threshold():
    rule = AntiHebbian(lr=1e-6, target_rate=5.0, tau_rate=50.0)
    targets = jnp.asarray([[0], [0]], jnp.int32)
    s = rule.init_state(jnp.zeros((2, 1)), 2, 1)
    upd = jax.jit(lambda s, both: rule.update(s, targets, None, jnp.stack([both, 0.0 * both]), both[None], DT))
    for t in range(2000):  # pre 0 fires with the post neuron, pre 1 never: only w0 grows
        s = upd(s, jnp.float32(t % 20 == 0))
    w = np.asarray(s.weights)[:, 0]
    assert w[0] > 0 and w[1] == 0
    th = HomeostaticThreshold(3, target_rate=5.0, eta=1e-3, tau_rate=100.0)
    t = np.arange(2000)[:, None]  # neuron 0 at 100 Hz, neuron 1 at 5 Hz, neuron 2 silent
    spikes = jnp.asarray(np.concatenate([t % 20 == 0, t % 400 == 0, 0 * t], axis=1).astype(np.float32))
    st = jax.lax.scan(lambda s, x: (th.step(s, x, DT), None), th.init(), spikes)[0]
    theta = np.asarray(st.theta)
    assert theta[0] > 1.0 and abs(theta[1]) < 0.5 * theta[0] and theta[2] < 0


@pytest.mark.parametrize("make, message", [
    (lambda: SynapticScaling(lr=np.zeros(3)), "lr (learning rate) must be a scalar, got an array of shape (3,)"),
    (lambda: SynapticScaling(target_rate=0.0), "target_rate must be > 0 Hz"),
    (lambda: Oja(tau_rate=-1.0), "tau_rate (ms) must be > 0"),
    (lambda: HomeostaticThreshold(3, eta=[1.0, 2.0]), "eta (learning rate, mV/(ms Hz)) must be a scalar"),
])
def test_homeostasis_bad_input(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_unknown_modulator_population_rejected():
    cur = {"i": Receptor(Exponential(5.0), CurrentOutput())}
    with pytest.raises(ValueError, match="modulated by unknown population 'dopamine'"):
        Network({"in": Population(PoissonSource(3, 10.0)), "out": Population(LIF(2), cur)},
                {"p": Projection("in", "out", "i", all_to_all(3, 2, 1.0),
                                 plasticity=ModulatedHebbian(modulator="dopamine"))})
