"""Astrocytes and neuron–glia interaction.

Models (common contract: ``eqx.Module`` parameters validated at construction, ``NamedTuple`` state,
pure ``step(state, inputs, dt)``; units ms, µM, pA):

* ``LiRinzel``: IP3R Ca²⁺ dynamics as NEST's ``astrocyte_lr_1994``, with its slow inward current output;
* ``GChI``: De Pittà et al. 2009 IP3 metabolism (PLCβ, PLCδ, IP3-3K, IP-5P) with glutamate receptors and
  gliotransmitter release (De Pittà et al. 2011);
* ``GapJunctions``: IP3 diffusion between astrocytes;
* ``TripartiteSynapse``: gliotransmitter-modulated presynaptic release;
* ``MultiRate`` / ``run_multirate``: astrocytes stepped at 1–50 ms inside 0.1 ms neuron steps;
* ``tripartite_bernoulli_with_pool``: NEST's third-factor connectivity rule;
* ``plasticity``: astrocyte-modulated STDP (NALSM) and the branching factor.

The models are populations like neurons (``AbstractAstrocyte``); ``brainsim.networks.astrocytes.with_astrocytes``
couples them to the neurons of a ``Network`` (spikes -> IP3, slow inward current -> neurons, gliotransmitter ->
presynaptic release). ``AstroModulated`` wraps a neuron model with a slow astrocytic current driven by its own
spikes (an abstraction for training; ``brainsim.train.AstroLIFLayer`` builds a layer of it).
"""
from .gap_junctions import GapJunctions
from .gchi import GChI, GChIState
from .li_rinzel import LiRinzel, LiRinzelState
from .modulated import AstroModulated, AstroModulatedState
from .multirate import MultiRate, MultiRateState, run_multirate
from .pool import Tripartite, astrocyte_pools, tripartite_bernoulli_with_pool
from .tripartite import TripartiteState, TripartiteSynapse
from .plasticity import AstroSTDP, AstroSTDPState, GlobalAstrocyte, branching_factor

__all__ = [
    "AstroModulated", "AstroModulatedState", "GapJunctions",
    "GChI", "GChIState",
    "LiRinzel", "LiRinzelState", "MultiRate", "MultiRateState", "run_multirate", "Tripartite",
    "astrocyte_pools", "tripartite_bernoulli_with_pool", "TripartiteState", "TripartiteSynapse",
    "AstroSTDP", "AstroSTDPState", "GlobalAstrocyte", "branching_factor",
]
