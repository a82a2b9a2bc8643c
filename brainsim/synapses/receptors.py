"""A receptor = synaptic kinetics + output, attached to a postsynaptic population; standard presets."""
from __future__ import annotations

import equinox as eqx

from ..core.contracts import AbstractKinetics, AbstractOutput
from .kinetics import DualExponential, Exponential
from .outputs import ConductanceOutput, CurrentOutput, NMDAOutput


class Receptor(eqx.Module):
    """One synaptic channel of a population, e.g. its AMPA conductance ``ge``.

    All projections that target this receptor add into one shared kinetic state per neuron.
    """

    kinetics: AbstractKinetics
    output: AbstractOutput

    def __check_init__(self):
        if not isinstance(self.kinetics, AbstractKinetics):
            raise TypeError(f"Receptor: kinetics must be an AbstractKinetics (Exponential, Alpha, ...), "
                            f"got {type(self.kinetics).__name__}")
        if not isinstance(self.output, AbstractOutput):
            raise TypeError(f"Receptor: output must be an AbstractOutput (ConductanceOutput, ...), "
                            f"got {type(self.output).__name__}")


def current_exp(tau: float = 5.0) -> Receptor:
    """Exponentially decaying current (pA), time constant ``tau`` ms."""
    return Receptor(Exponential(tau), CurrentOutput())


def conductance_exp(tau: float = 5.0, E_rev: float = 0.0) -> Receptor:
    """Exponentially decaying conductance (nS) with reversal potential ``E_rev`` mV."""
    return Receptor(Exponential(tau), ConductanceOutput(E_rev))


def AMPA(tau: float = 5.0, E_rev: float = 0.0) -> Receptor:
    """AMPA: fast excitatory conductance, decay ``tau`` ms (default 5), reversal 0 mV."""
    return conductance_exp(tau, E_rev)


def GABA_A(tau: float = 10.0, E_rev: float = -80.0) -> Receptor:
    """GABA_A: inhibitory conductance, decay ``tau`` ms (default 10), reversal -80 mV."""
    return conductance_exp(tau, E_rev)


def NMDA(tau_rise: float = 2.0, tau_decay: float = 100.0, E_rev: float = 0.0, mg: float = 1.0) -> Receptor:
    """NMDA: slow dual-exponential conductance with Mg²⁺ block (``mg`` mM)."""
    return Receptor(DualExponential(tau_rise, tau_decay), NMDAOutput(E_rev, mg))
