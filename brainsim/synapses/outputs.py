"""How a synaptic variable g drives the postsynaptic membrane: as a current or a conductance."""
from __future__ import annotations

import jax.numpy as jnp

from .._checks import check_finite, check_positive
from .._units import magnitude
from .._types import Array
from ..core.contracts import AbstractOutput, SynapticInput


class CurrentOutput(AbstractOutput):
    """Current-based synapse: g is a current in pA, added as is."""

    def input(self, g: Array, v: Array) -> SynapticInput:
        z = jnp.zeros_like(g)
        return SynapticInput(g, z, z)


class ConductanceOutput(AbstractOutput):
    """Conductance-based synapse: g in nS drives ``I = g (E_rev - v)`` pA.

    Args:
        E_rev: reversal potential, mV.
    """

    E_rev: Array  # mV

    def __init__(self, E_rev: float = 0.0):
        check_finite(E_rev, "E_rev (mV)", "ConductanceOutput")
        self.E_rev = jnp.asarray(magnitude(E_rev), dtype=jnp.result_type(float))

    def input(self, g: Array, v: Array) -> SynapticInput:
        return SynapticInput(jnp.zeros_like(g), g, g * self.E_rev)


class NMDAOutput(AbstractOutput):
    """NMDA conductance with voltage-dependent Mg²⁺ block (Jahr & Stevens 1990).

    ``I = g B(v) (E_rev - v)``, ``B(v) = 1 / (1 + [Mg²⁺]/3.57 mM · exp(-0.062 v/mV))``. The block is
    evaluated at the membrane potential at the start of the step and enters as a current.

    Args:
        E_rev: reversal potential, mV.
        mg: extracellular magnesium concentration, mM (>= 0).
    """

    E_rev: Array  # mV
    mg: Array  # mM

    def __init__(self, E_rev: float = 0.0, mg: float = 1.0):
        check_finite(E_rev, "E_rev (mV)", "NMDAOutput")
        check_positive(mg, "mg (mM)", "NMDAOutput", allow_zero=True)
        self.E_rev = jnp.asarray(magnitude(E_rev), dtype=jnp.result_type(float))
        self.mg = jnp.asarray(magnitude(mg), dtype=jnp.result_type(float))

    def block(self, v: Array) -> Array:
        return 1.0 / (1.0 + self.mg / 3.57 * jnp.exp(-0.062 * v))

    def input(self, g: Array, v: Array) -> SynapticInput:
        current = g * self.block(v) * (self.E_rev - v)
        z = jnp.zeros_like(g)
        return SynapticInput(current, z, z)
