"""Surrogate spike functions: re-exported from ``brainsim.spikes`` (the one spike function of the project).

``spike(x, surrogate, slope)``: exact Heaviside ``x > 0`` forward; backward the surrogate derivative
``sigma'(x)`` of the chosen name, normalised to unit integral like the Dirac delta it replaces:

==================  =========================================================
``fast_sigmoid``    SuperSpike, ``k / (2 (1 + k|x|)^2)``
``arctan``          ``k / (2 (1 + (pi k x / 2)^2))``
``sigmoid``         ``k s (1 - s)``, ``s = sigmoid(k x)``
``triangle``        ``k max(0, 1 - k|x|)``
``rectangular``     ``k 1{|x| < 1/(2k)}``
``gaussian``        ``N(x; 0, 1/k)``
``exponential``     SLAYER, ``(k/2) exp(-k|x|)``
``membrane``        ``N(x; 0, std_neurons(x)/k)``: width follows the membrane-potential distribution
==================  =========================================================

Neuron models select one per model (``LIF(..., surrogate="arctan", slope=5.0)``); ``x`` is the distance to
threshold scaled by ``|v_th - v_reset|``.
"""
from __future__ import annotations

from ..spikes import SURROGATES, _SURROGATES, check_surrogate, spike


def surrogate_derivative(name: str, x, slope: float = 10.0):
    """The surrogate derivative ``sigma'(x)`` of ``name`` (what ``jax.grad`` of ``spike`` uses)."""
    return _SURROGATES[check_surrogate(name, "surrogate_derivative")](x, slope)


__all__ = ["SURROGATES", "spike", "surrogate_derivative", "check_surrogate"]
