"""Event-driven spike propagation whose cost grows with the number of spikes.

``EventOperator`` stores outgoing synapses in a padded fixed-fan-out layout (ELL): row ``i`` holds the
postsynaptic targets and weights of presynaptic neuron ``i``, padded to the maximum out-degree with the
sentinel target ``n_post`` (dropped on delivery). One step of delivery:

1. compact the spike vector into at most ``capacity`` presynaptic indices (``compact_spikes``);
2. gather those rows (``capacity × max_out_degree``) and scatter-add ``weight × spike value`` into
   the postsynaptic array.

Cost: O(capacity × max_out_degree) per batch instead of O(synapses). **No spike is ever dropped**: when
more than ``capacity`` neurons spike in one step, ``for_each_event`` simply runs more batches.

On CPU, when a C++ compiler is available, the same delivery runs as a native XLA FFI kernel
(``brainsim._kernels``): one pass over the spike vector plus O(out-degree) per spiking neuron, with no
capacity at all. ``lax.platform_dependent`` picks the kernel when lowering for CPU and the pure-JAX path
everywhere else (GPU/TPU), so the operator stays portable. Both paths share one custom VJP:
``d spikes_i = sum_k w_ik dout[t_ik]`` for every presynaptic neuron (spiking or not, as surrogate
gradients need) and ``d w_ik = spikes_i dout[t_ik]``.

Weights are either per synapse, ``(n_pre, max_out_degree)``, or homogeneous, one scalar for the whole
projection (half the memory: 4 bytes per synapse for the targets only).
Spike values are floats, so short-term plasticity scaling and surrogate gradients pass through; the
result is differentiable with respect to the weights and the spike values of spiking neurons.

The operator is built once, outside the time loop, from a ``jax.experimental.sparse`` BCOO/BCSR matrix
(``EventOperator.from_sparse``), which remains the reference form (``to_bcoo``).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from . import _kernels
from ._checks import check_size
from ._types import Array
import ctypes
import sys


# Native binding: the event-delivery, spike-packing and spike-decoding kernels (brainsim/_kernels/event_deliver.cc).
_TARGET = "brainsim_event_deliver"
_PACK_TARGET = "brainsim_pack_spikes"
_EVENTS = _kernels.NativeLibrary(_kernels.KERNEL_DIR / "event_deliver.cc",
                                 {_TARGET: "BrainsimEventDeliver", _PACK_TARGET: "BrainsimPackSpikes"})


def native_available() -> bool:
    """Whether the native event kernels are compiled and registered (compiles them on the first call)."""
    return _EVENTS.available()


def why_unavailable() -> str:
    return _EVENTS.why_unavailable()


def decode_spikes_native(packed):
    """``(rows, neurons)`` of the set bits of a ``numpy.packbits`` raster ``(n_rows, n_bytes)`` (host numpy),
    through the compiled library; None if it is not available or the host is big-endian."""
    lib = _EVENTS.library()
    if sys.byteorder != "little" or lib is None:
        return None
    decode = lib.brainsim_decode_spikes
    decode.restype = ctypes.c_int64
    n_rows, n_bytes = packed.shape
    pad = (-n_bytes) % 8
    if pad == 0:
        words = np.ascontiguousarray(packed).view(np.uint64)
    else:
        words = np.zeros((n_rows, (n_bytes + pad) // 8), np.uint64)
        words.view(np.uint8)[:, :n_bytes] = packed
    ptr = words.ctypes.data_as(ctypes.c_void_p)
    count = decode(ptr, ctypes.c_int64(n_rows), ctypes.c_int64(words.shape[1]), None, None)
    steps, neurons = np.empty(count, np.int64), np.empty(count, np.int32)
    decode(ptr, ctypes.c_int64(n_rows), ctypes.c_int64(words.shape[1]), steps.ctypes.data_as(ctypes.c_void_p),
           neurons.ctypes.data_as(ctypes.c_void_p))
    return steps, neurons


def event_deliver_native(g, spikes, targets, weights, row_offset: int = 0):
    """``g + spikes[row_offset:row_offset + n_pre] @ W`` through the native kernel, in place on ``g``.

    CPU only; call ``native_available()`` first.
    """
    return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(g.shape, g.dtype), input_output_aliases={0: 0},
                            vmap_method="sequential")(g, spikes, targets, weights, row_offset=np.int64(row_offset))


def pack_spikes_native(spikes):
    """``numpy.packbits(spikes != 0)`` of a float32 spike vector through the native kernel (CPU only)."""
    n_bytes = -(-spikes.shape[-1] // 8)
    return jax.ffi.ffi_call(_PACK_TARGET, jax.ShapeDtypeStruct((n_bytes,), jnp.uint8),
                            vmap_method="sequential")(spikes)




def compact(active: Array, capacity: int, block: int = 16) -> Array:
    """Indices of the first ``capacity`` True entries of boolean ``active`` (padded with ``len(active)``).

    Two-level compaction: find the first ``capacity`` blocks of ``block`` entries holding any True entry,
    then compact within them. Cost O(n / block + capacity × block) instead of the O(n) prefix sum of
    ``jnp.nonzero`` over the whole vector, which dominates on CPU (measured: ~90 µs for n = 8 000 vs
    ~12 µs). Entries beyond the first ``capacity`` are not returned (``for_each_event`` loops).
    """
    n = active.shape[0]
    capacity = int(min(capacity, n))
    n_blocks = -(-n // block)
    if n_blocks <= capacity or n <= 4 * block:
        (idx,) = jnp.nonzero(active, size=capacity, fill_value=n)
        return idx.astype(jnp.int32)
    padded = jnp.pad(active, (0, n_blocks * block - n)).reshape(n_blocks, block)
    (blocks,) = jnp.nonzero(jnp.any(padded, axis=1), size=capacity, fill_value=n_blocks)
    candidates = jnp.take(padded, blocks, axis=0, mode="fill", fill_value=False).reshape(-1)
    (pos,) = jnp.nonzero(candidates, size=capacity, fill_value=capacity * block)
    index = (blocks[:, None] * block + jnp.arange(block, dtype=blocks.dtype)).reshape(-1)
    return jnp.take(index, pos, mode="fill", fill_value=n).astype(jnp.int32)


def for_each_event(events: Array, capacity: int, body: Callable, carry):
    """Apply ``carry = body(carry, idx)`` to the indices of nonzero ``events`` in batches of ``capacity``.

    ``idx`` has shape ``(capacity,)`` and is padded with ``len(events)``; ``body`` must ignore padded
    entries (use ``mode="fill"`` gathers and ``mode="drop"`` scatters). Every event is visited exactly
    once: more active entries than ``capacity`` just cost more batches, none cost none.
    """
    n = events.shape[0]
    capacity = int(min(capacity, n))

    def step(state):
        carry, remaining = state
        idx = compact(remaining, capacity)
        return body(carry, idx), remaining.at[idx].set(False, mode="drop")

    carry, _ = jax.lax.while_loop(lambda state: jnp.any(state[1]), step, (carry, events != 0))
    return carry


def compact_spikes(spikes: Array, capacity: int) -> tuple[Array, Array]:
    """Indices of the nonzero entries of ``spikes``, padded with ``len(spikes)``, and their count.

    Only the first ``capacity`` indices are returned; callers must check ``count <= capacity``.
    """
    return compact(spikes != 0, capacity), jnp.count_nonzero(spikes)


def default_capacity(n_pre: int) -> int:
    """Spike-list batch size: ~1.5% of neurons firing in one step (≥ 32); more spikes run more batches."""
    return int(min(n_pre, max(32, -(-n_pre * 3 // 200))))


def _deliver_rows(targets, weights, rows, values, n_post: int) -> Array:
    # rows: (r,) presynaptic indices (n_pre = padding); values: (r,) spike values
    rows_targets = jnp.take(targets, rows, axis=0, mode="fill", fill_value=n_post)
    if weights.ndim == 0:
        contributions = jnp.broadcast_to((values * weights)[:, None], rows_targets.shape)
    else:
        contributions = jnp.take(weights, rows, axis=0, mode="fill", fill_value=0) * values[:, None]
    out = jnp.zeros((n_post,), contributions.dtype)
    return out.at[rows_targets].add(contributions, mode="drop")


def deliver_jax(g, spikes, targets, weights, row_offset: int = 0, capacity: int | None = None) -> Array:
    """Pure-JAX ``g + spikes[row_offset:row_offset + n_pre] @ W`` for ELL synapses, batch by batch of spikes.

    The portable path of ``deliver`` (and the reference the native kernel is tested against).
    """
    n_pre, n_post = targets.shape[0], g.shape[0]
    spikes = jax.lax.dynamic_slice_in_dim(spikes, row_offset, n_pre) if spikes.shape[0] != n_pre else spikes
    capacity = default_capacity(n_pre) if capacity is None else capacity
    if capacity >= n_pre:
        return g + _deliver_rows(targets, weights, jnp.arange(n_pre), spikes, n_post)

    def batch(acc, rows):
        return acc + _deliver_rows(targets, weights, rows, jnp.take(spikes, rows, mode="fill", fill_value=0), n_post)

    return for_each_event(spikes, capacity, batch, g)


def _deliver_forward(g, spikes, targets, weights, row_offset: int, capacity: int, native: bool):
    pure = functools.partial(deliver_jax, row_offset=row_offset, capacity=capacity)
    dtypes_ok = g.dtype == spikes.dtype == weights.dtype == jnp.float32
    kernel = functools.partial(event_deliver_native, row_offset=row_offset)
    return _kernels.cpu_or_pure(kernel, pure, g, spikes, targets, weights,
                                usable=native and dtypes_ok and native_available())


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def deliver(g, spikes, targets, weights, row_offset: int = 0, capacity: int = 32, native: bool = True):
    """``g + spikes[row_offset:row_offset + n_pre] @ W`` for ELL-layout synapses (see module docstring).

    Differentiable in ``g``, ``spikes`` and ``weights``. On CPU with the native kernel, ``g`` is updated
    in place.
    """
    return _deliver_forward(g, spikes, targets, weights, row_offset, capacity, native)


def _deliver_fwd(g, spikes, targets, weights, row_offset, capacity, native):
    out = _deliver_forward(g, spikes, targets, weights, row_offset, capacity, native)
    return out, (spikes, targets, weights)


def row_cotangents(d_at, rows, weights):
    """Backward pass of delivering ``rows[i] * w[i, k]`` to each synapse's target.

    ``d_at`` ``(n_pre, K)`` is the cotangent at each synapse's target (0 at padding), ``rows`` ``(n_pre,)``
    the presynaptic values, ``weights`` one scalar or ``(n_pre, K)``. Returns the cotangents of ``rows``
    and of ``weights``. Shared by ``deliver``, the delay ring's ``schedule`` and the fused STDP delivery.
    """
    if weights.ndim == 0:
        per_row = d_at.sum(axis=1)
        return weights * per_row, jnp.sum(rows * per_row)
    return jnp.sum(weights * d_at, axis=1), rows[:, None] * d_at


def _deliver_bwd(row_offset, capacity, native, residuals, dout):
    spikes, targets, weights = residuals
    n_pre = targets.shape[0]
    rows = jax.lax.dynamic_slice_in_dim(spikes, row_offset, n_pre) if spikes.shape[0] != n_pre else spikes
    dout_at_targets = jnp.take(dout, targets, mode="fill", fill_value=0)  # (n_pre, K); padding -> 0
    d_rows, d_weights = row_cotangents(dout_at_targets, rows, weights)
    if spikes.shape[0] != n_pre:
        d_spikes = jax.lax.dynamic_update_slice_in_dim(jnp.zeros_like(spikes), d_rows.astype(spikes.dtype),
                                                       row_offset, 0)
    else:
        d_spikes = d_rows
    d_targets = np.zeros(targets.shape, dtype=jax.dtypes.float0)
    return dout, d_spikes.astype(spikes.dtype), d_targets, d_weights.astype(weights.dtype)


deliver.defvjp(_deliver_fwd, _deliver_bwd)


def pack_spikes(spikes: Array) -> Array:
    """``packbits(spikes != 0)``: a spike vector as ``ceil(n / 8)`` bytes, most significant bit first.

    On CPU with the native kernel the spike vector is read once (and shared with event delivery rather
    than recomputed); elsewhere it is ``jnp.packbits``.
    """
    return _kernels.cpu_or_pure(pack_spikes_native, lambda s: jnp.packbits(s != 0), spikes,
                                usable=spikes.dtype == jnp.float32 and native_available())


class EllLayout(NamedTuple):
    """Where each stored entry of a sparse ``(n_pre, n_post)`` matrix goes in the ELL layout.

    Entry ``e`` (in row-major order) becomes slot ``slot[e]`` of row ``pre[e]``; rows are padded to
    ``width`` (the maximum out-degree).
    """

    pre: np.ndarray
    post: np.ndarray
    data: np.ndarray
    slot: np.ndarray
    order: np.ndarray  # positions of the entries in the matrix's own data array
    n_pre: int
    n_post: int
    width: int

    def scatter(self, values_in_matrix_order: np.ndarray, dtype) -> np.ndarray:
        """Lay per-entry values (aligned with the matrix's data) out as an ``(n_pre, width)`` array."""
        out = np.zeros((self.n_pre, self.width), dtype=dtype)
        out[self.pre, self.slot] = np.asarray(values_in_matrix_order)[self.order]
        return out


def ell_layout(matrix) -> EllLayout:
    """ELL placement of a ``jax.experimental.sparse`` BCOO/BCSR matrix (host-side, once)."""
    if isinstance(matrix, sparse.BCSR):
        matrix = matrix.to_bcoo()
    if not isinstance(matrix, sparse.BCOO):
        raise TypeError(f"EventOperator.from_sparse expects a jax.experimental.sparse BCOO/BCSR matrix, "
                        f"got {type(matrix).__name__}")
    if matrix.n_batch or matrix.n_dense or matrix.indices.shape[-1] != 2:
        raise ValueError("EventOperator.from_sparse: expected an unbatched 2-D sparse matrix")
    n_pre, n_post = matrix.shape
    indices = np.asarray(matrix.indices)
    valid = np.nonzero(indices[:, 0] < n_pre)[0]  # BCOO may carry padding entries with out-of-range indices
    rows = indices[valid, 0]
    # already in row order (the builders of brainsim.connectivity sort their entries): no sort needed
    in_order = len(rows) < 2 or bool(np.all(rows[1:] >= rows[:-1]))
    order = valid if in_order else valid[np.argsort(rows, kind="stable")]
    pre, post, data = indices[order, 0], indices[order, 1], np.asarray(matrix.data)[order]
    degree = np.bincount(pre, minlength=n_pre)
    slot = np.arange(len(pre)) - np.repeat(np.cumsum(degree) - degree, degree)
    return EllLayout(pre, post, data, slot, order, int(n_pre), int(n_post), max(int(degree.max(initial=0)), 1))


def _sorted_rows(matrix):
    """``(pre, post, data)`` host arrays of a BCOO whose stored entries are all valid and in row order, else None."""
    if not isinstance(matrix, sparse.BCOO) or matrix.n_batch or matrix.n_dense or matrix.indices.shape[-1] != 2:
        return None
    indices = np.asarray(matrix.indices)
    pre = indices[:, 0]
    if len(pre) and (pre[0] < 0 or pre[-1] >= matrix.shape[0]):  # (padding entries sort last, out of range)
        return None
    # a matrix that says its indices are sorted (as the builders of brainsim.connectivity do) is taken at its word
    if not matrix.indices_sorted and len(pre) and not np.all(pre[1:] >= pre[:-1]):
        return None
    return np.ascontiguousarray(pre), indices[:, 1], np.asarray(matrix.data)


class EventOperator(eqx.Module):
    """Outgoing synapses of one projection in padded fixed-fan-out (ELL) layout.

    Attributes:
        weights: ``(n_pre, max_out_degree)`` synaptic weights (nS or pA), trainable, zero in padding;
            or a scalar for a homogeneous projection.
        targets: ``(n_pre, max_out_degree)`` int32 postsynaptic indices; ``n_post`` marks padding,
            which always comes after a row's real targets.
        native: use the native CPU kernel when it is available (static).
    """

    weights: Array
    targets: Array
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)
    n_synapses: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)
    native: bool = eqx.field(static=True)

    def __init__(self, weights, targets, n_post: int, *, n_synapses: int | None = None,
                 capacity: int | None = None, native: bool = True):
        targets = jnp.asarray(targets, dtype=jnp.int32)
        weights = jnp.asarray(weights, dtype=jnp.result_type(float))
        if targets.ndim != 2 or (weights.ndim != 0 and weights.shape != targets.shape):
            raise ValueError(f"EventOperator: weights {weights.shape} must be a scalar or match targets "
                             f"{targets.shape} (n_pre, max_out_degree)")
        self.weights, self.targets = weights, targets
        self.n_pre, self.n_post = int(targets.shape[0]), int(n_post)
        self.n_synapses = int(np.sum(np.asarray(targets) < n_post)) if n_synapses is None else int(n_synapses)
        cap = default_capacity(self.n_pre) if capacity is None else check_size(capacity, "EventOperator", "capacity")
        self.capacity = min(cap, self.n_pre)
        self.native = bool(native)

    @classmethod
    def from_sparse(cls, matrix, *, capacity: int | None = None, homogeneous: bool = False,
                    native: bool = True) -> "EventOperator":
        """Convert a ``(n_pre, n_post)`` BCOO or BCSR weight matrix (host-side, once).

        ``homogeneous=True`` stores one scalar weight (all stored weights must be equal).
        """
        sorted_rows = _sorted_rows(matrix)
        if sorted_rows is not None:  # entries in row order (brainsim.connectivity's builders): fill row by row
            pre, post, data = sorted_rows
            n_pre, n_post = matrix.shape
            degree = np.bincount(pre, minlength=n_pre)
            in_row = np.arange(max(int(degree.max(initial=0)), 1))[None, :] < degree[:, None]
            targets = np.full(in_row.shape, n_post, dtype=np.int32)
            targets[in_row] = post  # boolean assignment runs in row-major order: the entries' order
        else:
            layout = ell_layout(matrix)
            n_post, data, in_row = layout.n_post, layout.data, (layout.pre, layout.slot)
            targets = np.full((layout.n_pre, layout.width), n_post, dtype=np.int32)
            targets[in_row] = layout.post
        if homogeneous:
            if len(data) and not (data.min() == data[0] == data.max()):
                raise ValueError("EventOperator.from_sparse: homogeneous=True needs all weights equal")
            weights = np.float32(data[0] if len(data) else 0.0)
        else:
            weights = np.zeros(targets.shape, dtype=np.float32)
            weights[in_row] = data
        return cls(weights, targets, n_post, n_synapses=len(data), capacity=capacity, native=native)

    @classmethod
    def from_dense(cls, matrix, *, capacity: int | None = None, native: bool = True) -> "EventOperator":
        """Convert a dense ``(n_pre, n_post)`` weight matrix; zero entries are not synapses."""
        return cls.from_sparse(sparse.BCOO.fromdense(jnp.asarray(matrix)), capacity=capacity, native=native)

    @property
    def max_out_degree(self) -> int:
        return int(self.targets.shape[1])

    @property
    def homogeneous(self) -> bool:
        return self.weights.ndim == 0

    def _synapse_weights(self) -> Array:
        return jnp.where(self.targets < self.n_post, jnp.broadcast_to(self.weights, self.targets.shape), 0.0)

    def to_bcoo(self) -> sparse.BCOO:
        """Reference form: ``(n_pre, n_post)`` BCOO with the current weights."""
        targets = np.asarray(self.targets)
        pre, slot = np.nonzero(targets < self.n_post)
        indices = np.stack([pre, targets[pre, slot]], axis=1).astype(np.int32)
        return sparse.BCOO((self._synapse_weights()[pre, slot], jnp.asarray(indices)),
                           shape=(self.n_pre, self.n_post))

    def to_dense(self) -> Array:
        """Dense ``(n_pre, n_post)`` weight matrix (differentiable in the weights)."""
        dense = jnp.zeros((self.n_pre, self.n_post + 1), self.weights.dtype)
        rows = jnp.broadcast_to(jnp.arange(self.n_pre)[:, None], self.targets.shape)
        return dense.at[rows, self.targets].add(self._synapse_weights())[:, : self.n_post]

    def __call__(self, spikes: Array) -> Array:
        """Postsynaptic input ``spikes @ W`` (shape ``(n_post,)``) for spike values ``spikes`` ``(n_pre,)``."""
        if spikes.shape != (self.n_pre,):
            raise ValueError(f"EventOperator: spikes have shape {spikes.shape}, expected ({self.n_pre},)")
        return self.accumulate(jnp.zeros((self.n_post,), self.weights.dtype), spikes)

    def accumulate(self, g: Array, spikes: Array, row_offset: int = 0) -> Array:
        """``g + spikes[row_offset:row_offset + n_pre] @ W``: add this projection's input to ``g`` (n_post,).

        ``row_offset`` lets a projection read its presynaptic rows straight out of a larger population's
        spike vector (a subgroup) without slicing it first.
        """
        if g.shape != (self.n_post,):
            raise ValueError(f"EventOperator: g has shape {g.shape}, expected ({self.n_post},)")
        if spikes.ndim != 1 or not 0 <= row_offset <= spikes.shape[0] - self.n_pre:
            raise ValueError(f"EventOperator: spikes of shape {spikes.shape} have no rows "
                             f"{row_offset}..{row_offset + self.n_pre}")
        return deliver(g, spikes.astype(g.dtype), self.targets, self.weights.astype(g.dtype), int(row_offset),
                       self.capacity, self.native)
