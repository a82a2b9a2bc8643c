"""Neuron models: pure state-transition models sharing the contract in ``neurons.base``."""
from .base import NeuronModel, SynapticInput
from .lif import LIF, AdaptiveLIF, ALIFState, LIFState
from .nonlinear_if import QIF, AdEx, AdExState, ExpIF, ExpIFState
from .izhikevich import Izhikevich, IzhikevichState
from .hh import HH, HHState, TraubMilesHH
from .leaky_integrator import LeakyIntegrator, LeakyIntegratorState
from .equations import EquationNeuron

__all__ = ["NeuronModel", "SynapticInput", "LIF", "LIFState", "AdaptiveLIF", "ALIFState"]
__all__ += ["ExpIF", "ExpIFState", "QIF", "AdEx", "AdExState", "Izhikevich", "IzhikevichState"]
__all__ += ["HH", "TraubMilesHH", "HHState", "LeakyIntegrator", "LeakyIntegratorState"]
__all__ += ["EquationNeuron"]
