"""The bottom layer: component contracts, shared types and integrators (imported by every model)."""
from .contracts import (AbstractDrive, AbstractKinetics, AbstractNeuron, AbstractOutput, AbstractPopulationModel,
                        AbstractRule, AbstractSource, AbstractSTP, StepContext, SynapticInput, as_input)
from .integrators import exp_euler_linear, refractory_countdown, rk4

__all__ = ["AbstractDrive", "AbstractKinetics", "AbstractNeuron", "AbstractOutput", "AbstractPopulationModel",
           "AbstractRule", "AbstractSource", "AbstractSTP", "StepContext", "SynapticInput", "as_input",
           "exp_euler_linear", "refractory_countdown", "rk4"]
