"""The integrators every model shares: exponential Euler for linear ODEs, classical RK4, refractory countdown.

Model files call these instead of writing their own, so that one integration scheme has one implementation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array


def exp_euler_linear(v: Array, v_inf: Array, rate: Array, dt: float) -> Array:
    """Exact update of ``dv/dt = rate * (v_inf - v)`` over ``dt`` with constant ``v_inf``, ``rate`` (1/ms)."""
    return v_inf + (v - v_inf) * jnp.exp(-rate * dt)


def rk4(f, y, dt: float, substeps: int = 1):
    """``substeps`` classical Runge–Kutta steps of ``dy/dt = f(y)`` (``y`` a pytree) over ``dt``."""
    h = dt / substeps

    def one(y):
        k1 = f(y)
        k2 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k1))
        k3 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k2))
        k4 = f(jax.tree.map(lambda a, b: a + h * b, y, k3))
        return jax.tree.map(lambda a, b1, b2, b3, b4: a + h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)

    if substeps == 1:
        return one(y)
    # a loop, not an unrolled Python loop: the traced graph (and compile time) stays one RK4 step
    return jax.lax.fori_loop(0, substeps, lambda _, y: one(y), y)


def refractory_countdown(refractory: Array, dt: float) -> tuple[Array, Array]:
    """Advance a remaining-refractory-time counter (ms) by one step.

    Returns ``(new_counter, is_refractory)``. After a spike at step k the counter is set to ``t_ref``;
    integration stays frozen at steps k+1 .. k+n-1 with n = t_ref/dt and resumes at step k+n, the same
    convention as Brian2's ``(unless refractory)``.
    """
    remaining = jnp.maximum(refractory - dt, 0.0)
    return remaining, remaining > 0.5 * dt
