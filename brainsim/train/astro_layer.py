"""An astrocyte-modulated spiking layer for gradient training: a ``SpikingLayer`` of ``AstroModulated`` neurons.

The neurons receive, besides their input current, a slow astrocytic current driven by the layer's own activity
(``brainsim.astrocytes.AstroModulated``)::

    tau_astro da/dt = -a + r(t),    r(t) = spikes of the previous step (local: per neuron; global: mean)
    I_total = I_in - gain_astro * a                                      (pA, C_m = 1 pF ML units)

``tau_astro`` (ms, stored through a positive bijection) and ``gain_astro`` (unconstrained) are declared learnable
(``Constrained``), so they train by default with the weights (``layer.neuron.tau_astro``, ``layer.neuron.gain_astro``); spikes carry the usual surrogate gradients.
"""
from __future__ import annotations

import equinox as eqx
import numpy as np

from ..astrocytes.modulated import AstroModulated
from ..core.parameters import Constrained, Identity, Positive
from .layers import SpikingLayer, ml_lif


def AstroLIFLayer(n_in: int, n_out: int, *, key, tau_astro: float = 50.0, gain_astro: float = 1.0,
                  local: bool = False, neuron=None, **kwargs) -> SpikingLayer:
    """A ``SpikingLayer`` whose neurons (default ``ml_lif(n_out)``) are ``AstroModulated`` (module docstring).

    Args: those of ``SpikingLayer``, and ``tau_astro`` (ms, > 0), ``gain_astro`` (pA per unit activation),
    ``local`` (one astrocyte per neuron, else one per layer).
    """
    if not np.isfinite(tau_astro) or not tau_astro > 0:
        raise ValueError(f"AstroLIFLayer: tau_astro must be > 0 ms, got {tau_astro}")
    if not np.isfinite(gain_astro):
        raise ValueError(f"AstroLIFLayer: gain_astro must be finite, got {gain_astro}")
    inner = ml_lif(n_out) if neuron is None else neuron
    modulated = AstroModulated(inner, tau_astro=tau_astro, gain_astro=gain_astro, local=local)
    modulated = eqx.tree_at(lambda m: m.tau_astro, modulated,
                            Constrained.from_value(np.asarray(modulated.tau_astro), Positive(0.5), "tau_astro"))
    modulated = eqx.tree_at(lambda m: m.gain_astro, modulated,
                            Constrained.from_value(np.asarray(modulated.gain_astro), Identity(), "gain_astro"))
    return SpikingLayer(n_in, n_out, key=key, neuron=modulated, **kwargs)
