"""Activity regularizers (one example; add them to the loss).

- ``rate_band(counts, T, dt, low, high)``: ``mean_i relu(low - r_i)^2 + relu(r_i - high)^2`` with
  ``r_i = 1000 counts_i / (T dt)`` in Hz: keeps each neuron's rate inside [low, high] Hz.
- ``hoyer(x)``: Hoyer sparsity ``(sum |x|)^2 / sum x^2`` of e.g. spike counts (small = sparse;
  Kurtz et al. 2020 / Yan et al. 2022).
- ``membrane_distribution(v_mean, v_sq, target_mean, target_std)``: penalises the time-averaged
  membrane potential distribution of a layer for drifting from ``N(target_mean, target_std^2)`` (mV^2):
  ``mean_i (m_i - mu)^2 + (sqrt(var_i) - sigma)^2`` with ``var_i = <v^2> - <v>^2``. Keeps membranes in
  the surrogate's sensitive window (cf. the membrane-potential-aware surrogate ``"membrane"``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array


def rate_band(counts: Array, n_steps: int, dt: float, low: float, high: float) -> Array:
    rate = counts * (1000.0 / (n_steps * dt))
    return jnp.mean(jax.nn.relu(low - rate) ** 2 + jax.nn.relu(rate - high) ** 2)


def hoyer(x: Array, eps: float = 1e-8) -> Array:
    x = jnp.abs(x)
    return jnp.sum(x) ** 2 / (jnp.sum(x * x) + eps)


def membrane_distribution(v_mean: Array, v_sq: Array, target_mean: float = 0.0, target_std: float = 0.5) -> Array:
    std = jnp.sqrt(jnp.maximum(v_sq - v_mean**2, 1e-12))
    return jnp.mean((v_mean - target_mean) ** 2 + (std - target_std) ** 2)
