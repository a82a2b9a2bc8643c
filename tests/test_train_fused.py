"""The fast paths of gradient training against the plain JAX code they replace.

- ``event_matmul``: ``x @ W`` visiting only nonzero inputs; forward, both gradients, both vmap orders,
  dense inputs, float64, bad input.
- ``fused_lif.lif_sequence``: a whole LIF-layer sequence as one operation with its own backward pass,
  against ``lax.scan`` over ``LIF.step`` with ordinary autodiff: spikes, membrane potentials and the
  gradients of every parameter, of the recurrent weights and of the input currents; batched under
  ``grad(vmap)`` and ``vmap(grad)``; and ``Sequential`` with and without fusion.
- every surrogate the kernel implements (``fused_lif.NATIVE_SURROGATES``) against the same surrogate of
  ``brainsim.spikes`` differentiated through the scan.
- the same operation with the input projection fused in (``w_in``, ``b_in``): against the scan fed with
  ``x @ w_in + b_in``, for binary spike (sparse and dense), sparse graded and dense inputs, including the
  gradient with respect to x, and for batches mixing binary and non-binary examples.
- the same operation with a ``LeakyReadout`` fused in behind the layer (``Sequential`` does this): against
  the scanned network, with and without a cotangent of the spikes, in both vmap orders, on the pure-JAX path.
"""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import fused_lif
from brainsim.evaluation import LayerByLayer
from brainsim.event_matmul import event_matmul
from brainsim.neurons import LIF
from brainsim.simulate import run
from brainsim.synapses import Alpha
from brainsim.train import LeakyReadout, Sequential, SpikingLayer, losses, ml_lif
from fused_support import fused_calls

# native-vs-reference tests: fail (not skip) where a C++ compiler is present but a kernel does not build
pytestmark = pytest.mark.usefixtures("native_kernels")

# --- event_matmul -----------------------------------------------------------------------------------------


def _sparse_input(key, shape, density=0.05):
    k1, k2 = jax.random.split(key)
    return jnp.where(jax.random.uniform(k1, shape) < density, jax.random.normal(k2, shape), 0.0)


def _rel(a, b):
    return float(jnp.abs(a - b).max() / (jnp.abs(b).max() + 1e-30))


def test_event_matmul_equals_dense_product_and_gradients():
    x = _sparse_input(jax.random.key(0), (3, 40, 130))
    w = jax.random.normal(jax.random.key(1), (130, 37))
    assert _rel(jax.jit(event_matmul)(x, w), x @ w) < 1e-5

    def loss(mm):
        return lambda w, x: jnp.sum(jnp.sin(mm(x, w)))

    fast, plain = loss(event_matmul), loss(jnp.matmul)
    # weight and input gradients
    for argnum in (0, 1):
        assert _rel(jax.jit(jax.grad(fast, argnum))(w, x[0]), jax.grad(plain, argnum)(w, x[0])) < 1e-5
    # batch-mean gradient (examples stacked into one product) and per-example gradients
    mean = lambda f: (lambda w: jax.vmap(lambda xx: f(w, xx))(x).mean())  # noqa: E731
    assert _rel(jax.jit(jax.grad(mean(fast)))(w), jax.grad(mean(plain))(w)) < 1e-5
    per_example = jax.jit(jax.vmap(jax.grad(fast), in_axes=(None, 0)))(w, x)
    assert _rel(per_example, jax.vmap(jax.grad(plain), in_axes=(None, 0))(w, x)) < 1e-5
    # second order and forward mode
    hess = lambda f: jax.grad(lambda w: jnp.sum(jax.grad(f)(w, x[0]) ** 2))  # noqa: E731
    assert _rel(hess(fast)(w), hess(plain)(w)) < 1e-4
    assert _rel(jax.jvp(lambda w: event_matmul(x, w), (w,), (w,))[1], x @ w) < 1e-5


def test_event_matmul_dense_input_per_example_weights_and_float64():
    dense = jax.random.normal(jax.random.key(2), (50, 64))
    w = jax.random.normal(jax.random.key(3), (64, 9))
    assert _rel(jax.jit(event_matmul)(dense, w), dense @ w) < 1e-5
    ws = jax.random.normal(jax.random.key(4), (4, 64, 9))
    x = _sparse_input(jax.random.key(5), (50, 64))
    assert _rel(jax.vmap(event_matmul, in_axes=(None, 0))(x, ws), jnp.einsum("mk,bkn->bmn", x, ws)) < 1e-5
    x64 = np.asarray(x, np.float64)
    with jax.enable_x64(True):
        out = event_matmul(jnp.asarray(x64), jnp.asarray(np.asarray(w, np.float64)))
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(out), x64 @ np.asarray(w, np.float64), rtol=1e-12)


@pytest.mark.parametrize("density", [0.03, 0.6])
def test_event_matmul_kernel_paths(density):
    # sparse path (selected rows of W summed in registers in 256-, 64- and 16-column blocks plus a scalar
    # tail) and dense path (register-blocked product in 8-, 4- and 1-row blocks, chosen inside the kernel
    # from a sample of x), forward and weight gradient
    x = _sparse_input(jax.random.key(6), (37, 90), density)
    w = jax.random.normal(jax.random.key(7), (90, 341))
    g = jax.random.normal(jax.random.key(8), (37, 341))
    assert _rel(jax.jit(event_matmul)(x, w), x @ w) < 1e-5
    dw = jax.jit(lambda w: jax.vjp(lambda w: event_matmul(x, w), w)[1](g)[0])(w)
    assert _rel(dw, x.T @ g) < 1e-5


def _in_threads(work, n):
    """Runs ``work(i)`` for i < n in n threads at once; none may raise."""
    import threading

    errors = []

    def run(i):
        try:
            work(i)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_split_kernels_from_concurrent_threads():
    """The kernels hand half of a large call to one persistent worker thread; calls made at the same time
    from several threads (JAX releases the GIL while they run) must still each get the right result."""
    x = _sparse_input(jax.random.key(11), (3000, 700), 0.02)  # large enough to be split over two threads
    ws = [jax.random.normal(jax.random.key(20 + i), (700, 64)) for i in range(4)]
    f = jax.jit(event_matmul)
    expected = [np.asarray(x @ w) for w in ws]
    results = {}

    def work(i):
        for _ in range(5):
            results[i] = np.asarray(f(x, ws[i]))

    _in_threads(work, 4)
    for i in range(4):
        np.testing.assert_allclose(results[i], expected[i], rtol=1e-5, atol=1e-4)


def test_event_matmul_bad_input():
    w = jnp.ones((5, 3))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 5\)"):
        event_matmul(jnp.ones((2, 4)), w)
    with pytest.raises(ValueError, match="2-D"):
        event_matmul(jnp.ones((2, 5)), jnp.ones((5,)))
    with pytest.raises(ValueError, match="max_density"):
        event_matmul(jnp.ones((2, 5)), w, max_density=1.5)


# --- fused LIF layer ----------------------------------------------------------------------------------------

T, H = 40, 48


def _scan_lif(neuron, i_ext, v0, ref0, s0, w, dt):
    """The plain reference: lax.scan over LIF.step with the recurrent current s_{t-1} @ w."""

    def step(carry, i_t):
        state, s_prev = carry
        current = i_t + (s_prev @ w if w is not None else 0.0)
        state, s = neuron.step(state, current, dt)
        return (state, s), (s, state.v)

    state0 = neuron.init()._replace(v=v0, refractory=ref0)
    return jax.lax.scan(step, (state0, s0), i_ext)[1]


def _i0(s0, w):
    """The current the spikes s0 of the step before the sequence send through w: the op's ``i0``."""
    return s0 @ w if w is not None else jnp.zeros_like(s0)


def _fused(neuron, i_ext, v0, ref0, s0, w, dt):
    return fused_lif.lif_sequence(neuron, i_ext, v0, ref0, _i0(s0, w), w, dt=dt)


CONFIGS = [
    dict(reset="subtract", t_ref=0.0, surrogate="fast_sigmoid", recurrent=True),
    dict(reset="value", t_ref=2.0, surrogate="arctan", recurrent=True),
    dict(reset="subtract", t_ref=3.0, surrogate="sigmoid", recurrent=False, v_rest=0.05),
    dict(reset="value", t_ref=0.0, surrogate="triangle", recurrent=True),
    # tau_m > 100 dt: the backward pass sums the currents again instead of recovering them from v (1 - a < 0.01)
    dict(reset="subtract", t_ref=0.0, surrogate="gaussian", recurrent=True, tau=(150.0, 300.0), v_rest=0.05),
]


def _case(cfg, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    neuron = LIF(H, tau_m=jnp.linspace(*cfg.get("tau", (5.0, 20.0)), H), C_m=jnp.linspace(0.8, 1.2, H),
                 v_rest=cfg.get("v_rest", 0.0),
                 v_th=jnp.linspace(0.8, 1.2, H), v_reset=-0.1, t_ref=cfg["t_ref"], reset=cfg["reset"],
                 surrogate=cfg["surrogate"], slope=5.0)
    i_ext = 0.25 * jax.random.normal(k[0], (T, H)) + 0.15
    w = 0.3 * jax.random.normal(k[1], (H, H)) if cfg["recurrent"] else None
    v0 = 0.5 * jax.random.uniform(k[2], (H,))
    return neuron, i_ext, w, v0, jnp.zeros(H), jnp.zeros(H)


def _loss(run, neuron, i_ext, w, v0, ref0, s0):
    s, v = run(neuron, i_ext, v0, ref0, s0, w, 1.0)
    return jnp.sum(s * jnp.linspace(0.0, 1.0, T)[:, None]) + 0.1 * jnp.sum(v ** 2) / T


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['reset']}-tref{c['t_ref']}-{c['surrogate']}-rec{c['recurrent']}"
                         f"-tau{c.get('tau', (5.0, 20.0))[0]:g}")
def test_fused_lif_matches_scan_of_lif_step(cfg):
    _assert_fused_matches_scan(cfg)


@pytest.mark.parametrize("surrogate", fused_lif.NATIVE_SURROGATES)
def test_every_native_surrogate_matches_spikes_py(surrogate):
    """Each surrogate of the kernel's switch (chosen by its position in NATIVE_SURROGATES) against the same
    surrogate of ``brainsim.spikes`` under ordinary autodiff of the scan: a position that selects another
    surrogate in the kernel, or a formula that differs, changes these gradients."""
    _assert_fused_matches_scan(dict(reset="subtract", t_ref=0.0, surrogate=surrogate, recurrent=True))


def _assert_fused_matches_scan(cfg):
    neuron, i_ext, w, v0, ref0, s0 = _case(cfg)
    s_f, v_f = jax.jit(_fused, static_argnums=6)(neuron, i_ext, v0, ref0, s0, w, 1.0)
    s_r, v_r = _scan_lif(neuron, i_ext, v0, ref0, s0, w, 1.0)
    assert 0.02 < float(s_r.mean()) < 0.5  # the case exercises spikes and resets
    np.testing.assert_array_equal(np.asarray(s_f), np.asarray(s_r))
    # v_inf = tau_m I / C_m grows with tau_m: float rounding of v grows with it
    np.testing.assert_allclose(np.asarray(v_f), np.asarray(v_r), rtol=2e-5,
                               atol=2e-5 * cfg.get("tau", (5.0, 20.0))[1] / 20.0)

    argnums = (0, 1, 2) if w is not None else (0, 1)
    g_f = jax.jit(jax.grad(lambda *a: _loss(_fused, *a, v0, ref0, s0), argnums))(neuron, i_ext, *(
        (w,) if w is not None else (None,)))
    g_r = jax.grad(lambda *a: _loss(_scan_lif, *a, v0, ref0, s0), argnums)(neuron, i_ext, *(
        (w,) if w is not None else (None,)))
    for name in ("tau_m", "C_m", "v_rest", "v_th", "v_reset"):
        assert _rel(getattr(g_f[0], name), getattr(g_r[0], name)) < 2e-3, name
    assert _rel(g_f[1], g_r[1]) < 2e-3
    if w is not None:
        assert _rel(g_f[2], g_r[2]) < 2e-3
    # gradient with respect to the initial membrane potential
    gv_f = jax.grad(lambda v: _loss(_fused, neuron, i_ext, w, v, ref0, s0))(v0)
    gv_r = jax.grad(lambda v: _loss(_scan_lif, neuron, i_ext, w, v, ref0, s0))(v0)
    assert _rel(gv_f, gv_r) < 2e-3


def test_fused_lif_odd_width_and_initial_spikes():
    """37 neurons (the kernels' bit masks of S end in a partial word and a partial 16-lane block) and initial
    spikes s0, one of them graded: the backward pass reads s_{t-1} from S's bit mask for t > 0 and from s0 at
    t = 0."""
    h = 37
    k = jax.random.split(jax.random.key(21), 4)
    neuron = LIF(h, tau_m=jnp.linspace(5.0, 20.0, h), C_m=1.0, v_rest=0.0, v_th=jnp.linspace(0.8, 1.2, h),
                 v_reset=-0.1, t_ref=0.0, reset="subtract", surrogate="fast_sigmoid", slope=5.0)
    i_ext = 0.25 * jax.random.normal(k[0], (T, h)) + 0.15
    w = 0.3 * jax.random.normal(k[1], (h, h))
    v0 = 0.5 * jax.random.uniform(k[2], (h,))
    s0 = jnp.zeros(h).at[jnp.array([0, 16, 31, 32, 36])].set(1.0).at[5].set(0.5)
    ref0 = jnp.zeros(h)

    def loss(run, neuron, w, v0, s0):
        s, v = run(neuron, i_ext, v0, ref0, s0, w, 1.0)
        return jnp.sum(s * jnp.linspace(0.0, 1.0, T)[:, None]) + 0.1 * jnp.sum(v ** 2) / T

    s_f, _ = jax.jit(_fused, static_argnums=6)(neuron, i_ext, v0, ref0, s0, w, 1.0)
    s_r, _ = _scan_lif(neuron, i_ext, v0, ref0, s0, w, 1.0)
    np.testing.assert_array_equal(np.asarray(s_f), np.asarray(s_r))
    assert float(s_r[:, 32:].sum()) > 0  # spikes in the partial word
    g_f = jax.jit(jax.grad(lambda *a: loss(_fused, *a), (0, 1, 2, 3)))(neuron, w, v0, s0)
    g_r = jax.grad(lambda *a: loss(_scan_lif, *a), (0, 1, 2, 3))(neuron, w, v0, s0)
    for name in ("tau_m", "v_th", "v_reset"):
        assert _rel(getattr(g_f[0], name), getattr(g_r[0], name)) < 2e-3, name
    for a, b in zip(g_f[1:], g_r[1:]):
        assert _rel(a, b) < 2e-3


def test_fused_lif_batched_gradients_both_orders():
    neuron, i_ext, w, v0, ref0, s0 = _case(CONFIGS[0])
    batch = i_ext[None] + 0.05 * jax.random.normal(jax.random.key(9), (5, T, H))

    def mean_loss(run):
        return lambda n, w: jax.vmap(lambda i: _loss(run, n, i, w, v0, ref0, s0))(batch).mean()

    g_f = jax.jit(jax.grad(mean_loss(_fused), (0, 1)))(neuron, w)
    g_r = jax.grad(mean_loss(_scan_lif), (0, 1))(neuron, w)
    assert _rel(g_f[1], g_r[1]) < 2e-3 and _rel(g_f[0].tau_m, g_r[0].tau_m) < 2e-3

    per_f = jax.jit(jax.vmap(jax.grad(lambda w, i: _loss(_fused, neuron, i, w, v0, ref0, s0)), (None, 0)))(w, batch)
    per_r = jax.vmap(jax.grad(lambda w, i: _loss(_scan_lif, neuron, i, w, v0, ref0, s0)), (None, 0))(w, batch)
    assert per_f.shape == (5, H, H) and _rel(per_f, per_r) < 2e-3


def test_fused_lif_examples_starting_refractory():
    """t_ref = 0, but some examples start with neurons refractory: the kernels keep the refractory mask of
    those examples only (the others can never be refractory) and must still agree with the scan."""
    neuron, i_ext, w, v0, _, s0 = _case(CONFIGS[0])
    batch = i_ext[None] + 0.05 * jax.random.normal(jax.random.key(10), (4, T, H))
    refs = jnp.zeros((4, H)).at[1, :10].set(3.0).at[3, 5].set(1.6)  # examples 1 and 3 start refractory

    def mean_loss(run):
        return lambda n, w: jax.vmap(lambda i, r: _loss(run, n, i, w, v0, r, s0))(batch, refs).mean()

    out_f = jax.jit(jax.vmap(lambda i, r: _fused(neuron, i, v0, r, s0, w, 1.0)))(batch, refs)
    out_r = jax.vmap(lambda i, r: _scan_lif(neuron, i, v0, r, s0, w, 1.0))(batch, refs)
    np.testing.assert_array_equal(np.asarray(out_f[0]), np.asarray(out_r[0]))
    assert not np.array_equal(np.asarray(out_r[1][1]), np.asarray(_scan_lif(neuron, batch[1], v0, refs[0], s0, w,
                                                                             1.0)[1]))  # the start matters
    g_f = jax.jit(jax.grad(mean_loss(_fused), (0, 1)))(neuron, w)
    g_r = jax.grad(mean_loss(_scan_lif), (0, 1))(neuron, w)
    assert _rel(g_f[1], g_r[1]) < 2e-3 and _rel(g_f[0].tau_m, g_r[0].tau_m) < 2e-3


K = 36


def _projected_case(kind, seed=3):
    neuron, _, w, v0, ref0, s0 = _case(CONFIGS[1], seed)
    k = jax.random.split(jax.random.key(seed + 10), 3)
    if kind == "dense":  # graded input everywhere (the kernel's row sums then visit every input)
        x = 0.5 * jax.random.normal(k[0], (T, K))
    elif kind == "binary":  # spikes (0/1): the backward pass reads the forward pass's bit mask, not x
        x = (jax.random.uniform(k[1], (T, K)) < 0.2).astype(jnp.float32)
    else:  # sparse: a few nonzero inputs per step, some of them not 1 (the backward pass reads x again)
        x = _sparse_input(k[0], (T, K), density=0.15) + (jax.random.uniform(k[1], (T, K)) < 0.1).astype(jnp.float32)
    w_in = 0.3 * jax.random.normal(k[2], (K, H))
    b_in = jnp.linspace(0.0, 0.2, H)
    return neuron, x, w_in, b_in, w, v0, ref0, s0


def _projected_loss(fused, neuron, x, w_in, b_in, w, v0, ref0, s0):
    if fused:
        s, v = fused_lif.lif_sequence(neuron, x, v0, ref0, _i0(s0, w), w, dt=1.0, w_in=w_in, b_in=b_in)
    else:
        s, v = _scan_lif(neuron, x @ w_in + b_in, v0, ref0, s0, w, 1.0)
    return jnp.sum(s * jnp.linspace(0.0, 1.0, T)[:, None]) + 0.1 * jnp.sum(v ** 2) / T, (s, v)


@pytest.mark.parametrize("kind", ["binary", "sparse", "dense"])
def test_fused_projection_matches_scan_of_projected_currents(kind):
    neuron, x, w_in, b_in, w, v0, ref0, s0 = _projected_case(kind)
    args = (neuron, x, w_in, b_in, w, v0, ref0, s0)
    grad = jax.grad(_projected_loss, argnums=(1, 2, 3, 4, 5, 6), has_aux=True)
    g_f, (s_f, v_f) = jax.jit(lambda *a: grad(True, *a))(*args)
    g_r, (s_r, v_r) = grad(False, *args)
    assert 0.02 < float(s_r.mean()) < 0.5
    np.testing.assert_array_equal(np.asarray(s_f), np.asarray(s_r))
    np.testing.assert_allclose(np.asarray(v_f), np.asarray(v_r), atol=2e-5)
    assert _rel(g_f[0].tau_m, g_r[0].tau_m) < 2e-3 and _rel(g_f[0].v_th, g_r[0].v_th) < 2e-3
    for name, a, b in zip(("x", "w_in", "b_in", "w", "v0"), g_f[1:], g_r[1:]):
        assert a.shape == b.shape and _rel(a, b) < 2e-3, name
    # without the gradient with respect to x the kernel skips writing the current cotangent: same w_in grad
    g_w_only = jax.jit(jax.grad(lambda wi: _projected_loss(True, neuron, x, wi, b_in, w, v0, ref0, s0)[0]))(w_in)
    assert _rel(g_w_only, g_r[2]) < 2e-3


@pytest.mark.parametrize("density", [0.3, 0.6, 0.95])
def test_fused_projection_dense_binary_input(density):
    # binary input with up to 64 set bits in a 64-bit word of the kernel's bit mask (130 inputs: two full pairs
    # of 32-bit words and a last single word), so that decoding the mask takes one to four stores of positions
    neuron, _, w, v0, ref0, s0 = _case(CONFIGS[0], seed=7)
    k = jax.random.split(jax.random.key(17), 2)
    n_in = 130
    x = (jax.random.uniform(k[0], (T, n_in)) < density).astype(jnp.float32)
    w_in = 0.05 * jax.random.normal(k[1], (n_in, H))
    b_in = jnp.zeros(H)
    args = (neuron, x, w_in, b_in, w, v0, ref0, s0)
    grad = jax.grad(_projected_loss, argnums=(2, 3, 4), has_aux=True)
    g_f, (s_f, v_f) = jax.jit(lambda *a: grad(True, *a))(*args)
    g_r, (s_r, v_r) = grad(False, *args)
    assert float(s_r.mean()) > 0.02
    np.testing.assert_array_equal(np.asarray(s_f), np.asarray(s_r))
    # up to 130 rows of w_in summed per step, in another order than x @ w_in: rounding of ~1e-5 mV
    np.testing.assert_allclose(np.asarray(v_f), np.asarray(v_r), atol=1e-4)
    for name, a, b in zip(("w_in", "b_in", "w"), g_f, g_r):
        assert _rel(a, b) < 2e-3, name


def test_fused_projection_batched_and_reference_path(monkeypatch):
    neuron, x, w_in, b_in, w, v0, ref0, s0 = _projected_case("binary", seed=5)
    batch = jnp.stack([x, jnp.roll(x, 3, axis=0), 2.0 * x])  # two binary examples, one not

    def mean_loss(fused):
        return lambda wi, b: jax.vmap(lambda xx: _projected_loss(fused, neuron, xx, wi, b, w, v0, ref0, s0)[0])(
            batch).mean()

    g_f = jax.jit(jax.grad(mean_loss(True), (0, 1)))(w_in, b_in)
    g_r = jax.grad(mean_loss(False), (0, 1))(w_in, b_in)
    assert _rel(g_f[0], g_r[0]) < 2e-3 and _rel(g_f[1], g_r[1]) < 2e-3
    per_f = jax.jit(jax.vmap(jax.grad(lambda wi, xx: _projected_loss(True, neuron, xx, wi, b_in, w, v0, ref0, s0)[0]),
                             (None, 0)))(w_in, batch)
    assert per_f.shape == (3, K, H) and _rel(per_f.mean(0), g_r[0]) < 2e-3
    monkeypatch.setattr(fused_lif, "lif_layer_available", lambda: False)  # the pure-JAX path of the same op
    g_p = jax.jit(jax.grad(mean_loss(True), (0, 1)))(w_in, b_in)
    assert _rel(g_p[0], g_r[0]) < 2e-3 and _rel(g_p[1], g_r[1]) < 2e-3


def test_fused_lif_reference_path_without_native_kernels(monkeypatch):
    """With the native kernels unavailable (BRAINSIM_NATIVE=0, other platforms) the same op runs in JAX."""
    neuron, i_ext, w, v0, ref0, s0 = _case(CONFIGS[1])
    g_native = jax.jit(jax.grad(lambda w: _loss(_fused, neuron, i_ext, w, v0, ref0, s0)))(w)
    monkeypatch.setattr(fused_lif, "lif_layer_available", lambda: False)
    g_ref = jax.jit(jax.grad(lambda w: _loss(_fused, neuron, i_ext, w, v0, ref0, s0)))(w)
    assert _rel(g_native, g_ref) < 2e-3


def test_sequential_fused_and_scanned_agree():
    key = jax.random.key(4)

    def build(fused):
        k1, k2 = jax.random.split(key)
        hidden = SpikingLayer(30, H, key=k1, recurrent=True, neuron=ml_lif(H, tau_m=8.0), fused=fused, scale=3.0)
        return Sequential([hidden, LeakyReadout(H, 5, key=k2, tau=8.0)])

    x = (jax.random.uniform(jax.random.key(5), (T, 30)) < 0.2).astype(jnp.float32)

    def loss(model):
        out, aux = model(x)
        return losses.ce_max_membrane(out, 2) + 0.01 * aux["counts"][0].mean()

    fused, scanned = build(True), build(False)
    out_f, aux_f = fused(x)
    out_s, aux_s = scanned(x)
    assert float(aux_s["counts"][0].sum()) > 0
    np.testing.assert_allclose(np.asarray(out_f), np.asarray(out_s), atol=1e-4)
    g_f = eqx.filter_grad(loss)(fused)
    g_s = eqx.filter_grad(loss)(scanned)
    for a, b in zip(jax.tree_util.tree_leaves(g_f), jax.tree_util.tree_leaves(g_s)):
        assert _rel(a, b) < 5e-3


def test_fused_layer_split_over_two_threads_matches_scan_and_is_deterministic():
    """A batch large enough for the kernels to split it over two threads: in the forward pass the threads
    claim examples one at a time, in the backward pass each sums its half's weight gradients (returned as two
    parts). The gradients must match the scanned network, be bitwise the same on every call, and stay so
    when several calls run at once (the busy worker then leaves both halves to the calling thread)."""
    t_steps, n_in, h, batch = 60, 100, 64, 16
    k1, k2, k3 = jax.random.split(jax.random.key(30), 3)

    def build(fused):
        hidden = SpikingLayer(n_in, h, key=k1, recurrent=True, neuron=ml_lif(h, tau_m=8.0), fused=fused, scale=3.0)
        return Sequential([hidden, LeakyReadout(h, 5, key=k2, tau=8.0)])

    xb = (jax.random.uniform(k3, (batch, t_steps, n_in)) < 0.1).astype(jnp.float32)
    yb = jnp.arange(batch) % 5

    def loss(model):
        return jax.vmap(lambda x, y: losses.ce_max_membrane(model(x)[0], y))(xb, yb).mean()

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    fused, scanned = build(True), build(False)
    g_f = grad(fused)
    g_s = eqx.filter_grad(loss)(scanned)
    for a, b in zip(jax.tree_util.tree_leaves(g_f), jax.tree_util.tree_leaves(g_s)):
        assert _rel(a, b) < 5e-3
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(g_f)]
    results = []

    def work(_):
        for _ in range(3):
            results.append([np.asarray(a) for a in jax.tree_util.tree_leaves(grad(fused))])

    _in_threads(work, 3)
    assert len(results) == 9
    for r in results:
        for a, b in zip(r, leaves):
            np.testing.assert_array_equal(a, b)


READOUT_CASES = [
    dict(recurrent=True, reset="subtract", sparse_p=None, bias=True, learn_tau=True, layers=1),
    dict(recurrent=False, reset="value", sparse_p=None, bias=False, learn_tau=True, layers=1),
    dict(recurrent=True, reset="subtract", sparse_p=0.3, bias=True, learn_tau=False, layers=1),
    dict(recurrent=True, reset="value", sparse_p=None, bias=True, learn_tau=True, layers=2),
]


def _readout_net(case, fused):
    k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
    t_ref = 1.0 if case["reset"] == "value" else 0.0
    neuron = lambda n: ml_lif(n, tau_m=8.0, reset=case["reset"], t_ref=t_ref)  # noqa: E731
    layers = [SpikingLayer(30, H, key=k1, recurrent=case["recurrent"], neuron=neuron(H), fused=fused, scale=3.0,
                           sparse_p=case["sparse_p"])]
    if case["layers"] == 2:
        layers.append(SpikingLayer(H, 12, key=k3, recurrent=True, neuron=neuron(12), fused=fused, scale=3.0))
    readout = LeakyReadout(layers[-1].n_out, 5, key=k2, tau=6.0, learn_tau=case["learn_tau"])
    if not case["bias"]:
        readout = eqx.tree_at(lambda r: r.projection.bias, readout, None, is_leaf=lambda x: x is None)
    return Sequential(layers + [readout])


@pytest.mark.parametrize("case", READOUT_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_fused_readout_matches_scanned_readout(case):
    """A LeakyReadout behind a fused layer runs inside its operation: same outputs and gradients (of every
    parameter, the readout's weights, bias and tau included) as the scanned network, whether or not the loss
    also uses the spikes, batched in both vmap orders."""
    fused, scanned = _readout_net(case, True), _readout_net(case, False)
    xs = (jax.random.uniform(jax.random.key(8), (3, T, 30)) < 0.2).astype(jnp.float32)
    labels = jnp.array([0, 3, 4])
    out_f, aux_f = jax.jit(jax.vmap(lambda x: fused(x)))(xs)
    out_s, aux_s = jax.vmap(lambda x: scanned(x))(xs)
    assert out_f.shape == (3, T, 5) and float(aux_s["counts"][-1].sum()) > 0
    np.testing.assert_allclose(np.asarray(out_f), np.asarray(out_s), atol=1e-4)
    np.testing.assert_allclose(np.asarray(aux_f["counts"][-1]), np.asarray(aux_s["counts"][-1]))

    for with_spikes in (False, True):  # the spikes' cotangent zero (readout only) or not
        def loss(model, x, label):
            out, aux = model(x)
            return losses.ce_max_membrane(out, label) + (0.5 * aux["counts"][0].mean() if with_spikes else 0.0)

        mean_loss = lambda m: jax.vmap(loss, (None, 0, 0))(m, xs, labels).mean()  # noqa: E731
        g_f = eqx.filter_jit(eqx.filter_grad(mean_loss))(fused)
        g_s = eqx.filter_grad(mean_loss)(scanned)
        per_example = eqx.filter_jit(lambda m: jax.vmap(eqx.filter_grad(loss), (None, 0, 0))(m, xs, labels))(fused)
        for a, b, c in zip(jax.tree_util.tree_leaves(g_f), jax.tree_util.tree_leaves(g_s),
                           jax.tree_util.tree_leaves(per_example)):
            assert _rel(a, b) < 5e-3
            assert _rel(c.mean(0), b) < 5e-3
        readout_f, readout_s = g_f.layers[-1], g_s.layers[-1]  # the readout's own gradients are not zero
        assert float(jnp.abs(readout_s.projection.weight).max()) > 0
        assert _rel(readout_f.projection.weight, readout_s.projection.weight) < 5e-3
        if case["learn_tau"]:
            assert _rel(readout_f.tau.raw, readout_s.tau.raw) < 5e-3 and float(jnp.abs(readout_s.tau.raw).max()) > 0


def test_fused_readout_reference_path_and_bad_input(monkeypatch):
    net = _readout_net(READOUT_CASES[0], True)
    x = (jax.random.uniform(jax.random.key(9), (T, 30)) < 0.2).astype(jnp.float32)
    loss = lambda m: losses.ce_max_membrane(m(x)[0], 1)  # noqa: E731
    g_native = eqx.filter_jit(eqx.filter_grad(loss))(net)
    monkeypatch.setattr(fused_lif, "lif_layer_available", lambda: False)  # the pure-JAX path of the same op
    g_ref = eqx.filter_jit(eqx.filter_grad(loss))(net)
    for a, b in zip(jax.tree_util.tree_leaves(g_native), jax.tree_util.tree_leaves(g_ref)):
        assert _rel(a, b) < 2e-3
    hidden, readout = net.layers
    # recognised on the network form: the layer and its readout in one operation; a spiking layer behind it
    # is not a readout, a readout of another dt does not chain at all
    assert [p["readout"] for p in fused_calls(net, x)] == [True]
    behind = Sequential([hidden, SpikingLayer(H, 5, key=jax.random.key(0))])
    assert [p["readout"] for p in fused_calls(behind, x)] == [False, False]
    with pytest.raises(ValueError, match="different time steps"):
        Sequential([hidden, LeakyReadout(H, 5, key=jax.random.key(0), dt=0.5)])(x)
    with pytest.raises(ValueError, match=r"readout weights must be \(6, O\)"):
        fused_lif.lif_sequence(LIF(6), jnp.ones((10, 6)), jnp.zeros(6), jnp.zeros(6), jnp.zeros(6), dt=0.1,
                               readout=(jnp.ones((5, 2)), None, jnp.ones(2)))
    with pytest.raises(ValueError, match=r"readout bias must have shape \(2,\)"):
        fused_lif.lif_sequence(LIF(6), jnp.ones((10, 6)), jnp.zeros(6), jnp.zeros(6), jnp.zeros(6), dt=0.1,
                               readout=(jnp.ones((6, 2)), jnp.ones(3), jnp.ones(2)))


def test_fused_lif_supports_and_bad_input():
    layer = SpikingLayer(4, 6, key=jax.random.key(0))
    assert fused_lif.supports(layer.neuron)
    assert fused_lif.supports(ml_lif(6, adaptive=True))  # tests/test_fused_adaptive.py
    assert not fused_lif.supports(LIF(6, method="euler"))
    x = jnp.ones((10, 4))
    assert len(fused_calls(Sequential([layer]), x)) == 1
    synaptic = SpikingLayer(4, 6, key=jax.random.key(0), tau_syn=5.0)  # the kernel's synapse (test_fused_adaptive.py)
    assert [p["synaptic"] for p in fused_calls(Sequential([synaptic]), x)] == [True]
    assert fused_calls(Sequential([SpikingLayer(4, 6, key=jax.random.key(0), fused=False)]), x) == []
    alpha = Sequential([layer]).to_network(x)[0]  # an alpha receptor: scanned
    alpha = eqx.tree_at(lambda n: n.populations["layer0"].receptors["I"].kinetics, alpha, Alpha(3.0))
    assert fused_calls(lambda: run(alpha, alpha.init(1.0), 10, 1.0, key=jax.random.key(0),
                                      order=LayerByLayer())) == []
    with pytest.raises(ValueError, match=r"shape \(T, 6\)"):
        fused_lif.lif_sequence(LIF(6), jnp.ones((10, 5)), jnp.zeros(6), jnp.zeros(6), jnp.zeros(6), dt=0.1)
    with pytest.raises(ValueError, match=r"w_in \(K, 6\)"):
        fused_lif.lif_sequence(LIF(6), jnp.ones((10, 5)), jnp.zeros(6), jnp.zeros(6), jnp.zeros(6), dt=0.1,
                               w_in=jnp.ones((4, 6)))
    with pytest.raises(ValueError, match=r"one example must have shape \(T, 4\)"):
        Sequential([layer])(jnp.ones((10, 5)))
