"""Hard edges of astrocyte models (thresholds, clamps, rectified logs) and their smooth versions.

Every model takes a static ``smooth`` width (same unit as the thresholded quantity, e.g. µM). With
``smooth = 0`` the functions are the exact hard versions used by NEST/Brian2 (thresholds still have a
surrogate derivative through ``brainsim.spikes.spike``); with ``smooth > 0`` they are replaced by
softplus/sigmoid versions whose derivatives are nonzero everywhere, so gradients flow through them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array
from ..spikes import spike


def relu(x: Array, smooth: float) -> Array:
    """``max(x, 0)``, or ``smooth * softplus(x / smooth)`` when ``smooth > 0``."""
    if smooth > 0:
        return smooth * jax.nn.softplus(x / smooth)
    return jnp.maximum(x, 0.0)


def clip(x: Array, lo, hi, smooth: float) -> Array:
    """``clip(x, lo, hi)``, or a softplus-rounded version when ``smooth > 0``."""
    if smooth > 0:
        return lo + relu(x - lo, smooth) - relu(x - hi, smooth)
    return jnp.clip(x, lo, hi)


def step_fn(x: Array, smooth: float, surrogate: str = "fast_sigmoid", slope: float = 10.0) -> Array:
    """Heaviside ``x > 0``: exact forward with a surrogate derivative, or ``sigmoid(x / smooth)``."""
    if smooth > 0:
        return jax.nn.sigmoid(x / smooth)
    return spike(x, surrogate, slope)


def sign(x: Array, smooth: float) -> Array:
    """``sign(x)``, or ``tanh(x / smooth)`` when ``smooth > 0``."""
    if smooth > 0:
        return jnp.tanh(x / smooth)
    return jnp.sign(x)
