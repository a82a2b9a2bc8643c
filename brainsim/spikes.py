"""The one spike function: exact Heaviside forward, selectable surrogate derivative backward.

``spike(x)`` with ``x = (v - v_th) / scale`` returns 1.0 where ``x > 0`` and 0.0 elsewhere. Under
``jax.grad`` its derivative is the chosen surrogate ``sigma'(x)`` instead of a Dirac delta, so the same
neuron models serve exact simulation and surrogate-gradient training.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

from ._checks import positive_number
from ._types import Array

def _membrane_gaussian(x: Array, k: float) -> Array:
    spread = jax.lax.stop_gradient(jnp.std(x, axis=-1, keepdims=True)) if x.ndim else jnp.ones_like(x)
    sigma = jnp.maximum(spread, 1e-3) / k
    return jnp.exp(-0.5 * (x / sigma) ** 2) / (sigma * jnp.sqrt(2.0 * jnp.pi))


# Each surrogate derivative is a function of the scaled distance to threshold x and a slope k.
# They are normalised to integrate to 1 over x, matching the Dirac delta they replace.
_SURROGATES: dict[str, Callable[[Array, float], Array]] = {
    # SuperSpike / fast sigmoid (Zenke & Ganguli 2018): k / (2 (1 + k|x|)^2)
    "fast_sigmoid": lambda x, k: k / (2.0 * (1.0 + k * jnp.abs(x)) ** 2),
    # arctan (Fang et al. 2021): k / (2 (1 + (pi k x / 2)^2))
    "arctan": lambda x, k: k / (2.0 * (1.0 + (jnp.pi * k * x / 2.0) ** 2)),
    # logistic sigmoid derivative: k s (1 - s), s = sigmoid(k x)
    "sigmoid": lambda x, k: k * jax.nn.sigmoid(k * x) * (1.0 - jax.nn.sigmoid(k * x)),
    # triangle (Esser et al. 2016): k max(0, 1 - k|x|)
    "triangle": lambda x, k: k * jnp.maximum(0.0, 1.0 - k * jnp.abs(x)),
    # rectangular / straight-through window of width 1/k
    "rectangular": lambda x, k: k * (jnp.abs(x) < 0.5 / k).astype(x.dtype),
    # Gaussian with standard deviation 1/k
    "gaussian": lambda x, k: k / jnp.sqrt(2.0 * jnp.pi) * jnp.exp(-0.5 * (k * x) ** 2),
    # exponential / SLAYER (Shrestha & Orchard 2018): (k/2) exp(-k|x|)
    "exponential": lambda x, k: 0.5 * k * jnp.exp(-k * jnp.abs(x)),
    # membrane-potential-distribution-aware Gaussian (after MPD-AGL, Jiang et al. 2024): the width
    # follows the spread of the population's membrane potentials, sigma = std_neurons(x) / k (the std is
    # taken over the last, neuron axis and is not differentiated), so the surrogate keeps covering the
    # membrane distribution as it widens or narrows during training
    "membrane": lambda x, k: _membrane_gaussian(x, k),
}

SURROGATES = tuple(_SURROGATES)


@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def spike(x: Array, surrogate: str = "fast_sigmoid", slope: float = 10.0) -> Array:
    """Heaviside step ``x > 0`` as float, with surrogate derivative ``surrogate`` of ``slope``."""
    return (x > 0).astype(jnp.result_type(x, float))


@spike.defjvp
def _spike_jvp(surrogate, slope, primals, tangents):
    (x,), (dx,) = primals, tangents
    out = spike(x, surrogate, slope)
    return out, _SURROGATES[surrogate](x, slope) * dx


def check_slope(slope, owner: str) -> float:
    """The surrogate's steepness: a finite number > 0 (NaN would make every gradient NaN)."""
    return positive_number(slope, "slope (the surrogate's steepness)", "", owner)


def check_surrogate(name: str, owner: str) -> str:
    if name not in _SURROGATES:
        raise ValueError(f"{owner}: unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}")
    return name
