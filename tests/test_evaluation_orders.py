"""``run``'s two orders (brainsim.evaluation) compute the same steps, and monitors follow one contract.

- ``LayerByLayer`` gives the records and the final state of ``StepByStep`` on a network with every kind of
  component it serves: a Poisson source, a same-step event projection, a recurrent projection with short-term
  plasticity, a Poisson drive, a current step, injected currents, a plastic-free LIF with an exponential
  receptor, and monitors of every kind;
- the fused LIF sequence it recognises on the network structure (plain LIF with an Instant current receptor fed
  by a dense same-step projection, with a recurrent projection and a leaky-integrator readout behind it) gives
  the step-by-step result, also when the run continues from a state whose receptors and readout are not at rest;
- networks it cannot serve are refused with a one-line message;
- a monitor defined in this file runs in both orders.
"""
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.adjoints import Checkpointed, Truncated
from brainsim.connectivity import fixed_probability
from brainsim.evaluation import LayerByLayer, StepByStep
from brainsim.inputs import CurrentStep, PoissonInput, PoissonSource
from brainsim.monitors import (AbstractMonitor, CountMonitor, MeanMonitor, RateMonitor, SpikeMonitor,
                               StateMonitor)
from brainsim.network import Network, Population
from brainsim.neurons import LIF, AdaptiveLIF, LeakyIntegrator
from brainsim.plasticity.modulators import Signal
from brainsim.projections import DenseProjection, EventProjection
from brainsim.simulate import run
from brainsim.synapses import CurrentOutput, Exponential, Instant, Receptor, TsodyksMarkram
from fused_support import fused_calls

DT = 0.1


@dataclass(frozen=True)
class PeakMonitor(AbstractMonitor):
    """A user's monitor: the largest value of a variable over the run, per neuron (written against the contract)."""

    population: str
    variable: str

    @property
    def reads(self):
        return (self.variable,)

    def init(self, size, n_steps):
        return jnp.full((size,), -jnp.inf)

    def update(self, acc, i, before, after, spikes, dt):
        return jnp.maximum(acc, getattr(after, self.variable)), None

    def finish(self, acc, ys, n_steps):
        return acc

    def record_sequence(self, steps, before, after, spikes, dt):
        return jnp.max(getattr(after, self.variable), axis=0)


def _generic_network():
    key = jax.random.key(3)
    k1, k2 = jax.random.split(key)
    stp = TsodyksMarkram(U=0.3, tau_f=50.0, tau_d=200.0)
    populations = {
        "src": Population(PoissonSource(40, 30.0)),
        "E": Population(LIF(30, tau_m=20.0, C_m=20.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0),
                        {"ge": Receptor(Exponential(5.0), CurrentOutput())}),
    }
    projections = {
        "src->E": EventProjection("src", "E", "ge", fixed_probability(k1, 40, 30, 0.3, 60.0), same_step=True),
        "E->E": EventProjection("E", "E", "ge", fixed_probability(k2, 30, 30, 0.2, 40.0), stp=stp),
    }
    drives = [PoissonInput("E", "ge", 20, 10.0, 30.0), CurrentStep("E", 150.0, start=5.0, stop=15.0)]
    return Network(populations, projections, drives)


MONITORS = [SpikeMonitor("E"), SpikeMonitor("src", packed=True), StateMonitor("E", "v", every=3),
            StateMonitor("E", "refractory", when="end", indices=(0, 4, 7)), RateMonitor("E"), CountMonitor("E", start=5),
            MeanMonitor("E", "v"), MeanMonitor("E", "v", power=2, when="start"), PeakMonitor("E", "v")]


def test_layer_by_layer_equals_step_by_step_on_a_generic_network():
    net = _generic_network()
    n = 300
    currents = {"E": 20.0 * jnp.sin(jnp.arange(n, dtype=jnp.float32) * 0.05)}
    key = jax.random.key(11)
    results = {}
    for label, order in (("step", StepByStep()), ("layer", LayerByLayer())):
        state = net.init(DT)
        results[label] = jax.jit(lambda s, order=order: run(net, s, n, DT, key=key, monitors=MONITORS,
                                                            currents=currents, order=order))(state)
    (s_step, r_step), (s_layer, r_layer) = results["step"], results["layer"]
    assert int(np.asarray(r_step[0]).sum()) > 20  # the network is active
    np.testing.assert_array_equal(np.asarray(r_step[0]), np.asarray(r_layer[0]))  # identical spikes
    np.testing.assert_array_equal(np.asarray(r_step[1]), np.asarray(r_layer[1]))
    for a, b in zip(r_step[2:], r_layer[2:]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(s_step), jax.tree_util.tree_leaves(s_layer)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
    assert int(s_layer.step) == n


def _fusable_network(xs, key, adaptive=False, t_ref=0.0, synapse=None):
    k1, k2, k3 = jax.random.split(key, 3)
    h, o = 24, 3
    common = dict(tau_m=8.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=t_ref, reset="subtract")
    neuron = (AdaptiveLIF(h, a=0.02, b=0.1, tau_w=30.0, delta_theta=0.3, tau_theta=40.0, **common) if adaptive
              else LIF(h, **common))
    populations = {
        "in": Population(Signal(xs)),
        "hidden": Population(neuron, {"I": Receptor(synapse or Instant(), CurrentOutput())}),
        "out": Population(LeakyIntegrator(o, tau=jnp.linspace(5.0, 12.0, o), C_m=2.0),
                          {"I": Receptor(Instant(), CurrentOutput())}),
    }
    projections = {
        "in->hidden": DenseProjection("in", "hidden", "I", 3.0 * jax.random.normal(k1, (xs.shape[1], h)),
                                      bias=0.1 * jnp.ones(h), same_step=True),
        "hidden->hidden": DenseProjection("hidden", "hidden", "I", 0.5 * jax.random.normal(k2, (h, h))),
        "hidden->out": DenseProjection("hidden", "out", "I", jax.random.normal(k3, (h, o)),
                                       bias=0.2 * jnp.ones(o), same_step=True),
    }
    return Network(populations, projections)


def _fused_calls(fn, *args):
    """Whether each fused sequence in ``fn(*args)``'s program has the readout fused in."""
    return [p["readout"] for p in fused_calls(fn, *args)]


@pytest.mark.parametrize("adaptive", [False, True], ids=["LIF", "AdaptiveLIF"])
def test_fused_sequence_is_recognised_and_continues_runs_exactly(adaptive):
    """The second half starts from the first half's state: for AdaptiveLIF also its w and theta."""
    xs = (jax.random.uniform(jax.random.key(1), (80, 10)) < 0.3).astype(jnp.float32)
    net = _fusable_network(xs, jax.random.key(2), adaptive)
    key = jax.random.key(0)
    monitors = [SpikeMonitor("hidden", differentiable=True), StateMonitor("hidden", "v"),
                StateMonitor("out", "v", when="end"), CountMonitor("hidden")]

    def both_halves(order):
        state, first = run(net, net.init(DT), 40, DT, key=key, monitors=monitors, order=order)
        state, second = run(net, state, 40, DT, key=key, monitors=monitors, order=order)
        return state, first, second

    assert _fused_calls(lambda: run(net, net.init(DT), 80, DT, key=key, monitors=monitors,
                                    order=LayerByLayer())) == [True]
    step = both_halves(StepByStep())
    layer = jax.jit(lambda: both_halves(LayerByLayer()))()
    assert float(step[1][3].sum()) > 10
    for half in (1, 2):  # the second half starts with spikes in flight and the readout away from rest
        np.testing.assert_array_equal(np.asarray(step[half][0]), np.asarray(layer[half][0]))
        for a, b in zip(step[half][1:], layer[half][1:]):  # (the kernel's exponential: float rounding)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    if adaptive:  # the adaptation carried over
        assert float(step[0].neurons["hidden"].theta.max()) > 0.1 and float(step[0].neurons["hidden"].w.max()) > 0.1
    else:
        assert float(jnp.abs(step[0].receptors["hidden"]["I"]).max()) > 0  # what the last spikes sent is kept
    for a, b in zip(jax.tree_util.tree_leaves(step[0]), jax.tree_util.tree_leaves(layer[0])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_fused_sequence_gradients_match_step_by_step():
    xs = (jax.random.uniform(jax.random.key(4), (60, 10)) < 0.3).astype(jnp.float32)

    def loss(scale, order):
        net = _fusable_network(xs * scale, jax.random.key(2))
        _, (u, counts) = run(net, net.init(DT), 60, DT, key=jax.random.key(0), order=order,
                             monitors=[StateMonitor("out", "v", when="end"), CountMonitor("hidden")])
        return jnp.sum(u ** 2) + 0.1 * jnp.sum(counts)

    g_layer = jax.grad(loss)(1.0, LayerByLayer())
    g_step = jax.grad(loss)(1.0, StepByStep())
    assert abs(float(g_step)) > 0
    np.testing.assert_allclose(float(g_layer), float(g_step), rtol=2e-3)


def test_what_layer_by_layer_refuses_and_where_it_does_not_fuse():
    net = _generic_network()
    two_way = Network(net.populations, {**net.projections,
                                        "E->src?": EventProjection("E", "E", "ge", net.projections["E->E"].operator)})
    assert LayerByLayer().check(two_way) is None  # recurrent projections are fine
    populations = dict(net.populations, I=Population(LIF(10), {"gi": Receptor(Exponential(5.0), CurrentOutput())}))
    ei = Network(populations, {"E->I": EventProjection("E", "I", "gi", fixed_probability(jax.random.key(0), 30, 10,
                                                                                          0.5, 1.0))})
    with pytest.raises(ValueError, match=r"projection 'E->I' \(E->I\) delivers after the step"):
        run(ei, ei.init(DT), 5, DT, key=jax.random.key(0), order=LayerByLayer())
    xs = jnp.ones((10, 10))
    fusable = _fusable_network(xs, jax.random.key(2))
    call = lambda order, monitors=(): run(fusable, fusable.init(DT), 10, DT, key=jax.random.key(0),  # noqa: E731
                                          monitors=monitors, order=order)
    assert _fused_calls(lambda: call(LayerByLayer(fuse=False))) == []
    assert _fused_calls(lambda: call(LayerByLayer(fuse={"hidden"}))) == [False]  # the readout is scanned
    # a monitor of a variable the fused sequence does not keep: the population is scanned instead
    assert _fused_calls(lambda: call(LayerByLayer(), [StateMonitor("hidden", "refractory")])) == []
    with pytest.raises(TypeError, match="order must be an AbstractOrder"):
        run(fusable, fusable.init(DT), 10, DT, key=jax.random.key(0), order="layer")


def test_monitor_contract_messages():
    net = _generic_network()
    with pytest.raises(ValueError, match="StateMonitor: population 'E' has no variable 'w'"):
        run(net, net.init(DT), 5, DT, key=jax.random.key(0), monitors=[StateMonitor("E", "w")])
    with pytest.raises(ValueError, match="PeakMonitor: unknown population 'X'"):
        run(net, net.init(DT), 5, DT, key=jax.random.key(0), monitors=[PeakMonitor("X", "v")])
    with pytest.raises(ValueError, match="when must be 'start' or 'end'"):
        StateMonitor("E", "v", when="later")
    with pytest.raises(ValueError, match="power must be a positive integer"):
        MeanMonitor("E", "v", power=0)
    with pytest.raises(ValueError, match="packed and differentiable exclude each other"):
        SpikeMonitor("E", packed=True, differentiable=True)
    with pytest.raises(TypeError, match="unknown monitor"):
        run(net, net.init(DT), 5, DT, key=jax.random.key(0), monitors=["E"])


@pytest.mark.parametrize("adjoint", [Checkpointed(7), Truncated(5)], ids=["checkpointed7", "truncated5"])
def test_fused_chunks_carry_refractoriness_adaptation_synapse_and_readout(adjoint):
    """Under a chunking adjoint the fused sequence runs in chunks: an adaptive population (a, b != 0, refractory
    period 2 ms) behind an exponential synapse, recurrent, with a readout, continued over two runs, gives the
    states, records and gradients of the step-by-step order with the same adjoint."""
    xs = (jax.random.uniform(jax.random.key(5), (46, 10)) < 0.3).astype(jnp.float32)
    monitors = [SpikeMonitor("hidden", differentiable=True), StateMonitor("out", "v", when="end")]

    def both_halves(scale, order):
        net = _fusable_network(xs * scale, jax.random.key(2), adaptive=True, t_ref=2.0, synapse=Exponential(4.0))
        state, first = run(net, net.init(DT), 23, DT, key=jax.random.key(0), monitors=monitors, order=order,
                           adjoint=adjoint)
        state, second = run(net, state, 23, DT, key=jax.random.key(0), monitors=monitors, order=order,
                            adjoint=adjoint)
        return state, first, second

    layer_fn = jax.jit(lambda scale: both_halves(scale, LayerByLayer()))
    assert _fused_calls(lambda: layer_fn(1.0)) != []
    step, layer = both_halves(1.0, StepByStep()), layer_fn(1.0)
    hidden = step[0].neurons["hidden"]
    assert float(step[1][0].sum()) > 20 and float(hidden.refractory.max()) > 0 and float(hidden.w.max()) > 0.05
    for half in (1, 2):
        np.testing.assert_array_equal(np.asarray(step[half][0]), np.asarray(layer[half][0]))
        np.testing.assert_allclose(np.asarray(step[half][1]), np.asarray(layer[half][1]), rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(step[0]), jax.tree_util.tree_leaves(layer[0])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)

    def loss(scale, order):
        _, first, second = both_halves(scale, order)
        return jnp.sum(second[1] ** 2) + jnp.sum(first[1] ** 2) + 0.1 * jnp.sum(second[0])

    g_step, g_layer = jax.grad(loss)(1.0, StepByStep()), jax.grad(loss)(1.0, LayerByLayer())
    assert abs(float(g_step)) > 0
    np.testing.assert_allclose(float(g_layer), float(g_step), rtol=2e-3)
