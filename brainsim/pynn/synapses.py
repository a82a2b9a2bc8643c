"""PyNN synapse types of the brainsim backend. Parameters stay in PyNN units (weight nA or uS, delay ms, tau ms);
the projection converts them when it builds the brainsim projection."""
from __future__ import annotations

from pyNN.standardmodels import build_translations, synapses

from .simulator import state


def _identity(base):
    return build_translations(*[(n, n) for n in base.default_parameters])


class _MinDelay:
    def _get_minimum_delay(self):
        return state.dt if state._min_delay == "auto" else state._min_delay


class StaticSynapse(_MinDelay, synapses.StaticSynapse):
    __doc__ = synapses.StaticSynapse.__doc__
    translations = _identity(synapses.StaticSynapse)


class TsodyksMarkramSynapse(_MinDelay, synapses.TsodyksMarkramSynapse):
    """Tsodyks–Markram depression/facilitation, as brainsim's ``TsodyksMarkram`` (one state per presynaptic
    neuron; U, tau_rec, tau_facil taken as homogeneous within a projection)."""

    translations = _identity(synapses.TsodyksMarkramSynapse)


class STDPMechanism(_MinDelay, synapses.STDPMechanism):
    """Pair STDP as brainsim's ``STDP`` rule (``brainsim.plasticity.stdp``), one rule per projection (its
    parameters taken as homogeneous); the learned weights are read back into the projection after every run.
    Only ``dendritic_delay_fraction = 1`` (the delay is in the dendrite: the rule sees presynaptic spikes at
    emission, as brainsim's event-driven rules do)."""

    __doc__ = synapses.STDPMechanism.__doc__
    base_translations = build_translations(("weight", "weight"), ("delay", "delay"),
                                           ("dendritic_delay_fraction", "dendritic_delay_fraction"))

    def __init__(self, timing_dependence=None, weight_dependence=None, voltage_dependence=None,
                 dendritic_delay_fraction=1.0, weight=0.0, delay=None):
        if dendritic_delay_fraction != 1:
            raise ValueError("brainsim.pynn: STDP needs dendritic_delay_fraction = 1")
        if voltage_dependence is not None:
            raise ValueError("brainsim.pynn: voltage-dependent STDP is not available")
        super().__init__(timing_dependence, weight_dependence, voltage_dependence, dendritic_delay_fraction,
                         weight, delay)


class SpikePairRule(synapses.SpikePairRule):
    __doc__ = synapses.SpikePairRule.__doc__
    translations = _identity(synapses.SpikePairRule)
    possible_models = {"brainsim_stdp"}


class AdditiveWeightDependence(synapses.AdditiveWeightDependence):
    """Additive (PyNN): potentiation ``A_plus w_max``, depression ``A_minus w_max``, clipped to [w_min, w_max]."""

    translations = _identity(synapses.AdditiveWeightDependence)
    possible_models = {"brainsim_stdp"}
    bounds = "hard"


class MultiplicativeWeightDependence(synapses.MultiplicativeWeightDependence):
    """Multiplicative (PyNN): potentiation ``A_plus (w_max - w)``, depression ``A_minus (w - w_min)``: brainsim's
    soft bounds."""

    translations = _identity(synapses.MultiplicativeWeightDependence)
    possible_models = {"brainsim_stdp"}
    bounds = "soft"
