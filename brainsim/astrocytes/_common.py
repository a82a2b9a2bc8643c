"""Pieces shared by the astrocyte models: RK4 stepping and construction-time checks."""
from __future__ import annotations

import jax
import numpy as np

from .._checks import as_param, check_positive


def check_concentration(value, name: str, owner: str) -> None:
    """Reject negative (or NaN) initial concentrations with a clear message."""
    if value is None:
        return
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: initial {name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{owner}: initial {name} must be a concentration >= 0 µM, got {arr.min()}")


def set_params(module, specs, owner: str) -> None:
    """Check and store per-astrocyte parameters on ``module`` (in ``__init__``, after ``module.size``).

    ``specs``: ``(name, value, zero_ok, unit)`` tuples; each value must be > 0 (>= 0 with ``zero_ok``) and
    is stored as a ``(module.size,)`` array.
    """
    for name, value, zero_ok, unit in specs:
        check_positive(value, f"{name} ({unit})" if unit else name, owner, allow_zero=zero_ok)
        setattr(module, name, as_param(value, module.size, name, owner))


def check_substeps(substeps: int, owner: str) -> int:
    """The static number of RK4 sub-steps per step: an integer >= 1."""
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"{owner}: substeps must be a positive integer, got {substeps!r}")
    return substeps


def check_smooth(smooth: float, owner: str) -> float:
    """The static width (µM) of the smooth versions of hard edges (``_smooth``): a number >= 0."""
    if not float(smooth) >= 0:
        raise ValueError(f"{owner}: smooth must be >= 0 µM, got {smooth}")
    return float(smooth)


def rk4(f, y, dt: float, substeps: int = 1):
    """``substeps`` classical Runge–Kutta steps of ``dy/dt = f(y)`` (y a pytree) over ``dt``."""
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
