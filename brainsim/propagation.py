"""Event-driven spike propagation whose cost grows with the number of spikes.

``EventOperator`` stores outgoing synapses in a padded fixed-fan-out layout (ELL): row ``i`` holds the
postsynaptic targets and weights of presynaptic neuron ``i``, padded to the maximum out-degree with the
sentinel target ``n_post`` (dropped on delivery). One step of delivery:

1. compact the spike vector into at most ``capacity`` presynaptic indices (``compact_spikes``);
2. gather those rows (``capacity × max_out_degree``) and scatter-add ``weight × spike value`` into
   the postsynaptic array.

Cost: O(capacity × max_out_degree) instead of O(synapses). **No spike is ever dropped**: when more than
``capacity`` neurons spike in one step, ``lax.cond`` switches to the exact all-rows path for that step.

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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from . import _kernels
from ._types import Array


def compact_spikes(spikes: Array, capacity: int) -> tuple[Array, Array]:
    """Indices of the nonzero entries of ``spikes``, padded with ``len(spikes)``, and their count.

    Only the first ``capacity`` indices are returned; callers must check ``count <= capacity``.
    """
    n = spikes.shape[0]
    count = jnp.count_nonzero(spikes)
    (indices,) = jnp.nonzero(spikes, size=capacity, fill_value=n)
    return indices, count


def default_capacity(n_pre: int) -> int:
    """Spike-list capacity: enough for ~1.5% of neurons firing in one step (≥ 32), exact fallback beyond."""
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


def _deliver_jax(g, spikes, targets, weights, row_offset: int, capacity: int):
    n_pre, n_post = targets.shape[0], g.shape[0]
    spikes = jax.lax.dynamic_slice_in_dim(spikes, row_offset, n_pre) if spikes.shape[0] != n_pre else spikes
    if capacity >= n_pre:
        return g + _deliver_rows(targets, weights, jnp.arange(n_pre), spikes, n_post)
    rows, count = compact_spikes(spikes, capacity)

    def sparse_path(_):
        return _deliver_rows(targets, weights, rows, jnp.take(spikes, rows, mode="fill", fill_value=0), n_post)

    def exact_path(_):
        return _deliver_rows(targets, weights, jnp.arange(n_pre), spikes, n_post)

    return g + jax.lax.cond(count <= capacity, sparse_path, exact_path, None)


def _deliver_forward(g, spikes, targets, weights, row_offset: int, capacity: int, native: bool):
    pure = functools.partial(_deliver_jax, row_offset=row_offset, capacity=capacity)
    dtypes_ok = g.dtype == spikes.dtype == weights.dtype == jnp.float32
    if not native or not dtypes_ok or not _kernels.native_available():
        return pure(g, spikes, targets, weights)
    kernel = functools.partial(_kernels.event_deliver_native, row_offset=row_offset)
    return jax.lax.platform_dependent(g, spikes, targets, weights, cpu=kernel, default=pure)


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


def _deliver_bwd(row_offset, capacity, native, residuals, dout):
    spikes, targets, weights = residuals
    n_pre = targets.shape[0]
    rows = jax.lax.dynamic_slice_in_dim(spikes, row_offset, n_pre) if spikes.shape[0] != n_pre else spikes
    dout_at_targets = jnp.take(dout, targets, mode="fill", fill_value=0)  # (n_pre, K); padding -> 0
    if weights.ndim == 0:
        d_rows = weights * dout_at_targets.sum(axis=1)
        d_weights = jnp.sum(rows * dout_at_targets.sum(axis=1))
    else:
        d_rows = jnp.sum(weights * dout_at_targets, axis=1)
        d_weights = rows[:, None] * dout_at_targets
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
    pure = lambda s: jnp.packbits(s != 0)
    if spikes.dtype != jnp.float32 or not _kernels.native_available():
        return pure(spikes)
    return jax.lax.platform_dependent(spikes, cpu=_kernels.pack_spikes_native, default=pure)


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
        cap = default_capacity(self.n_pre) if capacity is None else int(capacity)
        if cap <= 0:
            raise ValueError(f"EventOperator: capacity must be a positive integer, got {capacity}")
        self.capacity = min(cap, self.n_pre)
        self.native = bool(native)

    @classmethod
    def from_sparse(cls, matrix, *, capacity: int | None = None, homogeneous: bool = False,
                    native: bool = True) -> "EventOperator":
        """Convert a ``(n_pre, n_post)`` BCOO or BCSR weight matrix (host-side, once).

        ``homogeneous=True`` stores one scalar weight (all stored weights must be equal).
        """
        if isinstance(matrix, sparse.BCSR):
            matrix = matrix.to_bcoo()
        if not isinstance(matrix, sparse.BCOO):
            raise TypeError(f"EventOperator.from_sparse expects a jax.experimental.sparse BCOO/BCSR matrix, got {type(matrix).__name__}")
        if matrix.n_batch or matrix.n_dense or matrix.indices.shape[-1] != 2:
            raise ValueError("EventOperator.from_sparse: expected an unbatched 2-D sparse matrix")
        n_pre, n_post = matrix.shape
        indices = np.asarray(matrix.indices)
        data = np.asarray(matrix.data)
        pre, post = indices[:, 0], indices[:, 1]
        valid = pre < n_pre  # BCOO may carry padding entries with out-of-range indices
        pre, post, data = pre[valid], post[valid], data[valid]
        order = np.argsort(pre, kind="stable")
        pre, post, data = pre[order], post[order], data[order]
        degree = np.bincount(pre, minlength=n_pre)
        width = max(int(degree.max(initial=0)), 1)
        slot = np.arange(len(pre)) - np.repeat(np.cumsum(degree) - degree, degree)
        targets = np.full((n_pre, width), n_post, dtype=np.int32)
        targets[pre, slot] = post
        if homogeneous:
            if len(data) and not np.all(data == data[0]):
                raise ValueError("EventOperator.from_sparse: homogeneous=True needs all weights equal")
            weights = np.float32(data[0] if len(data) else 0.0)
        else:
            weights = np.zeros((n_pre, width), dtype=np.float32)
            weights[pre, slot] = data
        return cls(weights, targets, n_post, n_synapses=len(pre), capacity=capacity, native=native)

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
        return jnp.broadcast_to(self.weights, self.targets.shape) * (self.targets < self.n_post)

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
