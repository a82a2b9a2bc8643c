"""Shared machinery of the local learning rules: event loops over spiking neurons and the reverse index.

Weights live in the padded fixed-fan-out (ELL) layout of ``brainsim.propagation.EventOperator``:
``weights[i, k]`` is the synapse from presynaptic neuron ``i`` to ``targets[i, k]`` (``n_post`` marks
padding). A presynaptic spike touches one row; a postsynaptic spike touches one *column set* which the
``ReverseIndex`` (built once, on the host, outside the time loop) lists as flat slots ``i * K + k``.

``for_each_event`` (from ``brainsim.propagation``, shared with spike delivery) runs an update over the
indices of the nonzero entries of an event vector in batches of ``capacity``: one batch costs
O(capacity × fan-out); more active neurons run more batches, so no event is ever dropped.
"""
from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._types import Array, ArrayLike
from ..propagation import compact, default_capacity, deliver, for_each_event  # noqa: F401  (re-exported)


def default_event_capacity(n: int) -> int:
    """Batch size of one event loop iteration: ~0.5 % of the neurons, at least 16, at most ``n``."""
    return int(min(n, max(16, -(-n // 200))))


class ReverseIndex(eqx.Module):
    """Incoming synapses of every postsynaptic neuron, as flat slots into an ``(n_pre, K)`` ELL layout.

    Attributes:
        slots: ``(n_post, max_in_degree)`` int32; ``slots[j, m] = i * K + k`` with ``targets[i, k] == j``,
            padded with ``n_pre * K`` (an out-of-range slot: gathers fill, scatters drop).
    """

    slots: Array
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)
    width: int = eqx.field(static=True)  # K, the ELL row width

    def __init__(self, targets: ArrayLike, n_post: int):
        targets = np.asarray(targets)
        if targets.ndim != 2:
            raise ValueError(f"ReverseIndex: targets must be (n_pre, K), got shape {targets.shape}")
        n_pre, width = targets.shape
        flat = targets.ravel()
        slot = np.nonzero(flat < n_post)[0]
        post = flat[slot]
        order = np.argsort(post, kind="stable")
        slot, post = slot[order], post[order]
        degree = np.bincount(post, minlength=n_post)
        in_width = max(int(degree.max(initial=0)), 1)
        pos = np.arange(len(post)) - np.repeat(np.cumsum(degree) - degree, degree)
        slots = np.full((n_post, in_width), n_pre * width, dtype=np.int32)
        slots[post, pos] = slot
        self.slots = jnp.asarray(slots)
        self.n_pre, self.n_post, self.width = int(n_pre), int(n_post), int(width)

    @property
    def max_in_degree(self) -> int:
        return int(self.slots.shape[1])

    def sources(self, slots: Array) -> Array:
        """Presynaptic index of each slot (``n_pre`` for padding)."""
        return jnp.minimum(slots // self.width, self.n_pre)


def check_scalar(value, name: str, owner: str, *, positive: bool = False, allow_zero: bool = True) -> float:
    """A scalar hyper-parameter (learning rate, amplitude, bound) given on the host, checked."""
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {arr.shape}")
    try:
        x = float(arr)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}") from None
    if not np.isfinite(x):
        raise ValueError(f"{owner}: {name} must be finite, got {x}")
    if positive and (x < 0 or (x == 0 and not allow_zero)):
        raise ValueError(f"{owner}: {name} must be {'>= 0' if allow_zero else '> 0'}, got {x}")
    return x


def check_bounds(w_min, w_max, owner: str, *, finite: bool = True) -> tuple[float, float]:
    """Weight bounds ``(w_min, w_max)`` with ``w_min < w_max``; ``finite=False`` allows ``±inf`` (unbounded)."""
    if finite:
        w_min, w_max = check_scalar(w_min, "w_min", owner), check_scalar(w_max, "w_max", owner)
    else:
        w_min, w_max = float(w_min), float(w_max)
    if not w_max > w_min:
        raise ValueError(f"{owner}: w_max ({w_max}) must be greater than w_min ({w_min})")
    return w_min, w_max


def deliver_then_update(rule, state, targets: Array, reverse, pre_spikes: Array, post_spikes: Array, dt: float, *,
                        modulator=None, into: Array):
    """``deliver_and_update`` of rules without a fused kernel: ``into + pre @ W`` with the weights before the
    update (event-driven, as ``EventOperator``), then ``rule.update``."""
    weights = state.weights.astype(into.dtype)
    arrived = deliver(into, pre_spikes.astype(into.dtype), targets, weights, 0, default_capacity(targets.shape[0]), True)
    return arrived, rule.update(state, targets, reverse, pre_spikes, post_spikes, dt, modulator=modulator)


def check_plastic_operator(operator, owner: str) -> None:
    if operator.homogeneous:
        raise ValueError(f"{owner}: plasticity needs one weight per synapse, but the operator stores a single "
                         "homogeneous weight; build it with EventOperator.from_sparse(..., homogeneous=False)")
