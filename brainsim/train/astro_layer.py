"""An astrocyte-modulated spiking layer for gradient training.

``AstroLIFLayer`` is a ``brainsim.train.SpikingLayer`` whose neurons receive, besides their input current,
a slow astrocytic current driven by the layer's own activity (an abstraction of astrocytic modulation for
training; the biophysical astrocyte models are ``brainsim.astrocytes``, coupled to neurons in a ``Network`` by
``brainsim.networks.astrocytes.with_astrocytes``)::

    tau_astro da/dt = -a + r(t),    r(t) = spikes of the previous step (local: per neuron; global: mean)
    I_total = I_in - gain_astro * a                                      (pA, C_m = 1 pF ML units)

``gain_astro > 0`` is an activity-dependent, astrocyte-mediated inhibition (homeostasis); ``< 0`` a
slow inward current (excitation). ``tau_astro`` (ms, stored through a positive bijection) and
``gain_astro`` are trainable like every other parameter; spikes carry the usual surrogate gradients.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._types import Array
from ..core.parameters import Constrained, Positive, resolve
from .layers import LayerState, SpikingLayer


class AstroLIFState(NamedTuple):
    neuron: tuple
    synapse: Array
    spikes: Array
    astro: Array  # astrocyte activation a, (n_out,) (local) or (1,) (global)


class AstroLIFLayer(SpikingLayer):
    """``SpikingLayer`` + astrocyte (see module docstring). Extra args: ``tau_astro`` (ms, > 0),
    ``gain_astro`` (pA per unit activation), ``local`` (one astrocyte per neuron, else one per layer)."""

    tau_astro: Constrained
    gain_astro: Array
    local: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key, tau_astro: float = 50.0, gain_astro: float = 1.0,
                 local: bool = False, **kwargs):
        super().__init__(n_in, n_out, key=key, **kwargs)
        if not tau_astro > 0:
            raise ValueError(f"AstroLIFLayer: tau_astro must be > 0 ms, got {tau_astro}")
        if not np.isfinite(gain_astro):
            raise ValueError(f"AstroLIFLayer: gain_astro must be finite, got {gain_astro}")
        self.local = bool(local)
        width = n_out if local else 1
        self.tau_astro = Constrained.from_value(np.full((width,), float(tau_astro)), Positive(0.5), "tau_astro")
        self.gain_astro = jnp.full((width,), float(gain_astro))

    def init(self) -> AstroLIFState:
        base = super().init()
        return AstroLIFState(base.neuron, base.synapse, base.spikes, jnp.zeros(self.gain_astro.shape))

    def step(self, state: AstroLIFState, current: Array):
        p = resolve(self)
        activity = state.spikes if self.local else jnp.mean(state.spikes, keepdims=True)
        decay = jnp.exp(-p.dt / p.tau_astro)
        astro = state.astro * decay + (1.0 - decay) * activity
        current = current - p.gain_astro * astro
        base = LayerState(state.neuron, state.synapse, state.spikes)
        new, out = SpikingLayer.step(self, base, current)
        return AstroLIFState(new.neuron, new.synapse, new.spikes, astro), out
