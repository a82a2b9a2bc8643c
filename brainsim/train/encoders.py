"""Encoders: turn static or sampled data into spike trains ``(T, n)`` of float {0, 1}.

- ``poisson(key, rates_hz, n_steps, dt)``: independent Bernoulli per step with p = rate dt / 1000 (dt in
  ms, rate in Hz; p is clipped to [0, 1]).
- ``rate(key, x, n_steps, max_rate, dt)``: ``poisson`` with ``rate = x * max_rate`` for x in [0, 1].
- ``latency(x, n_steps, tau, threshold)``: one spike per input, earlier for larger x; an RC neuron
  charged by x reaches threshold at ``t = tau log(x / (x - threshold))`` steps (snnTorch convention),
  or linearly ``t = (1 - x)(T - 1)``; inputs ``x <= threshold`` never spike.
- ``delta(signal, threshold)``: event (send-on-delta) coding of a sampled signal ``(T, n)``: an ON
  (OFF) event each time it rises (falls) by ``threshold`` from the last event level; returns
  ``(T, 2 n)`` with ON channels first. Exact reconstruction to within ``threshold``.
- ``direct(x, n_steps)``: the analog value repeated at every step (current injection).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array


def _check_steps(n_steps: int, owner: str) -> int:
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"{owner}: n_steps must be a positive integer, got {n_steps!r}")
    return n_steps


def poisson(key, rates_hz: Array, n_steps: int, dt: float) -> Array:
    _check_steps(n_steps, "poisson")
    p = jnp.clip(jnp.asarray(rates_hz) * (dt / 1000.0), 0.0, 1.0)
    return (jax.random.uniform(key, (n_steps,) + p.shape) < p).astype(jnp.float32)


def rate(key, x: Array, n_steps: int, max_rate: float = 200.0, dt: float = 1.0) -> Array:
    return poisson(key, jnp.clip(jnp.asarray(x), 0.0, 1.0) * max_rate, n_steps, dt)


def latency(x: Array, n_steps: int, tau: float = 5.0, threshold: float = 0.01, linear: bool = False) -> Array:
    """One spike per input at step ``round(tau log(x / (x - threshold)))`` (tau in steps), clipped to T - 1;
    with ``linear=True`` at step ``round((1 - x) (T - 1))``. Inputs ``x <= threshold`` never spike."""
    _check_steps(n_steps, "latency")
    x = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0)
    fires = x > threshold
    if linear:
        t = (1.0 - x) * (n_steps - 1)
    else:
        t = tau * jnp.log(jnp.where(fires, x / jnp.maximum(x - threshold, 1e-12), 1.0))
    step = jnp.clip(jnp.round(t), 0, n_steps - 1).astype(jnp.int32)
    onehot = (jnp.arange(n_steps)[:, None] == step.reshape(-1)[None, :]) & fires.reshape(-1)[None, :]
    return onehot.astype(jnp.float32).reshape((n_steps,) + x.shape)


def delta(signal: Array, threshold: float) -> Array:
    signal = jnp.asarray(signal, jnp.float32)
    if signal.ndim != 2:
        raise ValueError(f"delta: signal must have shape (T, n), got {signal.shape}")

    def body(level, s):
        on = s - level >= threshold
        off = level - s >= threshold
        level = jnp.where(on | off, s, level)
        return level, jnp.concatenate([on, off]).astype(jnp.float32)

    _, events = jax.lax.scan(body, signal[0], signal)
    return events


def direct(x: Array, n_steps: int) -> Array:
    _check_steps(n_steps, "direct")
    x = jnp.asarray(x, jnp.float32)
    return jnp.broadcast_to(x, (n_steps,) + x.shape)
