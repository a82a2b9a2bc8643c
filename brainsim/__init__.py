"""brainsim: a differentiable brain simulator on JAX.

Units everywhere: ms, mV, pA, nS, pF, µM, Hz. The public API is re-exported here; ``docs/architecture.md``
describes the layers and the contracts between components.
"""
from . import (adjoints, connectivity, core, counts, distributions, evaluation, inputs, monitors, neurons, networks,
               plasticity, projections, synapses)
from .distributions import Normal, Uniform
from .core import (AbstractDrive, AbstractKinetics, AbstractNeuron, AbstractOutput, AbstractRule, AbstractSource,
                   AbstractSTP, StepContext, SynapticInput)
from .inputs import CurrentStep, NoiseCurrent, PoissonInput, PoissonSource, SpikeTimes
from .network import Network, NetworkState, Population
from .neurons import HH, LIF, QIF, AdaptiveLIF, AdEx, EquationNeuron, ExpIF, Izhikevich, LeakyIntegrator, TraubMilesHH
from .projections import (AbstractProjection, DelayedProjection, EventProjection, GapJunctionProjection,
                          PlasticProjection, Projection)
from .propagation import EventOperator
from .delays import DelayedEventOperator
from .adjoints import AbstractAdjoint, Checkpointed, Direct, Truncated
from .evaluation import AbstractOrder, LayerByLayer, StepByStep
from .monitors import (AbstractMonitor, CountMonitor, MeanMonitor, ProjectionMonitor, RateMonitor, SpikeMonitor,
                       StateMonitor)
from .simulate import CheckpointError, NonFiniteError, SimulationInterrupted, SimulationResult, run, simulate
from .spikes import spike
from .sweeps import sweep, with_params
from .synapses import (AMPA, GABA_A, NMDA, Alpha, ConductanceOutput, CurrentOutput, Delta, DualExponential,
                       Exponential, NMDAOutput, Receptor, TsodyksMarkram)

__version__ = "0.1.0"
from . import train  # noqa: E402  (train builds on everything above)

__all__ = [
    "adjoints", "connectivity", "core", "counts", "distributions", "Normal", "Uniform", "evaluation", "inputs", "monitors", "neurons", "networks", "plasticity", "projections", "synapses", "train",
    "AbstractDrive", "AbstractKinetics", "AbstractNeuron", "AbstractOutput", "AbstractRule", "AbstractSource",
    "AbstractSTP", "StepContext", "SynapticInput",
    "CurrentStep", "NoiseCurrent", "PoissonInput", "PoissonSource", "SpikeTimes",
    "Network", "NetworkState", "Population",
    "HH", "LIF", "QIF", "AdaptiveLIF", "AdEx", "EquationNeuron", "ExpIF", "Izhikevich", "LeakyIntegrator", "TraubMilesHH",
    "AbstractProjection", "DelayedProjection", "EventProjection", "GapJunctionProjection", "PlasticProjection",
    "Projection",
    "EventOperator", "DelayedEventOperator",
    "AbstractAdjoint", "Checkpointed", "Direct", "Truncated",
    "AbstractOrder", "LayerByLayer", "StepByStep",
    "AbstractMonitor", "CountMonitor", "MeanMonitor", "ProjectionMonitor", "RateMonitor", "SpikeMonitor", "StateMonitor",
    "CheckpointError", "NonFiniteError", "SimulationInterrupted", "SimulationResult", "run", "simulate",
    "spike", "sweep", "with_params",
    "AMPA", "GABA_A", "NMDA", "Alpha", "ConductanceOutput", "CurrentOutput", "Delta", "DualExponential",
    "Exponential", "NMDAOutput", "Receptor", "TsodyksMarkram",
]
