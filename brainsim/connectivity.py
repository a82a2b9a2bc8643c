"""Key-explicit connectivity builders returning ``jax.experimental.sparse.BCOO`` matrices.

Every builder returns a ``(n_pre, n_post)`` BCOO matrix whose data are the synaptic weights (nS for
conductance receptors, pA for current receptors), its entries sorted by (pre, post). The random builders take an
explicit JAX key and are deterministic given it. Sampling runs once on the host (connectivity is built outside
the time loop) and never materialises a dense ``n_pre × n_post`` mask, so 400 000-neuron networks can be built:
the distinct targets (or sources) of each neuron are drawn by a native routine (``brainsim/_kernels/connect.cc``:
counter-based, one pass, sorted output; ~10 ns per synapse) where a C++ compiler exists, else by NumPy (slower,
and a different draw of the same distribution).
"""
from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from ._checks import check_count, check_size, numbers
from ._kernels import KERNEL_DIR, NativeLibrary

_CONNECT = NativeLibrary(KERNEL_DIR / "connect.cc", {})  # plain C entry points (ctypes), no XLA targets

# a scalar, one value per synapse, or f(rng, n) -> n values: e.g. a brainsim.distributions.Normal(...)
WeightSpec = Union[float, np.ndarray, Callable[[np.random.Generator, int], np.ndarray]]


def _key_words(key) -> np.ndarray:
    """The uint32 words of a JAX key (typed or raw), on the host."""
    if key is None:
        raise ValueError("a random connectivity builder needs an explicit key, e.g. jax.random.key(0)")
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.asarray(data, dtype=np.uint32).ravel()


def _host_rng(key) -> np.random.Generator:
    return np.random.default_rng(_key_words(key).tolist())


def _weights(weight: WeightSpec, n: int, rng: np.random.Generator | None, owner: str) -> np.ndarray:
    """The ``n`` synaptic weights ``weight`` specifies (a scalar, one per synapse, or ``f(rng, n)``), checked."""
    if callable(weight):
        weight = weight(np.random.default_rng(0) if rng is None else rng, n)
    values = np.asarray(numbers(weight, "weight", owner), dtype=np.float32)
    if values.ndim == 0:
        values = np.broadcast_to(values, (n,))
    if values.shape != (n,):
        raise ValueError(f"{owner}: weights have shape {values.shape}, expected ({n},) (one per synapse)")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{owner}: weights contain NaN or infinite values")
    return values


def _to_bcoo(pre: np.ndarray, post: np.ndarray, weights: np.ndarray, shape: tuple[int, int], *,
             unique: bool = True) -> sparse.BCOO:
    order = np.lexsort((post, pre))  # row-major order: sorted by pre, then post (stable among repeated pairs)
    indices = np.stack([pre[order], post[order]], axis=1).astype(np.int32)
    return _sorted_bcoo(indices, weights[order], shape, unique=unique)


def _sorted_bcoo(indices: np.ndarray, weights: np.ndarray, shape: tuple[int, int], *,
                 unique: bool = True) -> sparse.BCOO:
    return sparse.BCOO((jnp.asarray(weights), jnp.asarray(indices)), shape=shape,
                       indices_sorted=True, unique_indices=unique)


def _native_call(name: str, *args):
    """Call a C entry point of ``connect.cc`` with int64 scalars and array pointers; None without the library."""
    import ctypes

    lib = _CONNECT.library()
    if lib is None:
        return None
    function = getattr(lib, name)
    function.restype = ctypes.c_int64
    converted = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else ctypes.c_int64(int(a)) for a in args]
    return function(*converted)


def _native_rows(key, n_rows: int, n_cols: int, degrees: np.ndarray, forbid_diagonal: bool, *, pairs: bool,
                 replace: bool = False):
    """The native draw of ``degrees[r]`` distinct (with ``replace``: independent) sorted columns per row, row after
    row: ``(nnz, 2)`` int32 (row, column) pairs, or the ``(nnz,)`` columns alone; None without the native library."""
    if _CONNECT.library() is None or max(n_rows, n_cols) >= 2**31:
        return None
    data = _key_words(key)  # 2 words for threefry keys; other implementations' words are folded into 2
    words = np.array([np.bitwise_xor.reduce(data[0::2]), np.bitwise_xor.reduce(data[1::2])], np.int64)
    degrees = np.ascontiguousarray(degrees, dtype=np.int64)
    out = np.empty((int(degrees.sum()), 2) if pairs else (int(degrees.sum()),), np.int32)
    status = _native_call("brainsim_sample_rows", words[0], words[1], n_rows, n_cols, degrees, forbid_diagonal,
                          pairs, replace, out)
    if status != 0:
        raise ValueError(f"connectivity: a degree exceeds the {n_cols} possible partners (status {status})")
    return out


def _native_transpose(n_rows: int, n_cols: int, degrees: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Row-major (row -> cols) lists as ``(nnz, 2)`` (col, row) pairs sorted by col, then row."""
    pairs = np.empty((len(cols), 2), np.int32)
    _native_call("brainsim_transpose_rows", n_rows, n_cols, np.ascontiguousarray(degrees, dtype=np.int64), cols, pairs)
    return pairs


def _resample_duplicates(rows: np.ndarray, cols: np.ndarray, n_cols: int, rng, forbid_diagonal: bool) -> np.ndarray:
    """Resample ``cols`` until every (row, col) pair is unique (and off-diagonal if asked)."""
    cols = cols.copy()
    while True:
        keys = rows.astype(np.int64) * n_cols + cols
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        bad = np.zeros(len(cols), dtype=bool)
        bad[order[1:]] = sorted_keys[1:] == sorted_keys[:-1]
        if forbid_diagonal:
            bad |= rows == cols
        n_bad = int(bad.sum())
        if n_bad == 0:
            return cols
        cols[bad] = rng.integers(0, n_cols, size=n_bad)


def _check_square_for_autapses(n_pre: int, n_post: int, autapses: bool, owner: str) -> None:
    if not autapses and n_pre != n_post:
        raise ValueError(f"{owner}: autapses=False needs n_pre == n_post (a population onto itself)")


def fixed_probability(key, n_pre: int, n_post: int, p: float, weight: WeightSpec = 1.0, *,
                      autapses: bool = True) -> sparse.BCOO:
    """Each possible synapse exists independently with probability ``p`` (no multapses).

    Args:
        key: JAX PRNG key.
        n_pre, n_post: population sizes.
        p: connection probability in [0, 1].
        weight: scalar, per-synapse array, or ``f(rng, n) -> array`` (nS or pA).
        autapses: if False, no neuron connects to itself (requires n_pre == n_post).
    """
    owner = "fixed_probability"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{owner}: p must be in [0, 1], got {p}")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    rng = _host_rng(key)
    candidates = n_post if autapses else n_post - 1
    degrees = rng.binomial(candidates, p, size=n_pre)
    return _rows_with_degrees(key, degrees, n_pre, n_post, weight, rng, autapses, owner)


def _rows_with_degrees(key, degrees, n_pre, n_post, weight, rng, autapses, owner) -> sparse.BCOO:
    pairs = _native_rows(key, n_pre, n_post, degrees, not autapses, pairs=True)
    if pairs is not None:
        return _sorted_bcoo(pairs, _weights(weight, len(pairs), rng, owner), (n_pre, n_post))
    pre = np.repeat(np.arange(n_pre), degrees)
    if degrees.max(initial=0) > n_post // 2:  # dense rows: sample by permutation
        post = np.concatenate([
            rng.permutation(np.setdiff1d(np.arange(n_post), [i]) if not autapses else n_post)[:d]
            for i, d in enumerate(degrees)
        ]) if len(pre) else np.zeros(0, np.int64)
    else:
        post = _resample_duplicates(pre, rng.integers(0, n_post, size=len(pre)), n_post, rng, not autapses)
    return _to_bcoo(pre, post, _weights(weight, len(pre), rng, owner), (n_pre, n_post))


def distance_dependent(key, pre_positions, post_positions, probability: Callable[[np.ndarray], np.ndarray],
                       weight: WeightSpec = 1.0, *, autapses: bool = True, box=None,
                       chunk_pairs: int = 4_000_000) -> sparse.BCOO:
    """Each synapse i -> j exists independently with probability ``probability(d_ij)``, ``d_ij`` the Euclidean
    distance between the neurons' positions (NEST's and PyNN's distance-dependent connectors).

    Args:
        key: JAX PRNG key.
        pre_positions, post_positions: ``(n, dims)`` positions (any length unit, e.g. µm; ``(n,)`` for 1-D).
        probability: vectorised ``p(d)`` with values in [0, 1], e.g. ``lambda d: 0.3 * np.exp(-d / 200.0)``.
        weight: scalar, per-synapse array (in the stored order) or ``f(rng, n) -> array`` (nS or pA).
        autapses: if False, neuron i does not connect to itself (requires the same population on both sides).
        box: side lengths of a periodic box (torus; distances wrap around), or None.
        chunk_pairs: candidate pairs evaluated at once (bounds memory; the result does not depend on it).
    """
    owner = "distance_dependent"
    pre = np.asarray(numbers(pre_positions, "pre_positions", owner))
    post = np.asarray(numbers(post_positions, "post_positions", owner))
    pre, post = (x[:, None] if x.ndim == 1 else x for x in (pre, post))
    for name, x in (("pre_positions", pre), ("post_positions", post)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{owner}: {name} contain NaN or infinite values")
    if pre.ndim != 2 or post.ndim != 2 or pre.shape[1] != post.shape[1]:
        raise ValueError(f"{owner}: pre_positions and post_positions must be (n, dims) arrays with the same dims, "
                         f"got {pre.shape} and {post.shape}")
    n_pre, n_post = check_size(len(pre), owner, "n_pre"), check_size(len(post), owner, "n_post")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    period = None if box is None else np.broadcast_to(np.asarray(numbers(box, "box", owner)), (pre.shape[1],))
    rng = _host_rng(key)
    rows = max(1, int(chunk_pairs) // n_post)
    pre_idx, post_idx = [], []
    for start in range(0, n_pre, rows):
        block = pre[start:start + rows]
        delta = np.abs(block[:, None, :] - post[None, :, :])
        if period is not None:
            delta = np.minimum(delta, period - delta)
        p = np.asarray(probability(np.sqrt(np.sum(delta ** 2, axis=-1))), np.float64)
        if p.shape != delta.shape[:2] or not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"{owner}: probability(d) must return values in [0, 1] of the distances' shape")
        hit = rng.random(p.shape) < p  # draws in row-major order from one stream: the same for any chunk_pairs
        if not autapses:
            local = np.arange(len(block))
            hit[local, start + local] = False
        i, j = np.nonzero(hit)
        pre_idx.append(i + start)
        post_idx.append(j)
    pre_idx = np.concatenate(pre_idx) if pre_idx else np.zeros(0, np.int64)
    post_idx = np.concatenate(post_idx) if post_idx else np.zeros(0, np.int64)
    indices = np.stack([pre_idx, post_idx], axis=1).astype(np.int32)  # row-major already
    return _sorted_bcoo(indices, _weights(weight, len(pre_idx), rng, owner), (n_pre, n_post))


def fixed_out_degree(key, n_pre: int, n_post: int, k: int, weight: WeightSpec = 1.0, *,
                     autapses: bool = True) -> sparse.BCOO:
    """Every presynaptic neuron projects to exactly ``k`` distinct postsynaptic neurons."""
    owner = "fixed_out_degree"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    limit = n_post if autapses else n_post - 1
    if not 0 <= check_count(k, owner, "k") <= limit:
        raise ValueError(f"{owner}: k must be in [0, {limit}], got {k}")
    rng = _host_rng(key)
    return _rows_with_degrees(key, np.full(n_pre, k), n_pre, n_post, weight, rng, autapses, owner)


def fixed_in_degree(key, n_pre: int, n_post: int, k: int, weight: WeightSpec = 1.0, *,
                    autapses: bool = True) -> sparse.BCOO:
    """Every postsynaptic neuron receives exactly ``k`` synapses from distinct presynaptic neurons."""
    owner = "fixed_in_degree"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    limit = n_pre if autapses else n_pre - 1
    if not 0 <= check_count(k, owner, "k") <= limit:
        raise ValueError(f"{owner}: k must be in [0, {limit}], got {k}")
    rng = _host_rng(key)
    degrees = np.full(n_post, k)
    sources = _native_rows(key, n_post, n_pre, degrees, not autapses, pairs=False)
    if sources is not None:
        pairs = _native_transpose(n_post, n_pre, degrees, sources)
        return _sorted_bcoo(pairs, _weights(weight, len(pairs), rng, owner), (n_pre, n_post))
    transposed = _rows_with_degrees(key, degrees, n_post, n_pre, weight, rng, autapses, owner)
    post, pre = np.asarray(transposed.indices).T
    return _to_bcoo(pre, post, np.asarray(transposed.data), (n_pre, n_post))


def fixed_total_number(key, n_pre: int, n_post: int, n: int, weight: WeightSpec = 1.0, *, autapses: bool = True,
                       multapses: bool = True) -> sparse.BCOO:
    """Exactly ``n`` synapses between random (pre, post) pairs (NEST's ``fixed_total_number``).

    With ``multapses`` (the default, as NEST's) every synapse picks its pair independently and uniformly, so a pair
    can carry several synapses (each its own entry: a BCOO with repeated indices, which ``EventOperator`` delivers
    one by one); without, the ``n`` pairs are a uniform random set of distinct pairs.
    """
    owner = "fixed_total_number"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    allowed = np.full(n_pre, n_post if autapses else n_post - 1, np.int64)
    n = check_count(n, owner, "n")
    if not multapses and n > allowed.sum():
        raise ValueError(f"{owner}: n = {n} exceeds the {allowed.sum()} distinct pairs (allow multapses)")
    if allowed.sum() == 0 and n > 0:
        raise ValueError(f"{owner}: no pair is allowed (n_post = 1 without autapses)")
    rng = _host_rng(key)
    if multapses:  # synapses per presynaptic neuron: multinomial over the allowed pairs
        degrees = rng.multinomial(n, allowed / allowed.sum())
    else:  # the row counts of a uniform random set of n distinct pairs: multivariate hypergeometric
        degrees = rng.multivariate_hypergeometric(allowed, n)
    pairs = _native_rows(key, n_pre, n_post, degrees, not autapses, pairs=True, replace=multapses)
    if pairs is not None:
        return _sorted_bcoo(pairs, _weights(weight, len(pairs), rng, owner), (n_pre, n_post), unique=not multapses)
    if not multapses:
        return _rows_with_degrees(key, degrees, n_pre, n_post, weight, rng, autapses, owner)
    pre = np.repeat(np.arange(n_pre), degrees)
    post = rng.integers(0, n_post - (0 if autapses else 1), size=len(pre))
    if not autapses:
        post = post + (post >= pre)  # skip the diagonal
    order = np.lexsort((post, pre))
    indices = np.stack([pre[order], post[order]], axis=1).astype(np.int32)
    return _sorted_bcoo(indices, _weights(weight, len(pre), rng, owner), (n_pre, n_post), unique=False)


def one_to_one(n: int, weight: WeightSpec = 1.0) -> sparse.BCOO:
    """Neuron i connects to neuron i."""
    n = check_size(n, "one_to_one", "n")
    idx = np.arange(n)
    return _to_bcoo(idx, idx, _weights(weight, n, None, "one_to_one"), (n, n))


def all_to_all(n_pre: int, n_post: int, weight: WeightSpec = 1.0, *, autapses: bool = True) -> sparse.BCOO:
    """Every presynaptic neuron connects to every postsynaptic neuron."""
    owner = "all_to_all"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    _check_square_for_autapses(n_pre, n_post, autapses, owner)
    pre, post = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
    pre, post = pre.ravel(), post.ravel()
    if not autapses:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return _to_bcoo(pre, post, _weights(weight, len(pre), None, owner), (n_pre, n_post))


def from_indices(pre, post, n_pre: int, n_post: int, weight: WeightSpec = 1.0, *,
                 multapses: bool = False) -> sparse.BCOO:
    """Synapses given by index arrays ``pre[i] -> post[i]``, stored sorted by (pre, post); repeated pairs are
    rejected unless ``multapses`` (then each is its own synapse). Per-synapse delays listed with the indices go
    to ``DelayedEventOperator.from_indices``, which keeps each with its synapse."""
    owner = "from_indices"
    n_pre, n_post = check_size(n_pre, owner, "n_pre"), check_size(n_post, owner, "n_post")
    pre, post = np.asarray(pre), np.asarray(post)
    if pre.shape != post.shape or pre.ndim != 1:
        raise ValueError(f"{owner}: pre and post must be 1-D arrays of equal length, got {pre.shape} and {post.shape}")
    for name, idx in (("pre", pre), ("post", post)):
        if idx.dtype == bool or not (np.issubdtype(idx.dtype, np.integer) or np.issubdtype(idx.dtype, np.floating)):
            raise ValueError(f"{owner}: {name} must be an array of integer neuron indices, got dtype {idx.dtype}")
        if np.issubdtype(idx.dtype, np.floating) and not np.all(np.isfinite(idx) & (idx == np.round(idx))):
            raise ValueError(f"{owner}: {name} indices must be whole numbers (they would be truncated), got "
                             f"{idx[~(np.isfinite(idx) & (idx == np.round(idx)))][:3].tolist()}")
    pre, post = pre.astype(np.int64), post.astype(np.int64)
    if len(pre) and (pre.min() < 0 or pre.max() >= n_pre or post.min() < 0 or post.max() >= n_post):
        raise ValueError(f"{owner}: indices out of range for shape ({n_pre}, {n_post})")
    if not multapses and len(np.unique(pre.astype(np.int64) * n_post + post)) != len(pre):
        raise ValueError(f"{owner}: duplicate (pre, post) pairs; merge their weights first (or multapses=True)")
    return _to_bcoo(pre, post, _weights(weight, len(pre), None, owner), (n_pre, n_post), unique=not multapses)


def n_synapses(matrix) -> int:
    """Number of stored synapses of a BCOO/BCSR matrix."""
    return int(matrix.nse)
