"""How the time loop is differentiated: a strategy object given to ``brainsim.simulate.run(adjoint=...)``.

``run`` is the one time loop for simulation and training; the adjoint decides what its backward pass keeps
(as Diffrax's adjoints do for ``diffeqsolve``). Every strategy runs the same forward computation, so the
trajectory and the records are identical whichever is chosen:

- ``Direct()``: plain ``lax.scan``; the backward pass stores every step's residuals (memory O(T)).
- ``Checkpointed(chunk=None)``: the T steps run in chunks of ``chunk`` steps (default ``ceil(sqrt(T))``); only
  the carry at chunk boundaries is stored and each chunk is recomputed in its backward pass: memory
  O(T / chunk + chunk) = O(sqrt(T)) steps, at the cost of one more forward pass. Gradients are exact.
- ``Truncated(window, chunk=None)``: as ``Checkpointed``, and the gradient path through the state is cut every
  ``window`` steps (truncated BPTT; ``window=1`` keeps only the within-step, "spatial" path). Recurrent spiking
  networks are chaotic: exact surrogate gradients through long horizons can grow without bound, truncation
  keeps the local sensitivities.

Besides ``scan`` (a loop of single steps), each strategy gives ``sequence``: the same backward pass for an
operation that computes many steps at once (``brainsim.fused_lif``'s fused layer sequences), run over chunks of
the sequence with the state carried between them: ``Direct`` calls it once on the whole sequence, ``Checkpointed``
on chunks recomputed in the backward pass, ``Truncated`` on chunks of ``window`` steps with the carried state's
gradient cut between them.
"""
from __future__ import annotations

import abc
import math
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp


def _length(xs) -> int:
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("scan: xs must contain at least one array with a leading time axis")
    return int(leaves[0].shape[0])


def default_chunk(n_steps: int) -> int:
    """ceil(sqrt(T)): balances stored chunk-boundary carries against one chunk's residuals."""
    return max(1, int(math.ceil(math.sqrt(n_steps))))


def checkpointed_scan(step: Callable, carry, xs, chunk: Optional[int] = None, unroll: int = 1):
    """``lax.scan(step, carry, xs)`` with recomputation: peak memory O(T / chunk + chunk) steps."""
    n = _length(xs)
    chunk = default_chunk(n) if chunk is None else max(1, min(int(chunk), n))
    n_chunks, tail = divmod(n, chunk)

    def run_chunk(c, xs_chunk):
        return jax.lax.scan(step, c, xs_chunk, unroll=unroll)

    # chunk i is sliced out of xs inside the checkpointed function, so the backward pass stores only the
    # chunk-boundary carry and the index (a reshaped or sliced copy of xs would cost O(T) memory)
    @jax.checkpoint
    def outer(c, i):
        xs_chunk = jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, i * chunk, chunk), xs)
        return run_chunk(c, xs_chunk)

    carry, ys = jax.lax.scan(outer, carry, jnp.arange(n_chunks))
    ys = jax.tree_util.tree_map(lambda y: y.reshape((n_chunks * chunk,) + y.shape[2:]), ys)
    if tail:
        rest = jax.tree_util.tree_map(lambda x: x[n_chunks * chunk:], xs)
        carry, ys_tail = jax.checkpoint(run_chunk)(carry, rest)
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys


class AbstractAdjoint(eqx.Module):
    """``scan(step, carry, xs, *, unroll=1) -> (carry, ys)``: ``lax.scan``'s contract, with this strategy's backward
    pass. ``carry`` is ``(model state, accumulated records)`` and ``xs`` a pytree whose first leaf is the step
    index of the run (``run`` passes both so).

    ``sequence(run_steps, carry, xs) -> (carry, ys)``: the same for ``run_steps(carry, xs_part) -> (carry,
    ys_part)``, which computes ``len(xs_part)`` consecutive steps at once (every leaf of ``xs`` and ``ys`` has
    time first; ``carry`` is the state alone, without records) from the start of the run."""

    @abc.abstractmethod
    def scan(self, step: Callable, carry, xs, *, unroll: int = 1):
        ...

    def sequence(self, run_steps: Callable, carry, xs):
        # not abstract, so that a strategy written for ``scan`` alone keeps working where nothing is fused
        raise NotImplementedError(f"{type(self).__name__} gives no sequence(); fused operations need it "
                                  f"(implement it, or run with order=LayerByLayer(fuse=False))")


def chunked_sequence(run_steps: Callable, carry, xs, chunk: int, cut: bool = False, checkpoint: bool = True):
    """``run_steps`` over consecutive chunks of ``chunk`` steps (the last one shorter if need be), each chunk
    recomputed in the backward pass (only the carry between chunks is stored) unless ``checkpoint=False``; with
    ``cut`` the carry's gradient is stopped at the start of every chunk."""
    n = _length(xs)
    chunk = max(1, min(int(chunk), n))
    n_chunks, tail = divmod(n, chunk)

    def start(c):
        if not cut:
            return c
        return jax.tree_util.tree_map(lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a, c)

    maybe_checkpoint = jax.checkpoint if checkpoint else (lambda f: f)

    @maybe_checkpoint
    def one(c, i):
        part = jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, i * chunk, chunk), xs)
        return run_steps(start(c), part)

    carry, ys = jax.lax.scan(one, carry, jnp.arange(n_chunks))
    ys = jax.tree_util.tree_map(lambda y: y.reshape((n_chunks * chunk,) + y.shape[2:]), ys)
    if tail:
        rest = jax.tree_util.tree_map(lambda x: x[n_chunks * chunk:], xs)
        carry, ys_tail = maybe_checkpoint(lambda c, part: run_steps(start(c), part))(carry, rest)
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys


class Direct(AbstractAdjoint):
    """Full backpropagation through time, every step's residuals stored (memory O(T))."""

    def scan(self, step, carry, xs, *, unroll: int = 1):
        return jax.lax.scan(step, carry, xs, unroll=unroll)

    def sequence(self, run_steps, carry, xs):
        return run_steps(carry, xs)


def _check_steps(value, name: str, owner: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer number of steps, got {value!r}")
    return int(value)


class Checkpointed(AbstractAdjoint):
    """Exact gradients with memory O(sqrt(T)) steps: chunks of ``chunk`` steps recomputed in the backward pass.

    Args:
        chunk: steps per checkpointed chunk (default ``ceil(sqrt(T))``).
    """

    chunk: Optional[int] = eqx.field(static=True)

    def __init__(self, chunk: Optional[int] = None):
        self.chunk = _check_steps(chunk, "chunk", "Checkpointed")

    def scan(self, step, carry, xs, *, unroll: int = 1):
        return checkpointed_scan(step, carry, xs, self.chunk, unroll)

    def sequence(self, run_steps, carry, xs):
        n = _length(xs)
        return chunked_sequence(run_steps, carry, xs, default_chunk(n) if self.chunk is None else self.chunk)


class Truncated(AbstractAdjoint):
    """Truncated BPTT: the gradient through the carried state is cut every ``window`` steps (checkpointed memory).

    Args:
        window: steps between cuts (1 = spatial-only gradients).
        chunk: steps per checkpointed chunk (default ``ceil(sqrt(T))``).
    """

    window: int = eqx.field(static=True)
    chunk: Optional[int] = eqx.field(static=True)

    def __init__(self, window: int, chunk: Optional[int] = None):
        self.window = _check_steps(window, "window", "Truncated")
        self.chunk = _check_steps(chunk, "chunk", "Truncated")

    def scan(self, step, carry, xs, *, unroll: int = 1):
        def cut_step(carry, x):
            state, records = carry  # the records accumulated so far keep their gradients
            i = jax.tree_util.tree_leaves(x)[0]  # run's step index comes first
            cut = (i % self.window) == 0
            state = jax.tree_util.tree_map(
                lambda a: jnp.where(cut, jax.lax.stop_gradient(a), a) if eqx.is_inexact_array(a) else a, state)
            return step((state, records), x)

        return checkpointed_scan(cut_step, carry, xs, self.chunk, unroll)

    def sequence(self, run_steps, carry, xs):
        # windows of ``window`` steps from the start of the run, so that the cuts fall where ``scan`` makes them,
        # in checkpointed groups of whole windows (about ``chunk`` steps; default ceil(sqrt(#windows)) windows)
        windows = -(-_length(xs) // self.window)
        group = default_chunk(windows) if self.chunk is None else -(-self.chunk // self.window)

        def windowed(c, part):
            return chunked_sequence(run_steps, c, part, self.window, cut=True, checkpoint=False)

        return chunked_sequence(windowed, carry, xs, group * self.window)
