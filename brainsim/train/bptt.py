"""Memory modes for backpropagation through time.

Every mode runs the same step function ``step(carry, x_t) -> (carry, y_t)`` over the leading axis of
``xs`` and differs only in what the backward pass keeps:

- ``"full"``: plain ``lax.scan``; the backward pass stores every step's residuals: memory O(T).
- ``"checkpointed"``: the T steps are split into chunks of ``chunk`` steps (default ``ceil(sqrt(T))``);
  only the carry at each chunk boundary is stored and a chunk's residuals are recomputed during its
  backward pass: memory O(T / chunk + chunk) = O(sqrt(T)), at the cost of one extra forward pass.
- ``"truncated"`` / ``"spatial"`` (``truncated_loss``): the gradient of a per-step loss
  ``L = sum_t l_t`` is propagated only within windows of ``window`` steps; the temporal path through
  the carry across window boundaries is dropped (``window = 1`` is the spatial-only gradient of SLTT,
  Meng et al. 2023). The backward pass re-runs the forward window by window and accumulates the
  parameter gradient, so memory is O(window), independent of T.
"""
from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice
from ..adjoints import _length, checkpointed_scan, default_chunk  # noqa: F401  (re-exported)

MODES = ("full", "checkpointed", "spatial", "truncated")


def check_mode(mode: str, owner: str = "bptt") -> str:
    return check_choice(mode, MODES, "BPTT mode", owner)


def scan(step: Callable, carry, xs, *, mode: str = "full", chunk: int | None = None):
    """Run ``step`` over time in memory mode ``"full"`` or ``"checkpointed"`` (see module docstring)."""
    check_mode(mode, "bptt.scan")
    if mode == "full":
        return jax.lax.scan(step, carry, xs)
    if mode == "checkpointed":
        return checkpointed_scan(step, carry, xs, chunk)
    raise ValueError(f"bptt.scan: mode {mode!r} needs a per-step loss; use bptt.truncated_loss")


# ---------------------------------------------------------------------------------------------------
# truncated / spatial-only gradients with O(window) memory


def _window_loss(step_loss, model, carry, xs_window, args):
    def body(state, x):
        c, total = state
        c, loss_t = step_loss(model, c, x, *args)
        return (c, total + loss_t), None

    (carry, total), _ = jax.lax.scan(body, (carry, jnp.zeros(())), xs_window)
    return total, carry


@eqx.filter_custom_vjp
def _truncated(model, step_loss, carry, xs, window, args):
    total, _ = _window_loss(step_loss, model, carry, xs, args)
    return total


@_truncated.def_fwd
def _truncated_fwd(perturbed, model, step_loss, carry, xs, window, args):
    return _truncated(model, step_loss, carry, xs, window, args), None


@_truncated.def_bwd
def _truncated_bwd(residuals, g, perturbed, model, step_loss, carry, xs, window, args):
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss_of(p, c, xw):
        return _window_loss(step_loss, eqx.combine(p, static), c, xw, args)

    def body(state, i):
        c, acc = state
        xw = jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, i * window, window), xs)
        (_, c_next), vjp = jax.vjp(lambda p: loss_of(p, jax.lax.stop_gradient(c), xw), params)
        (d_params,) = vjp((g, jax.tree_util.tree_map(jnp.zeros_like, c_next)))
        acc = jax.tree_util.tree_map(jnp.add, acc, d_params)
        return (c_next, acc), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    (_, grads), _ = jax.lax.scan(body, (carry, zeros), jnp.arange(_length(xs) // window))
    return grads


def truncated_loss(step_loss: Callable, model, carry, xs, *args, window: int = 1):
    """``sum_t l_t`` where ``(carry, l_t) = step_loss(model, carry, x_t, *args)``, with truncated gradients.

    The gradient with respect to ``model`` (its floating-point arrays) ignores every path through the
    carry that crosses a window boundary; ``window=1`` gives the spatial-only gradient (SLTT). Memory in
    the backward pass is O(window) steps, independent of the sequence length, which must be a multiple
    of ``window``. ``args`` (e.g. labels) are passed to every step and are not differentiated; neither
    are ``carry`` and ``xs``.
    """
    window = int(window)
    if window < 1:
        raise ValueError(f"bptt.truncated_loss: window must be a positive number of steps, got {window}")
    n = _length(xs)
    if n % window:
        raise ValueError(f"bptt.truncated_loss: sequence length {n} is not a multiple of window {window}")
    carry, xs, args = jax.lax.stop_gradient((carry, xs, tuple(args)))
    return _truncated(model, step_loss, carry, xs, window, args)
