"""Synapse models: kinetics (delta, exponential, dual-exponential, alpha), outputs (current,
conductance, NMDA with Mg²⁺ block), receptor presets and Tsodyks–Markram short-term plasticity."""
from .equation_kinetics import EquationKinetics
from .kinetics import Alpha, Delta, DualExponential, Exponential, Instant
from .outputs import ConductanceOutput, CurrentOutput, NMDAOutput
from .receptors import AMPA, GABA_A, NMDA, Receptor, conductance_exp, current_exp
from .stp import STPState, TsodyksMarkram

__all__ = [
    "Alpha", "Delta", "DualExponential", "EquationKinetics", "Exponential", "Instant",
    "ConductanceOutput", "CurrentOutput", "NMDAOutput",
    "AMPA", "GABA_A", "NMDA", "Receptor", "conductance_exp", "current_exp",
    "STPState", "TsodyksMarkram",
]
