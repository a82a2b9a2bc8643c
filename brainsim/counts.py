"""Counter-based random counts: ``Binomial(n, p)`` per element, cheap enough to draw every step for every neuron.

``binomial(key, n, p, size)`` gives element i the uniform ``u_i`` = first word of Threefry-2x32 (20 rounds, the
generator behind ``jax.random``) of the counter ``(i, stream)`` under the words of ``key``, rounded to 24 bits,
and turns it into a count by inversion of the binomial distribution function, walking from the mode. So:

- the draws are exact in distribution (up to the 24-bit uniform, i.e. tail probabilities below 6e-8);
- a draw depends only on (key, element, stream): reproducible, and independent of how a run is chunked (the
  network gives each step its own key) or of the other elements;
- the cost is one hash per element plus O(1 + |X - mode|) multiply-adds; for the mean of a few arrivals per step
  of a background drive that is a few nanoseconds per neuron, against ~100 for ``jax.random.binomial``.

On CPU a native kernel (``brainsim/_kernels/counts.cc``) computes them in double precision; elsewhere, or without
a compiler, the same walk runs in JAX in float32 for means up to ``CENTERED_ABOVE`` (the two give the same counts
except where ``u`` falls within rounding of a step of the distribution function, about once in 10^6 draws), and
``jax.random.binomial`` draws the larger means (the same distribution, other numbers: float32 cannot give the
distribution function at the mode of a large binomial accurately enough). Counts carry no gradient.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _kernels
from ._kernels import KERNEL_DIR, NativeLibrary

_TARGET = "brainsim_binomial_counts"
_COUNTS = NativeLibrary(KERNEL_DIR / "counts.cc", {_TARGET: "BrainsimBinomialCounts"})

CENTERED_ABOVE = 30.0  # means above this start the native walk at the mode (and the pure path differs)
NEGLIGIBLE = 1e-10  # beyond the mean, a walk stops where probabilities fall below this (far beyond the 24-bit uniform)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def native_available() -> bool:
    """Whether the native counts kernel is compiled and registered (compiles it on the first call)."""
    return _COUNTS.available()


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32, 20 rounds (uint32 arrays, broadcast): the pair of output words."""
    k0, k1, x0, x1 = (jnp.asarray(a, jnp.uint32) for a in (k0, k1, x0, x1))
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + jnp.uint32(group + 1)
    return x0, x1


def key_words(key) -> jax.Array:
    """Two uint32 words drawn from ``key`` (any PRNG implementation): the key of the counter-based hash."""
    return jax.random.bits(key, (2,), jnp.uint32)


def uniforms(words, size: int, stream: int = 0) -> jax.Array:
    """The ``size`` float32 uniforms in (0, 1) of counters ``(i, stream)`` under ``words`` (24-bit resolution)."""
    x0, _ = threefry2x32(words[0], words[1], jnp.arange(size, dtype=jnp.uint32), jnp.uint32(stream))
    return ((x0 >> jnp.uint32(8)).astype(jnp.float32) + 0.5) * (1.0 / 16777216.0)


def _walk_from_zero(u, n, p):
    """The inversion of ``counts.cc`` for means <= ``CENTERED_ABOVE``, in JAX, every element at once: the count is
    the number of k (walked up from 0) with ``u > P(X <= k)``."""
    odds = p / (1.0 - p)
    p0 = jnp.exp(n * jnp.log1p(-p))
    mean = n * p

    def active(carry):
        k, pk, c = carry
        return (u > c) & (k < n) & ((pk >= NEGLIGIBLE) | (k < mean))

    def body(carry):
        k, pk, c = carry
        go = active(carry)
        pk_next = pk * ((n - k) / (k + 1.0) * odds)
        return jnp.where(go, k + 1.0, k), jnp.where(go, pk_next, pk), jnp.where(go, c + pk_next, c)

    k, _, _ = jax.lax.while_loop(lambda carry: jnp.any(active(carry)), body, (jnp.zeros_like(u), p0, p0))
    return jnp.where(p > 0, jnp.where(p < 1, k, n), 0.0)


def _pure_counts(key, words, n, p, size: int, stream: int):
    """The pure-JAX path: the walk for means <= ``CENTERED_ABOVE``, ``jax.random.binomial`` above (float32 cannot
    give P(X <= mode) of a large binomial accurately enough for the walk from the mode) and where P(X = 0) is below
    float32's range."""
    n, p = (jnp.broadcast_to(a, (size,)) for a in (n, p))
    underflows = n * jnp.log1p(-jnp.minimum(p, 1.0 - 1e-7)) < -80.0  # P(X = 0) = (1 - p)^n below float32's range
    large = (n * p > CENTERED_ABOVE) | (underflows & (p < 1.0))
    p_small = jnp.where(large, 0.0, p)  # (large elements walk nowhere)
    counts = _walk_from_zero(uniforms(words, size, stream), n, p_small)
    drawn = jax.lax.cond(jnp.any(large), lambda: jax.random.binomial(jax.random.fold_in(key, stream), n, p),
                         lambda: jnp.zeros((size,), jnp.float32))
    return jnp.where(large, drawn.astype(jnp.float32), counts)


def _counts_native(words, n, p, *, stream: int, size: int):
    out = jax.ShapeDtypeStruct((size,), jnp.float32)
    return jax.ffi.ffi_call(_TARGET, out, vmap_method="sequential")(words, n, p, stream=np.int64(stream))


def binomial(key, n, p, size: int, *, stream: int = 0) -> jax.Array:
    """``size`` independent counts ``Binomial(n, p)`` (float32), from ``key``; ``n`` (whole numbers >= 0) and ``p``
    (in [0, 1]) are scalars or ``(size,)`` arrays. ``stream`` selects an independent set of draws for the same key.
    No gradient flows to ``n`` or ``p``."""
    n = jax.lax.stop_gradient(jnp.asarray(n, jnp.float32))
    p = jax.lax.stop_gradient(jnp.clip(jnp.asarray(p, jnp.float32), 0.0, 1.0))
    if n.ndim > 1 or p.ndim > 1 or (n.ndim == 1 and n.shape[0] != size) or (p.ndim == 1 and p.shape[0] != size):
        raise ValueError(f"binomial: n {n.shape} and p {p.shape} must be scalars or ({size},) arrays")
    n, p = (a.reshape(-1) for a in (n, p))  # (1,) or (size,) each: the kernel reads either, the pure path broadcasts

    def native(words, n, p):
        return _counts_native(words, n, p, stream=stream, size=size)

    def pure(words, n, p):
        return _pure_counts(key, words, n, p, size, stream)

    return _kernels.cpu_or_pure(native, pure, key_words(key), n, p, usable=native_available())
