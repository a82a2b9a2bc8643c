"""Event-driven spike propagation whose cost grows with the number of spikes.

``EventOperator`` stores outgoing synapses in a padded fixed-fan-out layout (ELL): row ``i`` holds the
postsynaptic targets and weights of presynaptic neuron ``i``, padded to the maximum out-degree with the
sentinel target ``n_post`` (dropped on delivery). One step of delivery:

1. compact the spike vector into at most ``capacity`` presynaptic indices (``compact_spikes``);
2. gather those rows (``capacity × max_out_degree``) and scatter-add ``weight × spike value`` into
   the postsynaptic array.

Cost: O(capacity × max_out_degree) instead of O(synapses). **No spike is ever dropped**: when more than
``capacity`` neurons spike in one step, ``lax.cond`` switches to the exact all-rows path for that step.
Spike values are floats, so short-term plasticity scaling and surrogate gradients pass through; the
result is differentiable with respect to the weights and the spike values of spiking neurons.

The operator is built once, outside the time loop, from a ``jax.experimental.sparse`` BCOO/BCSR matrix
(``EventOperator.from_sparse``), which remains the reference form (``to_bcoo``).
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

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


class EventOperator(eqx.Module):
    """Outgoing synapses of one projection in padded fixed-fan-out (ELL) layout.

    Attributes:
        weights: ``(n_pre, max_out_degree)`` synaptic weights (nS or pA), trainable; zero in padding.
        targets: ``(n_pre, max_out_degree)`` int32 postsynaptic indices; ``n_post`` marks padding.
    """

    weights: Array
    targets: Array
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)
    n_synapses: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    def __init__(self, weights, targets, n_post: int, *, n_synapses: int | None = None, capacity: int | None = None):
        targets = jnp.asarray(targets, dtype=jnp.int32)
        weights = jnp.asarray(weights, dtype=jnp.result_type(float))
        if weights.shape != targets.shape or weights.ndim != 2:
            raise ValueError(f"EventOperator: weights {weights.shape} and targets {targets.shape} must be equal 2-D shapes")
        self.weights, self.targets = weights, targets
        self.n_pre, self.n_post = int(targets.shape[0]), int(n_post)
        self.n_synapses = int(np.sum(np.asarray(targets) < n_post)) if n_synapses is None else int(n_synapses)
        cap = default_capacity(self.n_pre) if capacity is None else int(capacity)
        if cap <= 0:
            raise ValueError(f"EventOperator: capacity must be a positive integer, got {capacity}")
        self.capacity = min(cap, self.n_pre)

    @classmethod
    def from_sparse(cls, matrix, *, capacity: int | None = None) -> "EventOperator":
        """Convert a ``(n_pre, n_post)`` BCOO or BCSR weight matrix (host-side, once)."""
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
        weights = np.zeros((n_pre, width), dtype=np.float32)
        targets[pre, slot] = post
        weights[pre, slot] = data
        return cls(weights, targets, n_post, n_synapses=len(pre), capacity=capacity)

    @classmethod
    def from_dense(cls, matrix, *, capacity: int | None = None) -> "EventOperator":
        """Convert a dense ``(n_pre, n_post)`` weight matrix; zero entries are not synapses."""
        return cls.from_sparse(sparse.BCOO.fromdense(jnp.asarray(matrix)), capacity=capacity)

    @property
    def max_out_degree(self) -> int:
        return int(self.targets.shape[1])

    def to_bcoo(self) -> sparse.BCOO:
        """Reference form: ``(n_pre, n_post)`` BCOO with the current weights."""
        targets = np.asarray(self.targets)
        pre, slot = np.nonzero(targets < self.n_post)
        indices = np.stack([pre, targets[pre, slot]], axis=1).astype(np.int32)
        return sparse.BCOO((self.weights[pre, slot], jnp.asarray(indices)), shape=(self.n_pre, self.n_post))

    def to_dense(self) -> Array:
        """Dense ``(n_pre, n_post)`` weight matrix (differentiable in the weights)."""
        dense = jnp.zeros((self.n_pre, self.n_post + 1), self.weights.dtype)
        rows = jnp.broadcast_to(jnp.arange(self.n_pre)[:, None], self.targets.shape)
        return dense.at[rows, self.targets].add(self.weights)[:, : self.n_post]

    def _deliver_rows(self, rows: Array, values: Array) -> Array:
        # rows: (r,) presynaptic indices (n_pre = padding); values: (r,) spike values
        targets = jnp.take(self.targets, rows, axis=0, mode="fill", fill_value=self.n_post)
        weights = jnp.take(self.weights, rows, axis=0, mode="fill", fill_value=0)
        contributions = weights * values[:, None]
        out = jnp.zeros((self.n_post,), contributions.dtype)
        return out.at[targets].add(contributions, mode="drop")

    def __call__(self, spikes: Array) -> Array:
        """Postsynaptic input ``spikes @ W`` (shape ``(n_post,)``) for spike values ``spikes`` ``(n_pre,)``."""
        if spikes.shape != (self.n_pre,):
            raise ValueError(f"EventOperator: spikes have shape {spikes.shape}, expected ({self.n_pre},)")
        rows, count = compact_spikes(spikes, self.capacity)

        def sparse_path(_):
            values = jnp.take(spikes, rows, mode="fill", fill_value=0)
            return self._deliver_rows(rows, values)

        def exact_path(_):
            return self._deliver_rows(jnp.arange(self.n_pre), spikes)

        if self.capacity >= self.n_pre:
            return exact_path(None)
        return jax.lax.cond(count <= self.capacity, sparse_path, exact_path, None)
