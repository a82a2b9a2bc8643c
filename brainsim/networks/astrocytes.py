"""Neurons and astrocytes in one ordinary ``Network``: ``with_astrocytes(network, astrocytes, ...)``.

The astrocytes become a population (``name``, default ``"astro"``, placed after the neurons) and each coupling an
ordinary component, so ``simulate``/``run``, monitors, ``jax.grad`` and ``jax.vmap`` treat them as any other:

* ``spike_couplings = {population: (n_pre, n_astro) weights}``: the spikes of ``population`` reach the
  astrocytes' receptor ``"glu"`` (``Instant``) through an ``EventProjection`` with ``same_step=True``, so the
  astrocytes integrate the spikes of the step in which they were emitted (NEST's ``third_in``; for ``LiRinzel``
  each unit of weight raises IP3 by ``delta_IP3``);
* ``sic_couplings = {population: (n_astro, n_post) weights}``: the astrocytes' output, the slow inward current
  (pA), reaches the neurons' receptor ``"sic"`` (``Instant``, ``CurrentOutput``, added to them) through a
  ``GradedProjection`` and drives them during the next step (NEST's ``sic_connection``, delay one step);
* ``glio_couplings = {projection: (n_astro, n_pre) weights}``: the extracellular gliotransmitter ``G_A`` (µM) of
  the astrocytes, as the previous step left it, reaches the presynaptic terminals of ``projection`` (whose
  ``stp`` is a ``TripartiteSynapse``) as its signal (``StateSignal``); the projection then releases with the
  gliotransmitter-modulated probability of De Pittà et al. 2011 / Stimberg et al. 2019. Needs astrocytes with a
  ``G_A`` variable (``GChI``) and non-negative weights.

The astrocytes' state is ``state.neurons[name]``: monitors read its variables by name (``StateMonitor("astro",
"Ca")``, through a ``MultiRate`` wrapper too). Initial conditions: ``initial={"IP3": 0.4}`` (keyword arguments of
the astrocyte model's ``init``).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
from jax.experimental import sparse

from ..core.contracts import AbstractAstrocyte
from ..network import Network, Population
from ..projections import EventProjection
from ..projections.graded import GradedProjection, StateSignal
from ..synapses import CurrentOutput, Receptor
from ..synapses.kinetics import Instant

SPIKE_RECEPTOR = "glu"  # receptor of the astrocytes that spikes arrive at
SIC_RECEPTOR = "sic"  # receptor of the neurons that the slow inward current arrives at


def _check_weights(weights, owner: str, nonnegative: bool = False):
    if isinstance(weights, sparse.BCSR):
        weights = weights.to_bcoo()
    if not isinstance(weights, sparse.BCOO):
        raise TypeError(f"{owner}: weights must be a BCOO/BCSR matrix, got {type(weights).__name__}")
    data = np.asarray(weights.data)
    if not np.all(np.isfinite(data)) or (nonnegative and np.any(data < 0)):
        raise ValueError(f"{owner}: weights must be finite{' and >= 0' if nonnegative else ''}")
    return weights


def with_astrocytes(network: Network, astrocytes: AbstractAstrocyte, *,
                    spike_couplings: Optional[Mapping[str, Any]] = None,
                    sic_couplings: Optional[Mapping[str, Any]] = None,
                    glio_couplings: Optional[Mapping[str, Any]] = None,
                    name: str = "astro", initial: Optional[Mapping[str, Any]] = None) -> Network:
    """``network`` with a population ``name`` of ``astrocytes`` and its couplings (see module docstring).

    Args:
        network: the neuronal ``Network``.
        astrocytes: ``LiRinzel``, ``GChI``, or a ``MultiRate`` wrapping one (astrocytes at 1–50 ms).
        spike_couplings: population -> ``(n_population, n_astro)`` BCOO/BCSR weights (dimensionless).
        sic_couplings: population -> ``(n_astro, n_population)`` BCOO/BCSR weights (pA of current per pA of SIC).
        glio_couplings: projection -> ``(n_astro, n_pre)`` BCOO/BCSR weights (>= 0).
        name: the astrocyte population's name.
        initial: initial conditions of the astrocytes (keyword arguments of their ``init``).

    Returns a new ``Network``; projections are named ``"{population}->{name}"`` and ``"{name}->{population}"``.
    """
    if not isinstance(network, Network):
        raise TypeError(f"with_astrocytes: network must be a Network, got {type(network).__name__}")
    if not isinstance(astrocytes, AbstractAstrocyte):
        raise TypeError(f"with_astrocytes: astrocytes must be an astrocyte model (LiRinzel, GChI, MultiRate), "
                        f"got {type(astrocytes).__name__}")
    if name in network.populations:
        raise ValueError(f"with_astrocytes: name {name!r} is already a population of the network")
    spike_couplings, sic_couplings = dict(spike_couplings or {}), dict(sic_couplings or {})
    glio_couplings = dict(glio_couplings or {})
    populations = dict(network.populations)
    for target in sic_couplings:
        if target not in populations:
            raise ValueError(f"with_astrocytes: SIC coupling to unknown population {target!r}; "
                             f"known: {', '.join(network.populations)}")
        pop = populations[target]
        if SIC_RECEPTOR in pop.receptors:
            raise ValueError(f"with_astrocytes: population {target!r} already has a receptor {SIC_RECEPTOR!r}")
        populations[target] = Population(pop.model, {**pop.receptors, SIC_RECEPTOR: Receptor(Instant(), CurrentOutput())},
                                         initial=pop.initial)
    receptors = {SPIKE_RECEPTOR: Receptor(Instant(), CurrentOutput())} if spike_couplings else {}
    populations[name] = Population(astrocytes, receptors, initial=initial)

    projections = dict(network.projections)
    for source, w in spike_couplings.items():
        if source not in network.populations:
            raise ValueError(f"with_astrocytes: spike coupling from unknown population {source!r}; "
                             f"known: {', '.join(network.populations)}")
        w = _check_weights(w, f"with_astrocytes: spike coupling {source!r} -> {name!r}")
        projections[f"{source}->{name}"] = EventProjection(source, name, SPIKE_RECEPTOR, w, same_step=True)
    for target, w in sic_couplings.items():
        w = _check_weights(w, f"with_astrocytes: SIC coupling {name!r} -> {target!r}")
        projections[f"{name}->{target}"] = GradedProjection(name, target, SIC_RECEPTOR, w)

    signals = list(network.signals)
    for proj_name, w in glio_couplings.items():
        proj = network.projections.get(proj_name)
        if proj is None:
            raise ValueError(f"with_astrocytes: gliotransmitter coupling to unknown projection {proj_name!r}; "
                             f"known: {', '.join(network.projections) or 'none'}")
        w = _check_weights(w, f"with_astrocytes: gliotransmitter coupling onto {proj_name!r}", nonnegative=True)
        n_pre = network.populations[proj.pre].size
        if w.shape != (astrocytes.size, n_pre):
            raise ValueError(f"with_astrocytes: gliotransmitter coupling onto {proj_name!r} has weights of shape "
                             f"{tuple(w.shape)}, expected (n_astro, n_pre) = {(astrocytes.size, n_pre)}")
        signals.append(StateSignal(proj_name, name, "G_A", w))
    return Network(populations, projections, network.drives, signals)
