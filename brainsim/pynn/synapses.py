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
