"""A neuron model and a projection defined here, outside the package, run in a Network under simulate, grad, vmap.

They implement the written contracts (``brainsim.core.contracts.AbstractNeuron``,
``brainsim.projections.AbstractProjection``) and nothing else: ``Network`` needs no change to run them.
"""
import inspect
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainsim as bs
from brainsim.core import AbstractNeuron, SynapticInput, as_input
from brainsim.inputs import PoissonSource
from brainsim.network import Network, Population
from brainsim.projections import AbstractProjection, EventProjection
from brainsim.simulate import SpikeMonitor, StateMonitor, run, simulate
from brainsim.synapses import CurrentOutput, Exponential, Receptor

DT = 0.1


class NoisyIntegratorState(NamedTuple):
    v: jax.Array  # mV


class NoisyIntegrator(AbstractNeuron):
    """tau dv/dt = -v + R I + noise (mV); spike and reset to 0 when v > v_th (a user's own model)."""

    tau: jax.Array  # ms
    R: jax.Array  # mV / pA
    sigma: float = eqx.field(static=True)  # mV / sqrt(ms)
    v_th: float = eqx.field(static=True)  # mV
    size: int = eqx.field(static=True)

    def __init__(self, size, tau=10.0, R=1.0, sigma=0.0, v_th=1.0):
        self.size, self.sigma, self.v_th = size, float(sigma), float(v_th)
        self.tau, self.R = jnp.full((size,), tau), jnp.full((size,), R)

    def init(self, *, key=None):
        return NoisyIntegratorState(v=jnp.zeros((self.size,)))

    def step(self, state, inputs, dt, *, key=None):
        inputs: SynapticInput = as_input(inputs, self.size)
        v = state.v + dt / self.tau * (-state.v + self.R * inputs.total_current(state.v))
        if self.sigma > 0:
            v = v + self.sigma * jnp.sqrt(dt) * jax.random.normal(key, (self.size,))
        spikes = bs.spike(v - self.v_th, "fast_sigmoid", 10.0)
        return NoisyIntegratorState(v=v * (1.0 - spikes)), spikes


class DenseProjection(AbstractProjection):
    """Dense weights ``W`` (n_pre, n_post): every step adds ``spikes @ W`` to the target receptor."""

    W: jax.Array
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)

    def __init__(self, pre, post, receptor, W):
        self.pre, self.post, self.receptor, self.W = pre, post, receptor, jnp.asarray(W)

    @property
    def n_synapses(self):
        return int(np.count_nonzero(np.asarray(self.W)))

    @property
    def reads_signal(self):
        return False

    @property
    def same_step(self):
        return False

    def check(self, name, populations):
        shape = (populations[self.pre].size, populations[self.post].size)
        if self.W.shape != shape:
            raise ValueError(f"DenseProjection {name!r}: W has shape {self.W.shape}, expected {shape}")

    def init(self, dt):
        return None

    def deliver(self, state, target, kinetics, ctx):
        return state, kinetics.arrive(target, ctx.spikes[self.pre] @ self.W)


def _network(W, projection="dense", sigma=0.0, neuron=None):
    n_in, n_out = W.shape
    kind = DenseProjection("in", "out", "i", W) if projection == "dense" else \
        EventProjection("in", "out", "i", jax.experimental.sparse.BCOO.fromdense(W))
    neuron = neuron if neuron is not None else NoisyIntegrator(n_out, sigma=sigma)
    return Network({"in": Population(PoissonSource(n_in, rate=200.0)),
                    "out": Population(neuron, {"i": Receptor(Exponential(5.0), CurrentOutput())})},
                   {"p": kind})


def _weights(seed=0, n_in=20, n_out=8):
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.where(rng.random((n_in, n_out)) < 0.5, rng.uniform(0.05, 0.3, (n_in, n_out)), 0.0),
                       jnp.float32)


def test_network_step_has_no_type_probes():
    source = inspect.getsource(Network.step)
    for probe in ("isinstance", "hasattr", "getattr", "type("):
        assert probe not in source, f"Network.step uses {probe}"


def test_user_neuron_and_projection_simulate_with_monitors():
    net = _network(_weights(), sigma=0.05)
    res = simulate(net, 200.0, DT, key=jax.random.key(1),
                   monitors=[SpikeMonitor("out"), StateMonitor("out", "v", every=10)])
    assert len(res.spikes["out"].times) > 10
    t, v = res.traces["out.v"]
    assert v.shape == (200, 8) and np.all(np.isfinite(v))
    again = simulate(net, 200.0, DT, key=jax.random.key(1), monitors=[SpikeMonitor("out")])
    np.testing.assert_array_equal(res.spikes["out"].times, again.spikes["out"].times)
    noisier = simulate(net, 200.0, DT, key=jax.random.key(2), monitors=[SpikeMonitor("out")])
    assert len(noisier.spikes["out"].times) != len(res.spikes["out"].times) or \
        not np.array_equal(noisier.spikes["out"].times, res.spikes["out"].times)


def test_user_projection_delivers_like_the_event_projection():
    W = _weights(3)
    lif = bs.LIF(8, tau_m=10.0, C_m=10.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=2.0)
    runs = []
    for kind in ("dense", "event"):
        res = simulate(_network(W, kind, neuron=lif), 300.0, DT, key=jax.random.key(4),
                       monitors=[SpikeMonitor("out"), StateMonitor("out", "v")])
        runs.append(res)
    assert len(runs[0].spikes["out"].times) > 20
    np.testing.assert_array_equal(runs[0].spikes["out"].indices, runs[1].spikes["out"].indices)
    np.testing.assert_allclose(runs[0].traces["out.v"][1], runs[1].traces["out.v"][1], rtol=1e-5, atol=1e-5)


def test_grad_through_user_components_matches_finite_differences():
    W0 = _weights(5)
    sub = NoisyIntegrator(8, tau=10.0, R=0.2, v_th=1e6)  # never fires: the loss is smooth in W

    def loss(W):
        net = _network(W, neuron=sub)
        state, (v,) = run(net, net.init(DT), 300, DT, key=jax.random.key(0), monitors=[StateMonitor("out", "v")])
        return jnp.mean(v ** 2)

    g = jax.grad(loss)(W0)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0
    eps = 1e-2
    for i, j in [(0, 0), (3, 5), (11, 2)]:
        e = jnp.zeros_like(W0).at[i, j].set(eps)
        fd = (loss(W0 + e) - loss(W0 - e)) / (2 * eps)
        np.testing.assert_allclose(float(g[i, j]), float(fd), rtol=2e-2, atol=1e-6)


def test_vmap_over_user_projection_weights():
    Ws = jnp.stack([_weights(s) for s in range(3)])

    def final_v(W):
        net = _network(W, neuron=NoisyIntegrator(8, R=0.2))
        state, _ = run(net, net.init(DT), 100, DT, key=jax.random.key(7))
        return state.neurons["out"].v

    batched = jax.vmap(final_v)(Ws)
    for s in range(3):
        np.testing.assert_allclose(np.asarray(batched[s]), np.asarray(final_v(Ws[s])), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(batched[0]), np.asarray(batched[1]))


def test_bad_user_projection_is_reported_by_its_own_check():
    with pytest.raises(ValueError, match=r"DenseProjection 'p': W has shape \(3, 8\)"):
        Network(
            {"in": Population(PoissonSource(20, rate=1.0)),
             "out": Population(NoisyIntegrator(8), {"i": Receptor(Exponential(5.0), CurrentOutput())})},
            {"p": DenseProjection("in", "out", "i", jnp.zeros((3, 8)))})
