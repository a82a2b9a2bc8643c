"""Tsodyks–Markram short-term plasticity, one state per presynaptic neuron.

Between spikes (exact)::

    tau_f du/dt = U - u          (facilitation; u is the utilisation of resources)
    tau_d dx/dt = 1 - x          (depression; x is the fraction of available resources)

At a presynaptic spike: ``u <- u + U (1 - u)``, the released fraction is ``r = u x`` (it multiplies
the synaptic weight), then ``x <- x - r``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .._checks import check_finite, check_positive
from .._units import magnitude
from .._types import Array
from ..core.contracts import AbstractSTP


class STPState(NamedTuple):
    u: Array  # utilisation, dimensionless in [0, 1]
    x: Array  # available resources, dimensionless in [0, 1]


class TsodyksMarkram(AbstractSTP):
    """Tsodyks–Markram synapse dynamics.

    Args:
        U: baseline utilisation (release probability), in (0, 1].
        tau_f: facilitation time constant, ms (> 0).
        tau_d: depression (recovery) time constant, ms (> 0).
    """

    U: Array
    tau_f: Array  # ms
    tau_d: Array  # ms
    reads_signal = False

    def __init__(self, U: float = 0.5, tau_f: float = 20.0, tau_d: float = 200.0):
        check_finite(U, "U", "TsodyksMarkram")
        if not 0.0 < float(U) <= 1.0:
            raise ValueError(f"TsodyksMarkram: U must be in (0, 1], got {U}")
        check_positive(tau_f, "tau_f (ms)", "TsodyksMarkram")
        check_positive(tau_d, "tau_d (ms)", "TsodyksMarkram")
        self.U = jnp.asarray(magnitude(U), dtype=jnp.result_type(float))
        self.tau_f = jnp.asarray(magnitude(tau_f), dtype=jnp.result_type(float))
        self.tau_d = jnp.asarray(magnitude(tau_d), dtype=jnp.result_type(float))

    @property
    def size(self) -> None:
        """None: one state per presynaptic neuron of whatever projection it serves (``init(size)``)."""
        return None

    def init(self, size: int) -> STPState:
        return STPState(u=jnp.full((size,), self.U), x=jnp.ones((size,)))

    def step(self, state: STPState, spikes: Array, dt: float, signal=None) -> tuple[STPState, Array]:
        """Relax over dt, then apply this step's spikes; returns the weight scaling per presynaptic neuron."""
        if signal is not None:
            raise ValueError("TsodyksMarkram: reads no signal (gliotransmitter-modulated release is "
                             "brainsim.astrocytes.TripartiteSynapse)")
        u = self.U + (state.u - self.U) * jnp.exp(-dt / self.tau_f)
        x = 1.0 + (state.x - 1.0) * jnp.exp(-dt / self.tau_d)
        u_spike = u + self.U * (1.0 - u)
        released = u_spike * x
        u = jnp.where(spikes > 0, u_spike, u)
        x = x - spikes * released
        return STPState(u=u, x=x), spikes * released
