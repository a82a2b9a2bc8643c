"""Validation helpers used by public constructors and entry points.

They run on concrete (host) values at construction time, never inside traced code, so a bad
parameter fails with a clear message instead of silently producing NaNs.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array, ArrayLike
from ._units import is_quantity, magnitude


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _parameter(name: str) -> str:
    return name.split(" (")[0]  # the name without its unit


def numbers(value, name: str, owner: str) -> np.ndarray:
    """A concrete ``value`` as a float64 array, or ``TypeError`` naming the parameter (strings, None, objects).
    A quantity with units (pint, brainunit, quantities) is converted to brainsim's unit of its dimension."""
    if is_quantity(value):
        try:
            value = magnitude(value)
        except ValueError as e:
            raise ValueError(f"{owner}: parameter {_parameter(name)!r}: {e}") from None
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{owner}: parameter {_parameter(name)!r} must be a number or an array of numbers, "
                        f"got {value!r}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: parameter {_parameter(name)!r} must be a number or an array of numbers, "
                        f"got {value!r}") from None


def as_param(value: ArrayLike, size: int, name: str, owner: str) -> Array:
    """Broadcast a scalar or per-neuron parameter to shape ``(size,)`` float32, checking finiteness (a quantity with
    units is converted to brainsim's units first)."""
    if is_quantity(value):
        value = numbers(value, name, owner)
    if not _is_concrete(value):
        return jnp.broadcast_to(jnp.asarray(value, dtype=jnp.result_type(float)), (size,))
    arr = numbers(value, name, owner)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, size)):
        raise ValueError(
            f"{owner}: parameter {name!r} has shape {arr.shape}; expected a scalar or shape ({size},)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: parameter {name!r} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        cast = arr.astype(jnp.result_type(float))
    if not np.all(np.isfinite(cast)):
        raise ValueError(f"{owner}: parameter {name!r} is too large for {cast.dtype} (got {value!r})")
    # broadcast on the host: one transfer, no program compiled per population size
    return jnp.asarray(np.broadcast_to(cast, (size,)))


def check_finite(value: ArrayLike, name: str, owner: str) -> None:
    """Raise ``ValueError`` if a concrete ``value`` contains NaN or an infinity."""
    if not _is_concrete(value):
        return
    arr = numbers(value, name, owner)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: parameter {_parameter(name)!r} contains NaN or infinite values, got {value!r}")


def check_positive(value: ArrayLike, name: str, owner: str, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` if any element of a concrete ``value`` is NaN, infinite, or <= 0 (< 0 with
    ``allow_zero``)."""
    if not _is_concrete(value):
        return
    check_finite(value, name, owner)
    arr = numbers(value, name, owner)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad):
        relation = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be {relation}, got {arr.min() if arr.size else arr}")


def check_size(size: int, owner: str, name: str = "size") -> int:
    """A positive integer count (neurons, sources), else ``ValueError`` naming ``name``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {size!r}")
    return int(size)


def check_mapping(value, name: str, owner: str) -> dict:
    """A mapping (``None`` = empty) as a ``dict``, else ``TypeError`` naming ``name``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{owner}: {name} must be a dict of name -> object, got {value!r}")
    return dict(value)


def check_count(value, owner: str, name: str) -> int:
    """An integer >= 0 (a number of synapses, steps, ...), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{owner}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


def positive_number(value, name: str, unit: str, owner: str, *, allow_zero: bool = False) -> float:
    """A concrete finite number > 0 (>= 0 with ``allow_zero``) as a float, else ``ValueError`` naming ``name`` and
    its ``unit``."""
    try:
        number = float(magnitude(value))
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number{' in ' + unit if unit else ''}, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        relation = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be {relation}{' ' + unit if unit else ''} and finite, got {value!r}")
    return number


def nonnegative_number(value, name: str, unit: str, owner: str) -> float:
    """``positive_number`` that also accepts 0."""
    return positive_number(value, name, unit, owner, allow_zero=True)


def check_dt(dt: float, owner: str = "brainsim") -> float:
    """Time step in ms: must be a finite number > 0 (a traced dt passes unchecked)."""
    return positive_number(dt, "dt", "ms", owner) if _is_concrete(dt) else dt


def check_choice(value: str, choices: tuple[str, ...], name: str, owner: str) -> str:
    if value not in choices:
        raise ValueError(f"{owner}: unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_key(key, owner: str):
    """A JAX PRNG key: a typed key (``jax.random.key(seed)``) or a raw ``uint32[2]`` one (``jax.random.PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
                              or (dtype == np.uint32 and np.shape(key)[-1:] == (2,))):
        return key
    raise TypeError(f"{owner}: key must be a JAX PRNG key such as jax.random.key(0), got {key!r}")


def to_steps(ms, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Times or delays in ms to whole steps of ``dt`` ms by brainsim's one rule: the nearest step, halves up.

    Returns ``(steps int64, off_grid bool)``, ``off_grid`` marking values that were not already (within 1e-6
    of a step) on the grid."""
    x = np.asarray(ms, dtype=np.float64) / float(dt)
    steps = np.floor(x + 0.5 + 1e-9 * np.maximum(1.0, np.abs(x)))
    return steps.astype(np.int64), np.abs(x - steps) > 1e-6 * np.maximum(1.0, np.abs(x))


def check_steps(n_steps, owner: str) -> int:
    """A number of steps: a Python/NumPy integer >= 0."""
    return check_count(n_steps, owner, "n_steps")


def warn_implausible(owner: str, *, time_constants: Mapping = (), voltages: Mapping = (), threshold=None,
                     reset=None) -> None:
    """Warn about concrete parameters that look like a unit mistake: time constants (ms) below 0.1 (seconds given
    as numbers?), membrane potentials (mV) all within (-1, 1) with a resting potential (the first of ``voltages``)
    between -0.2 and 0 (volts?), or a threshold at or below the reset potential."""
    import warnings

    def values(x):
        return None if x is None or not _is_concrete(x) else np.asarray(x, np.float64)

    for name, tau in dict(time_constants).items():
        tau = values(tau)
        if tau is not None and tau.size and np.all(tau > 0) and np.all(tau < 0.1):
            warnings.warn(f"{owner}: {name} = {tau.ravel()[0]:g} ms is very short; brainsim's time unit is the ms "
                          f"(give {tau.ravel()[0] * 1000:g} for {tau.ravel()[0]:g} s)", stacklevel=3)
    given = [v for v in (values(x) for x in dict(voltages).values()) if v is not None and v.size]
    rest = given[0] if given else None  # a resting potential of -0.2 .. 0 mV with the rest as small: volts
    if rest is not None and np.all((rest > -0.2) & (rest < 0)) and all(np.all(np.abs(v) < 1.0) for v in given):
        warnings.warn(f"{owner}: the potentials {', '.join(dict(voltages))} all lie within (-1, 1) mV with a negative "
                      f"resting potential; brainsim's voltage unit is the mV (volts given as numbers?)", stacklevel=3)
    th, re = values(threshold), values(reset)
    if th is not None and re is not None and np.any(th <= re):
        warnings.warn(f"{owner}: the threshold is at or below the reset potential for some neurons (v_th <= v_reset): "
                      f"they would fire at every step after a spike", stacklevel=3)

