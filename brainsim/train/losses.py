"""Losses for spiking networks (one example; batch with ``jax.vmap`` and average).

Shapes: ``outputs`` ``(T, n_out)`` (readout membrane in mV, or spikes), ``label`` an integer class.

- ``ce_max_membrane``: cross-entropy of ``softmax(max_t v_t)`` (Spyx/SHD standard).
- ``ce_mean_membrane``: cross-entropy of ``softmax(mean_t v_t)``.
- ``ce_spike_count``: cross-entropy of ``softmax(sum_t s_t)`` (count decoding of output spikes).
- ``step_cross_entropy``: cross-entropy at one step; summed over steps it is a per-step loss usable with
  the truncated / spatial-only BPTT modes.
- ``spike_count_mse``: ``mean_i (sum_t s_ti - target_i)^2`` (spikes^2).
- ``rate_mse``: ``mean_i (r_i - target_i)^2`` with ``r_i = 1000 sum_t s_ti / (T dt)`` (Hz^2).
- ``van_rossum_distance``: ``D^2 = (dt / tau) sum_t sum_i (f_ti - g_ti)^2`` where f, g are the spike trains
  filtered by a causal exponential kernel ``exp(-t / tau)`` (van Rossum 2001), tau and dt in ms.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import _is_concrete
from .._types import Array


def check_labels(labels, n_classes: int, owner: str = "loss") -> None:
    """Raise ``ValueError`` for concrete labels that are not integers in ``[0, n_classes)``."""
    if not _is_concrete(labels):
        return
    arr = np.asarray(labels)
    if arr.size == 0:
        return
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{owner}: labels must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"{owner}: labels must lie in [0, {n_classes}), got values in [{arr.min()}, {arr.max()}]")


def _ce(logits: Array, label) -> Array:
    check_labels(label, logits.shape[-1], "cross-entropy")
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(label)[..., None], axis=-1)[..., 0]


def ce_max_membrane(outputs: Array, label) -> Array:
    return _ce(outputs.max(axis=0), label)


def ce_mean_membrane(outputs: Array, label) -> Array:
    return _ce(outputs.mean(axis=0), label)


def ce_spike_count(outputs: Array, label) -> Array:
    return _ce(outputs.sum(axis=0), label)


def step_cross_entropy(output_t: Array, label) -> Array:
    return _ce(output_t, label)


def spike_count_mse(spikes: Array, target_counts: Array) -> Array:
    return jnp.mean((spikes.sum(axis=0) - target_counts) ** 2)


def rate_mse(spikes: Array, target_hz: Array, dt: float) -> Array:
    rate = spikes.sum(axis=0) * (1000.0 / (spikes.shape[0] * dt))
    return jnp.mean((rate - target_hz) ** 2)


def exponential_filter(spikes: Array, tau: float, dt: float) -> Array:
    """Causal filter ``f_t = f_{t-1} exp(-dt/tau) + s_t`` over the leading time axis."""
    decay = jnp.exp(-dt / tau)

    def body(f, s):
        f = f * decay + s
        return f, f

    _, out = jax.lax.scan(body, jnp.zeros(spikes.shape[1:], spikes.dtype), spikes)
    return out


def van_rossum_distance(spikes: Array, target: Array, tau: float, dt: float) -> Array:
    """Squared van Rossum distance between spike trains ``(T, n)`` (see module docstring)."""
    if spikes.shape != target.shape:
        raise ValueError(f"van_rossum_distance: spike trains have shapes {spikes.shape} and {target.shape}")
    diff = exponential_filter(spikes - target, tau, dt)  # the filter is linear
    return jnp.sum(diff * diff) * (dt / tau)


def accuracy_max_membrane(outputs: Array, label) -> Array:
    return (jnp.argmax(outputs.max(axis=0)) == label).astype(jnp.float32)
