"""brainsim: a differentiable brain simulator on JAX.

Units everywhere: ms, mV, pA, nS, pF, µM, Hz.
"""
from . import neurons
from .neurons import LIF, AdaptiveLIF, SynapticInput
from .neurons import HH, QIF, AdEx, ExpIF, Izhikevich, TraubMilesHH
from .spikes import spike

__version__ = "0.1.0"
from . import train
