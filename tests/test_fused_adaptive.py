"""The fused layer sequence beyond plain LIF: adaptive neurons (``AdaptiveLIF``: adaptation current w, adaptive
threshold theta) and the exponential synapse (``tau_syn``), against ``lax.scan`` over the neuron's ``step`` with
ordinary autodiff.

- ``fused_lif.layer_sequence``: identical spikes, v, w and theta, and the gradients of all ten parameters
  (a, b, tau_w, delta_theta, tau_theta included), of the input currents, the recurrent weights and the initial
  state (v, w, theta), for both resets, with refractoriness and with several surrogates;
- a recurrent ALIF ``Sequential`` (projected spike input and leaky readout fused in) against the same model
  scanned, batched over enough examples for the backward kernel to split them over two threads;
- the pure-JAX reference path (no native kernels) against the native one;
- the exponential synapse ``G_t = G_{t-1} exp(-dt / tau_syn) + I_t`` for LIF and AdaptiveLIF (gradients of tau_syn
  and of the initial current i0), and a ``SpikingLayer(tau_syn=...)`` model fused against scanned;
- ``mode="checkpointed"``: the fused operation in chunks, with the gradients of full BPTT.
"""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import fused_lif
from brainsim.neurons import LIF, AdaptiveLIF
from brainsim.train import LeakyReadout, Sequential, SpikingLayer, losses, ml_lif
from fused_support import fused_calls

pytestmark = pytest.mark.usefixtures("native_kernels")

T, H = 60, 24
PARAMS = ("tau_m", "C_m", "v_rest", "v_th", "v_reset", "a", "b", "tau_w", "delta_theta", "tau_theta")


def _rel(a, b):
    return float(jnp.abs(a - b).max() / (jnp.abs(b).max() + 1e-30))


def _agree(fused, scan, loss, args):
    """``fused(*args)`` against ``scan(*args)``: identical spikes (first output), close other outputs; returns the
    gradients of ``loss(run, *args)`` with respect to every argument, ``(fused, scanned)``."""
    f, r = jax.jit(fused)(*args), scan(*args)
    assert 0.02 < float(r[0].mean()) < 0.5  # the case exercises spikes and resets
    np.testing.assert_array_equal(np.asarray(f[0]), np.asarray(r[0]))
    for a, b in zip(f[1:], r[1:]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)
    argnums = tuple(range(len(args)))
    return (jax.jit(jax.grad(lambda *a: loss(fused, *a), argnums))(*args),
            jax.grad(lambda *a: loss(scan, *a), argnums)(*args))


def _case(reset, t_ref, surrogate, a, b, seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    neuron = AdaptiveLIF(H, tau_m=jnp.linspace(5.0, 20.0, H), C_m=jnp.linspace(0.8, 1.2, H), v_rest=0.0,
                         v_th=jnp.linspace(0.8, 1.2, H), v_reset=-0.1, t_ref=t_ref, reset=reset, surrogate=surrogate,
                         slope=5.0, a=a, b=b, tau_w=jnp.linspace(20.0, 60.0, H),
                         delta_theta=jnp.linspace(0.1, 0.4, H), tau_theta=jnp.linspace(30.0, 90.0, H))
    i_ext = 0.3 * jax.random.normal(k[0], (T, H)) + 0.25
    w = 0.3 * jax.random.normal(k[1], (H, H))
    v0 = 0.5 * jax.random.uniform(k[2], (H,))
    w0 = 0.1 * jax.random.uniform(k[3], (H,))
    theta0 = 0.2 * jax.random.uniform(k[4], (H,))
    return neuron, i_ext, w, v0, w0, theta0


def _scan(neuron, i_ext, w, v0, w0, theta0):
    state = neuron.init()._replace(v=v0, w=w0, theta=theta0)

    def step(carry, i_t):
        state, s_prev = carry
        state, s = neuron.step(state, i_t + s_prev @ w, 1.0)
        return (state, s), (s, state.v, state.w, state.theta)

    return jax.lax.scan(step, (state, jnp.zeros(H)), i_ext)[1]


def _fused(neuron, i_ext, w, v0, w0, theta0):
    out = fused_lif.layer_sequence(neuron, i_ext, v0, jnp.zeros(H), None, w, dt=1.0, w0=w0, theta0=theta0)
    return out.spikes, out.v, out.w, out.theta


def _loss(run, *args):
    s, v, w, theta = run(*args)
    # every output carries a cotangent: spikes, v, w at the end, theta over the last steps
    return (jnp.sum(s * jnp.linspace(0.0, 1.0, T)[:, None]) + 0.1 * jnp.sum(v ** 2) / T + 0.05 * jnp.sum(w[-1])
            + 0.05 * jnp.sum(theta[-5:]))


CASES = [
    ("subtract", 0.0, "fast_sigmoid", 0.05, 0.2),
    ("value", 2.0, "arctan", 0.05, 0.2),
    ("subtract", 3.0, "sigmoid", 0.0, 0.0),  # threshold adaptation only (ml_lif's adaptive preset)
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_adaptive_sequence_matches_scan_of_adaptive_lif_step(case):
    g_f, g_s = _agree(_fused, _scan, _loss, _case(*case))
    for name in PARAMS:
        assert _rel(getattr(g_f[0], name), getattr(g_s[0], name)) < 2e-3, name
        if case[3] or name not in ("a", "tau_w"):  # (with a = b = 0 and w0 = 0 these have no effect)
            assert float(jnp.abs(getattr(g_s[0], name)).max()) > 0, name
    for label, a, b in zip(("i_ext", "w", "v0", "w0", "theta0"), g_f[1:], g_s[1:]):
        assert _rel(a, b) < 2e-3, label


def _ralif_model(fused):
    k1, k2 = jax.random.split(jax.random.key(11))
    neuron = ml_lif(40, tau_m=8.0, adaptive=True, delta_theta=0.3, tau_theta=50.0)
    hidden = SpikingLayer(30, 40, key=k1, recurrent=True, neuron=neuron, fused=fused, scale=3.0)
    return Sequential([hidden, LeakyReadout(40, 5, key=k2, tau=6.0)])


def test_recurrent_alif_sequential_fused_equals_scanned_batched():
    """The recurrent ALIF model of ``benchmarks/train_step.py --model ralif`` in small: one fused operation
    (input projection and readout inside), the same outputs and gradients of every trainable parameter as
    the scanned model, over a batch of 16 (the backward pass split over the kernels' two threads) and bitwise repeatable."""
    fused, scanned = _ralif_model(True), _ralif_model(False)
    xb = (jax.random.uniform(jax.random.key(12), (16, T, 30)) < 0.15).astype(jnp.float32)
    yb = jnp.arange(16) % 5
    calls = fused_calls(lambda x: fused(x), xb[0])
    assert [(c["adaptive"], c["projected"], c["readout"], c["recurrent"]) for c in calls] == [(True,) * 4]

    def loss(model):
        out, aux = jax.vmap(model)(xb)
        return jax.vmap(losses.ce_max_membrane)(out, yb).mean() + 0.01 * aux["counts"][0].mean()

    out_f, _ = jax.vmap(fused)(xb)
    out_s, aux_s = jax.vmap(scanned)(xb)
    assert float(aux_s["counts"][0].mean()) > 1.0
    np.testing.assert_allclose(np.asarray(out_f), np.asarray(out_s), atol=1e-4)
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    g_f, g_s = grad(fused), eqx.filter_grad(loss)(scanned)
    for a, b in zip(jax.tree_util.tree_leaves(g_f), jax.tree_util.tree_leaves(g_s)):
        assert _rel(a, b) < 5e-3
    for a, b in zip(jax.tree_util.tree_leaves(grad(fused)), jax.tree_util.tree_leaves(g_f)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_adaptive_reference_path_and_bad_input(monkeypatch):
    args = _case(*CASES[1])
    g_native = jax.jit(jax.grad(lambda *a: _loss(_fused, *a), (0, 2)))(*args)
    monkeypatch.setattr(fused_lif, "lif_layer_available", lambda: False)
    g_ref = jax.jit(jax.grad(lambda *a: _loss(_fused, *a), (0, 2)))(*args)
    for name in PARAMS:
        assert _rel(getattr(g_native[0], name), getattr(g_ref[0], name)) < 2e-3, name
    assert _rel(g_native[1], g_ref[1]) < 2e-3
    neuron, i_ext, w, v0, w0, theta0 = args
    with pytest.raises(ValueError, match="use layer_sequence"):
        fused_lif.lif_sequence(neuron, i_ext, v0, jnp.zeros(H), None, w, dt=1.0)
    with pytest.raises(ValueError, match="has no fused kernel"):
        fused_lif.layer_sequence(AdaptiveLIF(H, method="euler"), i_ext, v0, jnp.zeros(H), dt=1.0)


@pytest.mark.parametrize("adaptive", [False, True], ids=["LIF", "AdaptiveLIF"])
def test_checkpointed_mode_runs_fused_chunks_with_the_full_gradient(adaptive):
    """``mode="checkpointed"``: the fused operation runs on chunks of the sequence (37 steps, chunks of 5 and a
    tail of 2), recomputed in the backward pass: the outputs and gradients of full BPTT."""
    k1, k2 = jax.random.split(jax.random.key(13))
    neuron = ml_lif(40, tau_m=8.0, adaptive=adaptive, **(dict(delta_theta=0.3, tau_theta=50.0) if adaptive else {}))
    net = Sequential([SpikingLayer(30, 40, key=k1, recurrent=True, neuron=neuron, scale=3.0),
                      LeakyReadout(40, 5, key=k2, tau=6.0)])
    xs = (jax.random.uniform(jax.random.key(14), (37, 30)) < 0.15).astype(jnp.float32)
    assert len(fused_calls(lambda x: net(x, mode="checkpointed", chunk=5), xs)) == 2  # the chunks' scan, the tail
    out_full, aux_full = net(xs, mode="full")
    out_ck, aux_ck = net(xs, mode="checkpointed", chunk=5)
    assert float(aux_full["counts"][0].sum()) > 20
    np.testing.assert_allclose(np.asarray(out_ck), np.asarray(out_full), rtol=1e-5, atol=1e-5)
    loss = lambda m, mode: losses.ce_max_membrane(m(xs, mode=mode, chunk=5)[0], 1)  # noqa: E731
    g_full = eqx.filter_grad(loss)(net, "full")
    g_ck = eqx.filter_grad(loss)(net, "checkpointed")
    for a, b in zip(jax.tree_util.tree_leaves(g_full), jax.tree_util.tree_leaves(g_ck)):
        assert _rel(a, b) < 1e-4


SYNAPSE_CASES = [(False, "subtract", 0.0), (False, "value", 2.0), (True, "subtract", 0.0)]


@pytest.mark.parametrize("case", SYNAPSE_CASES, ids=lambda c: f"adaptive{c[0]}-{c[1]}-tref{c[2]}")
def test_synaptic_sequence_matches_scan_with_the_synapse(case):
    adaptive, reset, t_ref = case
    k = jax.random.split(jax.random.key(21), 4)
    common = dict(tau_m=jnp.linspace(5.0, 20.0, H), C_m=jnp.linspace(0.8, 1.2, H), v_rest=0.0,
                  v_th=jnp.linspace(0.8, 1.2, H), v_reset=-0.1, t_ref=t_ref, reset=reset, slope=5.0)
    neuron = (AdaptiveLIF(H, a=0.05, b=0.2, tau_w=30.0, delta_theta=0.2, tau_theta=40.0, **common) if adaptive
              else LIF(H, **common))
    i_ext = 0.15 * jax.random.normal(k[0], (T, H)) + 0.06
    w = 0.1 * jax.random.normal(k[1], (H, H))
    v0 = 0.5 * jax.random.uniform(k[2], (H,))
    i0 = 0.1 * jax.random.uniform(k[3], (H,))  # a synapse already charged at the start
    tau_syn = jnp.linspace(2.0, 6.0, H)

    def scan(neuron, i_ext, w, v0, i0, tau_syn):
        decay = jnp.exp(-1.0 / tau_syn)

        def step(carry, x):
            state, g, s_prev, t = carry
            g = g * decay + x + s_prev @ w + jnp.where(t == 0, i0, 0.0)
            state, s = neuron.step(state, g, 1.0)
            return (state, g, s, t + 1), (s, state.v, g)

        return jax.lax.scan(step, (neuron.init()._replace(v=v0), jnp.zeros(H), jnp.zeros(H), 0), i_ext)[1]

    def fused(neuron, i_ext, w, v0, i0, tau_syn):
        out = fused_lif.layer_sequence(neuron, i_ext, v0, jnp.zeros(H), i0, w, dt=1.0, tau_syn=tau_syn)
        return out.spikes, out.v, out.g

    def loss(run, *args):
        s, v, g = run(*args)
        return jnp.sum(s * jnp.linspace(0.0, 1.0, T)[:, None]) + 0.1 * jnp.sum(v ** 2) / T + 0.05 * jnp.sum(g[-1])

    g_f, g_s = _agree(fused, scan, loss, (neuron, i_ext, w, v0, i0, tau_syn))
    for name in ("tau_m", "C_m", "v_th", "v_reset") + (("a", "b", "delta_theta", "tau_theta") if adaptive else ()):
        assert _rel(getattr(g_f[0], name), getattr(g_s[0], name)) < 2e-3, name
    for label, a, b in zip(("i_ext", "w", "v0", "i0", "tau_syn"), g_f[1:], g_s[1:]):
        assert float(jnp.abs(b).max()) > 0, label
        assert _rel(a, b) < 2e-3, label


def test_synaptic_layers_fused_equal_scanned():
    """``SpikingLayer(tau_syn=...)`` (its learnable per-neuron tau_syn included) runs as one fused operation, LIF and
    adaptive, with the outputs and gradients of the scanned model; checkpointed mode too."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(31), 4)

    def build(fused):
        return Sequential([SpikingLayer(30, 40, key=k1, recurrent=True, neuron=ml_lif(40, tau_m=8.0), tau_syn=4.0,
                                        fused=fused, scale=2.0),
                           SpikingLayer(40, 20, key=k2, neuron=ml_lif(20, tau_m=8.0, adaptive=True), tau_syn=3.0,
                                        fused=fused, scale=3.0),
                           LeakyReadout(20, 5, key=k3, tau=6.0)])

    fused, scanned = build(True), build(False)
    xb = (jax.random.uniform(k4, (4, 37, 30)) < 0.2).astype(jnp.float32)
    yb = jnp.arange(4) % 5
    calls = [(c["synaptic"], c["adaptive"], c["readout"]) for c in fused_calls(lambda x: fused(x), xb[0])]
    assert calls == [(True, False, False), (True, True, True)]

    def loss(model, mode="full"):
        out, aux = jax.vmap(lambda x: model(x, mode=mode, chunk=6))(xb)
        return jax.vmap(losses.ce_max_membrane)(out, yb).mean() + 0.01 * aux["counts"][1].mean()

    out_f, aux_f = jax.vmap(fused)(xb)
    out_s, aux_s = jax.vmap(scanned)(xb)
    assert min(float(c.mean()) for c in aux_s["counts"]) > 0.5
    np.testing.assert_allclose(np.asarray(out_f), np.asarray(out_s), atol=1e-4)
    g_s = eqx.filter_grad(loss)(scanned)
    for mode in ("full", "checkpointed"):
        g_f = eqx.filter_jit(eqx.filter_grad(loss))(fused, mode)
        for a, b in zip(jax.tree_util.tree_leaves(g_f), jax.tree_util.tree_leaves(g_s)):
            assert _rel(a, b) < 5e-3
    assert float(jnp.abs(g_s.layers[0].synapse.tau.raw).max()) > 0  # tau_syn learns
