"""Distributions of values drawn once when a network is built: synaptic weights and delays (connectivity builders),
initial conditions (``Population(initial={"v": Normal(-58.0, 10.0)})``).

A distribution is called as ``dist(rng, n)`` with a NumPy ``Generator`` (the connectivity builders draw on the host)
or with a JAX key (``Network.init(dt, key=...)``, traceable), and returns ``n`` values. Bounds are handled as NEST's
``redraw`` (values outside ``[low, high]`` are drawn again: a truncated distribution) or ``clip``.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, check_finite, numbers

BOUNDS = ("redraw", "clip")


def _number(value, name: str, owner: str) -> float:
    """One finite number (the messages of ``brainsim._checks``)."""
    check_finite(value, name, owner)
    array = numbers(value, name, owner)
    if array.ndim:
        raise ValueError(f"{owner}: parameter {name!r} must be one number, got shape {array.shape}")
    return float(array)


class AbstractDistribution(abc.ABC):
    """``dist(source, n)``: ``n`` values drawn with ``source``, a NumPy ``Generator`` or a JAX key."""

    @abc.abstractmethod
    def __call__(self, source, n: int):
        ...


@dataclasses.dataclass(frozen=True)
class Uniform(AbstractDistribution):
    """Uniform on ``[low, high)`` (in the unit of what it draws)."""

    low: float
    high: float

    def __post_init__(self):
        low, high = _number(self.low, "low", "Uniform"), _number(self.high, "high", "Uniform")
        if not high > low:
            raise ValueError(f"Uniform: high ({high}) must exceed low ({low})")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def __call__(self, source, n: int):
        if isinstance(source, np.random.Generator):
            return source.uniform(self.low, self.high, n)
        return jax.random.uniform(source, (n,), minval=self.low, maxval=self.high)


@dataclasses.dataclass(frozen=True)
class Normal(AbstractDistribution):
    """Normal with ``mean`` and standard deviation ``std``, optionally bounded to ``[low, high]``.

    ``bounds="redraw"`` (default) draws values outside the bounds again (the normal truncated to them, e.g. NEST's
    weights of one sign); ``"clip"`` moves them onto the nearest bound (e.g. delays >= dt).
    """

    mean: float
    std: float
    low: Optional[float] = None
    high: Optional[float] = None
    bounds: str = "redraw"

    def __post_init__(self):
        owner = "Normal"
        object.__setattr__(self, "mean", _number(self.mean, "mean", owner))
        std = _number(self.std, "std", owner)
        if std < 0:
            raise ValueError(f"{owner}: std must be >= 0, got {std}")
        object.__setattr__(self, "std", std)
        for name in ("low", "high"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _number(getattr(self, name), name, owner))
        check_choice(self.bounds, BOUNDS, "bounds", owner)
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        if not high > low:
            raise ValueError(f"Normal: high ({high}) must exceed low ({low})")
        if self.bounds == "redraw" and self.std == 0 and not low <= self.mean <= high:
            raise ValueError(f"Normal: the mean {self.mean} with std 0 lies outside [{low}, {high}]")
        if self.bounds == "redraw" and self.std > 0 and ((high - self.mean) / self.std < -8
                                                         or (low - self.mean) / self.std > 8):
            raise ValueError(f"Normal: [{low}, {high}] lies more than 8 std from the mean {self.mean}: "
                             f"redrawing would almost never end")

    def _limits(self):
        return (-np.inf if self.low is None else self.low), (np.inf if self.high is None else self.high)

    def __call__(self, source, n: int):
        low, high = self._limits()
        if isinstance(source, np.random.Generator):
            values = source.normal(self.mean, self.std, n)
            if self.bounds == "clip":
                return np.clip(values, low, high)
            bad = (values < low) | (values > high)
            while bad.any():  # redraw until every value lies within the bounds
                values[bad] = source.normal(self.mean, self.std, int(bad.sum()))
                bad = (values < low) | (values > high)
            return values
        if self.std == 0:
            return jnp.full((n,), self.mean)
        if self.bounds == "clip":
            return jnp.clip(self.mean + self.std * jax.random.normal(source, (n,)), low, high)
        lower, upper = (low - self.mean) / self.std, (high - self.mean) / self.std
        return self.mean + self.std * jax.random.truncated_normal(source, lower, upper, (n,))
