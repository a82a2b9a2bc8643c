"""``x @ W`` for inputs that are mostly zero (spike trains), with exact gradients.

A dense projection fed with spikes multiplies mostly zeros: at 2% input density, 98% of the
multiply-adds of ``x @ W`` and of its weight gradient ``x.T @ g`` are wasted. ``event_matmul`` computes
the same product visiting only the nonzero entries of ``x``:

    y[m, :]  = sum_{k: x[m,k] != 0} x[m, k] W[k, :]          forward,          O(nnz(x) N)
    dW[k, :] = sum_{m: x[m,k] != 0} x[m, k] g[m, :]          weight gradient,  O(nnz(x) N)
    dx       = g @ W.T                                       input gradient (dense; only if x needs it)

It is a JAX primitive with its own JVP, transpose and batching rules, so ``jit``, ``grad``, ``vmap``
(in either order) and higher-order derivatives work. Under ``vmap`` over examples with a shared
``W`` the examples are stacked into one product, so ``grad`` of a batch-mean loss computes ONE weight
gradient for the whole batch (no per-example gradients). On CPU with a C++ compiler the products run
as native kernels (``brainsim/_kernels/event_matmul.cc``), which visit only the nonzero entries when at
most ``max_density`` of a sample of ``x`` is nonzero and compute the dense product otherwise (decided at
run time inside the kernel: a ``lax.cond`` around it cost more than the sparse product itself). On other
platforms, for non-float32 dtypes, or with ``BRAINSIM_NATIVE=0`` it is XLA's dense product.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from . import _kernels
from ._primitives import register, zero_tangent
import numpy as np


# Native binding: the event matmul kernels (brainsim/_kernels/event_matmul.cc).
_MATMUL_TARGET = "brainsim_event_matmul"
_MATMUL_T_TARGET = "brainsim_event_matmul_t"
_MATMUL = _kernels.NativeLibrary(_kernels.KERNEL_DIR / "event_matmul.cc",
                                 {_MATMUL_TARGET: "BrainsimEventMatmul", _MATMUL_T_TARGET: "BrainsimEventMatmulT"})


def event_matmul_available() -> bool:
    """Whether the native event-matmul kernels are compiled and registered (compiles them on first call)."""
    return _MATMUL.available()


def event_matmul_native(x, w, max_density: float = 1.0):
    """``x @ w`` for float32 ``x (M, K)``, ``w (K, N)``, visiting only the nonzero entries of x (CPU only);
    a dense product if a sample of x is denser than ``max_density``."""
    return jax.ffi.ffi_call(_MATMUL_TARGET, jax.ShapeDtypeStruct((x.shape[0], w.shape[1]), jnp.float32),
                            vmap_method="sequential")(x, w, max_density=np.float32(max_density))


def event_matmul_t_native(x, g, max_density: float = 1.0):
    """``x.T @ g`` for float32 ``x (M, K)``, ``g (M, N)``, visiting only the nonzero entries of x (CPU only);
    a dense product if a sample of x is denser than ``max_density``."""
    return jax.ffi.ffi_call(_MATMUL_T_TARGET, jax.ShapeDtypeStruct((x.shape[1], g.shape[1]), jnp.float32),
                            vmap_method="sequential")(x, g, max_density=np.float32(max_density))



DEFAULT_MAX_DENSITY = 0.25

event_matmul_p = Primitive("brainsim_event_matmul")  # (x (M, K), w (K, N)) -> x @ w      (M, N)
event_matmul_t_p = Primitive("brainsim_event_matmul_t")  # (x (M, K), g (M, N)) -> x.T @ g  (K, N)


def event_matmul(x, w, *, max_density: float = DEFAULT_MAX_DENSITY):
    """``x @ w`` for ``x (..., K)`` and ``w (K, N)``, skipping the zero entries of ``x``.

    Args:
        x: input, e.g. spikes ``(T, K)`` or ``(K,)``; any float values (zeros are skipped, others used).
        w: weights ``(K, N)``.
        max_density: the native kernel is used when at most this fraction of ``x`` is nonzero;
            denser inputs use the dense product (same result).
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"event_matmul: weights must be 2-D (K, N), got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"event_matmul: input has shape {x.shape}, expected (..., {w.shape[0]})")
    if not 0.0 <= max_density <= 1.0:
        raise ValueError(f"event_matmul: max_density must lie in [0, 1], got {max_density}")
    dtype = jnp.result_type(x, w)
    lead = x.shape[:-1]
    y = event_matmul_p.bind(x.reshape((-1, w.shape[0])).astype(dtype), w.astype(dtype),
                            max_density=float(max_density))
    return y.reshape(lead + (w.shape[1],))


# --- evaluation: native kernel on sparse float32 CPU input, XLA's dense product otherwise -----------------

def _use_native(*arrays) -> bool:
    return (all(a.dtype == jnp.float32 for a in arrays) and all(a.size > 0 for a in arrays)
            and event_matmul_available())


def _choose(max_density, native_fn, dense_fn, *args):
    """The native kernel on CPU (it estimates the density of x on a sample and computes the dense product
    itself when x is denser than ``max_density``), XLA's dense product elsewhere."""
    return _kernels.cpu_or_pure(functools.partial(native_fn, max_density=max_density), dense_fn, *args,
                                usable=_use_native(*args))


def _matmul_impl(x, w, *, max_density):
    return _choose(max_density, event_matmul_native, lambda a, b: jnp.matmul(a, b), x, w)


def _matmul_t_impl(x, g, *, max_density):
    return _choose(max_density, event_matmul_t_native, lambda a, b: jnp.matmul(a.T, b), x, g)


for _p, _impl in ((event_matmul_p, _matmul_impl), (event_matmul_t_p, _matmul_t_impl)):
    register(_p, _impl, static_argnames=("max_density",))


@event_matmul_p.def_abstract_eval
def _matmul_abstract(x, w, *, max_density):
    return jax.core.ShapedArray((x.shape[0], w.shape[1]), jnp.result_type(x, w))


@event_matmul_t_p.def_abstract_eval
def _matmul_t_abstract(x, g, *, max_density):
    return jax.core.ShapedArray((x.shape[1], g.shape[1]), jnp.result_type(x, g))


# --- differentiation: both products are linear in their second argument ---------------------------------

def _is_zero(t) -> bool:
    return type(t) is ad.Zero


def _sum_tangents(y, *parts):
    parts = [p for p in parts if p is not None]
    if not parts:
        return zero_tangent(y)
    return functools.reduce(jnp.add, parts)


def _matmul_jvp(primals, tangents, *, max_density):
    x, w = primals
    dx, dw = tangents
    y = event_matmul_p.bind(x, w, max_density=max_density)
    t_w = None if _is_zero(dw) else event_matmul_p.bind(x, dw, max_density=max_density)
    t_x = None if _is_zero(dx) else jnp.matmul(dx, w)  # the tangent of x is in general dense
    return y, _sum_tangents(y, t_w, t_x)


def _matmul_t_jvp(primals, tangents, *, max_density):
    x, g = primals
    dx, dg = tangents
    y = event_matmul_t_p.bind(x, g, max_density=max_density)
    t_g = None if _is_zero(dg) else event_matmul_t_p.bind(x, dg, max_density=max_density)
    t_x = None if _is_zero(dx) else jnp.matmul(dx.T, g)
    return y, _sum_tangents(y, t_g, t_x)


def _matmul_transpose(ct, x, w, *, max_density):
    # y = x @ w. Linear in w (x a constant): ct_w = x.T @ ct. Linear in x (w a constant): ct_x = ct @ w.T.
    if ad.is_undefined_primal(x) and ad.is_undefined_primal(w):
        raise ValueError("event_matmul: the product is bilinear, not linear, in (x, w)")
    if ad.is_undefined_primal(w):
        ct_w = ad.Zero(w.aval) if _is_zero(ct) else event_matmul_t_p.bind(x, ct, max_density=max_density)
        return None, ct_w
    ct_x = ad.Zero(x.aval) if _is_zero(ct) else jnp.matmul(ct, w.T)
    return ct_x, None


def _matmul_t_transpose(ct, x, g, *, max_density):
    # y = x.T @ g. Linear in g: ct_g = x @ ct. Linear in x: ct_x = g @ ct.T.
    if ad.is_undefined_primal(x) and ad.is_undefined_primal(g):
        raise ValueError("event_matmul_t: the product is bilinear, not linear, in (x, g)")
    if ad.is_undefined_primal(g):
        ct_g = ad.Zero(g.aval) if _is_zero(ct) else event_matmul_p.bind(x, ct, max_density=max_density)
        return None, ct_g
    ct_x = ad.Zero(x.aval) if _is_zero(ct) else jnp.matmul(g, ct.T)
    return ct_x, None


ad.primitive_jvps[event_matmul_p] = _matmul_jvp
ad.primitive_jvps[event_matmul_t_p] = _matmul_t_jvp
ad.primitive_transposes[event_matmul_p] = _matmul_transpose
ad.primitive_transposes[event_matmul_t_p] = _matmul_t_transpose


# --- batching -------------------------------------------------------------------------------------------

def _front(a, axis):
    return a if axis is None else jnp.moveaxis(a, axis, 0)


def _matmul_batch(args, dims, *, max_density):
    (x, w), (bx, bw) = args, dims
    x, w = _front(x, bx), _front(w, bw)
    if bw is None:  # shared weights: all examples' rows in one product
        b, m, k = x.shape
        y = event_matmul_p.bind(x.reshape((b * m, k)), w, max_density=max_density)
        return y.reshape((b, m, w.shape[1])), 0
    if bx is None:  # one input, per-example weights: stack the weights along N
        b, k, n = w.shape
        y = event_matmul_p.bind(x, jnp.moveaxis(w, 0, 1).reshape((k, b * n)), max_density=max_density)
        return jnp.moveaxis(y.reshape((x.shape[0], b, n)), 1, 0), 0
    return jnp.einsum("bmk,bkn->bmn", x, w), 0  # both per example: dense batched product


def _matmul_t_batch(args, dims, *, max_density):
    (x, g), (bx, bg) = args, dims
    x, g = _front(x, bx), _front(g, bg)
    if bx is None:  # one input, per-example cotangents: stack them along N
        b, m, n = g.shape
        y = event_matmul_t_p.bind(x, jnp.moveaxis(g, 0, 1).reshape((m, b * n)), max_density=max_density)
        return jnp.moveaxis(y.reshape((x.shape[1], b, n)), 1, 0), 0
    if bg is None:
        return jnp.einsum("bmk,mn->bkn", x, g), 0
    return jnp.einsum("bmk,bmn->bkn", x, g), 0  # per-example weight gradients (e.g. vmap of grad)


batching.primitive_batchers[event_matmul_p] = _matmul_batch
batching.primitive_batchers[event_matmul_t_p] = _matmul_t_batch
