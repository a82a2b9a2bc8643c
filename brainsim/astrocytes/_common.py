"""Pieces shared by the astrocyte models: RK4 stepping and construction-time checks."""
from __future__ import annotations

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
