"""Local learning rules: STDP family, three-factor rules, homeostasis and Hebbian variants.

Every rule (an ``AbstractRule``) attaches to a ``Projection(..., plasticity=rule)``, a
``brainsim.projections.PlasticProjection``; its state (first field: the ELL weights) lives in the projection's
state, ``NetworkState.projections[name].rule``, and is updated after delivery in every network step. Rules
can also be used directly: ``state = rule.init_state(weights, n_pre, n_post)`` and
``state = rule.update(state, targets, ReverseIndex(targets, n_post), pre, post, dt, modulator=m)``.
"""
from .base import ReverseIndex, compact, for_each_event
from .modulators import Signal, SignalState
from .stdp import STDP, STDPState, TripletSTDP
from .three_factor import (HebbianState, ModulatedHebbian, RewardModulatedSTDP, RewardSTDPState,
                           attention_gated_signal)
from .homeostasis import (AntiHebbian, HomeostaticThreshold, Oja, RateState, SynapticScaling, ThresholdState,
                          oja_dw, rate_trace)
