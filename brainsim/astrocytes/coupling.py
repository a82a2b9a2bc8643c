"""Neuron–astrocyte coupling around a ``Network``: a self-contained object whose step calls the network step.

``AstroNetwork(network, astrocytes, couplings)`` steps, every ``dt``:

1. slow inward current (SIC, pA) of the astrocytes, as left by the previous step, is summed through each
   ``SICCoupling`` (astrocyte -> neuron weights) and injected as a current into the target population
   (NEST's ``sic_connection``, delay one step);
2. the wrapped ``Network`` steps (with any user currents added);
3. the spikes of each ``SpikeCoupling`` source population are delivered through an event-driven operator
   (pre -> astrocyte weights, NEST's ``third_in``) to the astrocytes;
4. the astrocytes step (usually a ``MultiRate`` wrapper: 1–50 ms inside 0.1 ms neuron steps).

Gliotransmission (De Pittà et al. 2011; Stimberg et al. 2019): each ``GliotransmitterCoupling`` maps the
extracellular gliotransmitter ``G_A`` (µM) of the astrocytes, as left by the previous step, through
``(n_astro, n_pre)`` weights onto the presynaptic terminals of one projection, whose ``stp`` is a
``TripartiteSynapse``; in step 2 the network then releases ``r_S`` per presynaptic spike with the
gliotransmitter-modulated release probability ``U_0 = (1 - Gamma_S) U_0_star + alpha Gamma_S``. The
presynaptic receptor state ``Gamma_S`` lives in the projection's state
(``NetworkState.projections[projection].stp``); the astrocytes must have a ``G_A`` state variable (``GChI``).
The gliotransmitter reaches the projection as its signal of the step (``Network.step(signals=...)``).

``AstroNetwork`` has ``init(dt)``, ``step(state, dt, key=..., currents=...)``, ``populations`` and a state
with ``step`` and ``neurons`` like ``Network``, so ``brainsim.simulate``/``run`` and their monitors work
unchanged; the astrocytes appear as the population ``"astro"`` to ``StateMonitor``
(variables of the astrocyte model state, e.g. ``Ca``).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from .._types import Array
from ..core.contracts import AbstractSource
from ..network import Network, Population
from ..propagation import EventOperator, ell_layout
from .multirate import MultiRate, MultiRateState

ASTRO = "astro"  # name of the astrocyte population seen by monitors


class SpikeCoupling(eqx.Module):
    """Spikes of population ``source`` drive the astrocytes through ``(n_source, n_astro)`` weights."""

    operator: EventOperator
    source: str = eqx.field(static=True)

    def __init__(self, source: str, weights, *, capacity: Optional[int] = None):
        self.source = source
        self.operator = weights if isinstance(weights, EventOperator) else EventOperator.from_sparse(weights, capacity=capacity)


def _target_major(weights, owner: str, what: str):
    """``(n_astro, n_target)`` BCOO/BCSR -> padded ``(n_target, k)`` astrocyte indices and weights."""
    if isinstance(weights, sparse.BCSR):
        weights = weights.to_bcoo()
    if not isinstance(weights, sparse.BCOO):
        raise TypeError(f"{owner}: weights must be a (n_astro, {what}) BCOO/BCSR matrix")
    n_astro, n_target = weights.shape
    transposed = weights.T
    lay = ell_layout(transposed)  # ELL of the transpose: one row per target, its astrocytes in the slots
    src = np.full((n_target, lay.width), n_astro, np.int32)
    src[lay.pre, lay.slot] = lay.post
    return jnp.asarray(src), jnp.asarray(lay.scatter(transposed.data, np.float32)), int(n_astro)


def _gather(values: Array, sources: Array, weights: Array) -> Array:
    """``out[t] = sum_k weights[t, k] values[sources[t, k]]`` for target-major couplings (padding reads 0)."""
    return jnp.sum(jnp.take(values, sources, mode="fill", fill_value=0.0) * weights, axis=1)


def _inner_model(astrocytes):
    """The astrocyte model itself, unwrapping a ``MultiRate``."""
    return astrocytes.model if isinstance(astrocytes, MultiRate) else astrocytes


def _inner_state(astro_state):
    """The astrocyte model's state, unwrapping a ``MultiRateState``."""
    return astro_state.inner if isinstance(astro_state, MultiRateState) else astro_state


class SICCoupling(eqx.Module):
    """Astrocytic slow inward current into population ``target`` through ``(n_astro, n_target)`` weights.

    Stored target-major (each neuron gathers from its few astrocytes), so the cost is O(n_target x pool).
    """

    sources: Array  # (n_target, k) astrocyte indices, n_astro = padding
    weights: Array  # (n_target, k)
    target: str = eqx.field(static=True)
    n_astro: int = eqx.field(static=True)

    def __init__(self, target: str, weights):
        self.target = target
        self.sources, self.weights, self.n_astro = _target_major(weights, "SICCoupling", "n_target")

    @property
    def n_target(self) -> int:
        return int(self.sources.shape[0])

    def __call__(self, sic: Array) -> Array:
        """Current (pA) into every target neuron for astrocytic SIC values ``sic`` (pA), shape (n_astro,)."""
        return _gather(sic, self.sources, self.weights)


class GliotransmitterCoupling(eqx.Module):
    """Astrocytic gliotransmitter onto the presynaptic terminals of projection ``projection``.

    ``weights``: ``(n_astro, n_pre)`` BCOO/BCSR; the gliotransmitter seen by presynaptic neuron i is
    ``sum_a weights[a, i] G_A[a]`` (µM; weight 1 = the terminal sees its astrocyte's ``G_A``, as the
    synapse–astrocyte pairing of Stimberg et al. 2019). Terminals without an astrocyte see none. The
    projection's ``stp`` must be a ``TripartiteSynapse`` of size n_pre.
    """

    sources: Array  # (n_pre, k) astrocyte indices, n_astro = padding
    weights: Array  # (n_pre, k)
    projection: str = eqx.field(static=True)
    n_astro: int = eqx.field(static=True)

    def __init__(self, projection: str, weights):
        self.projection = projection
        self.sources, self.weights, self.n_astro = _target_major(weights, "GliotransmitterCoupling", "n_pre")
        if np.any(np.asarray(self.weights) < 0) or not np.all(np.isfinite(np.asarray(self.weights))):
            raise ValueError("GliotransmitterCoupling: weights must be finite and >= 0")

    @property
    def n_pre(self) -> int:
        return int(self.sources.shape[0])

    def __call__(self, G_A: Array) -> Array:
        """Gliotransmitter (µM) at every presynaptic terminal for astrocytic ``G_A`` (µM), shape (n_astro,)."""
        return _gather(G_A, self.sources, self.weights)


class AstroNetworkState(NamedTuple):
    net: Any  # NetworkState
    astro: Any  # astrocyte (or MultiRate) state
    sic: Array  # (n_astro,) current astrocytic output, pA

    @property
    def step(self):
        return self.net.step

    @property
    def neurons(self) -> dict:
        return _AstroNeurons(self)


class _AstroNeurons(dict):
    def __init__(self, state: AstroNetworkState):
        super().__init__(state.net.neurons)
        self[ASTRO] = _inner_state(state.astro)


class AstroNetwork(eqx.Module):
    """A ``Network`` with a population of astrocytes coupled to it (see module docstring).

    Args:
        network: the neuronal ``Network``.
        astrocytes: an astrocyte model (``LiRinzel``, ``GChI``) or a ``MultiRate`` wrapping one.
        spike_couplings: ``SpikeCoupling`` objects (neurons -> astrocytes).
        sic_couplings: ``SICCoupling`` objects (astrocytes -> neurons).
        glio_couplings: ``GliotransmitterCoupling`` objects (astrocytic gliotransmitter -> presynaptic
            release of a projection whose ``stp`` is a ``TripartiteSynapse``; astrocytes with ``G_A``).

    The astrocytes appear to monitors as the population ``"astro"``.
    """

    network: Network
    astrocytes: Any
    spike_couplings: tuple
    sic_couplings: tuple
    glio_couplings: tuple

    def __init__(self, network: Network, astrocytes, spike_couplings: Sequence[SpikeCoupling] = (),
                 sic_couplings: Sequence[SICCoupling] = (), glio_couplings: Sequence[GliotransmitterCoupling] = ()):
        self.network, self.astrocytes = network, astrocytes
        self.spike_couplings, self.sic_couplings = tuple(spike_couplings), tuple(sic_couplings)
        self.glio_couplings = tuple(glio_couplings)
        if ASTRO in network.populations:
            raise ValueError(f"AstroNetwork: name {ASTRO!r} is already a population of the network")
        n_astro = astrocytes.size
        for c in self.spike_couplings:
            if c.source not in network.populations:
                raise ValueError(f"AstroNetwork: spike coupling from unknown population {c.source!r}")
            shape = (network.populations[c.source].size, n_astro)
            if (c.operator.n_pre, c.operator.n_post) != shape:
                raise ValueError(f"AstroNetwork: spike coupling {c.source!r} -> astrocytes has shape "
                                 f"({c.operator.n_pre}, {c.operator.n_post}), expected {shape}")
        for c in self.sic_couplings:
            if c.target not in network.populations:
                raise ValueError(f"AstroNetwork: SIC coupling to unknown population {c.target!r}")
            shape = (n_astro, network.populations[c.target].size)
            if (c.n_astro, c.n_target) != shape:
                raise ValueError(f"AstroNetwork: SIC coupling astrocytes -> {c.target!r} has shape "
                                 f"({c.n_astro}, {c.n_target}), expected {shape}")
        seen = set()
        for c in self.glio_couplings:
            if not isinstance(c, GliotransmitterCoupling):
                raise TypeError(f"AstroNetwork: glio_couplings takes GliotransmitterCoupling objects, got {type(c).__name__}")
            proj = network.projections.get(c.projection)
            if proj is None:
                raise ValueError(f"AstroNetwork: gliotransmitter coupling to unknown projection {c.projection!r}; "
                                 f"known: {', '.join(network.projections) or 'none'}")
            if c.projection in seen:
                raise ValueError(f"AstroNetwork: two gliotransmitter couplings onto projection {c.projection!r}")
            seen.add(c.projection)
            if not proj.reads_signal:
                raise ValueError(f"AstroNetwork: projection {c.projection!r} has no gliotransmitter-modulated release; "
                                 f"give it stp=TripartiteSynapse(n_pre)")
            shape = (n_astro, proj.stp.size)
            if (c.n_astro, c.n_pre) != shape:
                raise ValueError(f"AstroNetwork: gliotransmitter coupling astrocytes -> {c.projection!r} has shape "
                                 f"({c.n_astro}, {c.n_pre}), expected {shape}")
        if self.glio_couplings:
            model = _inner_model(astrocytes)
            if "G_A" not in model.init()._fields:
                raise ValueError(f"AstroNetwork: gliotransmitter couplings need astrocytes that release gliotransmitter "
                                 f"(a G_A state variable, e.g. GChI); {type(model).__name__} has none")

    @property
    def populations(self) -> dict:
        return {**self.network.populations, ASTRO: Population(_SizedModel(_inner_model(self.astrocytes)))}

    @property
    def projections(self) -> dict:
        return self.network.projections

    @property
    def n_neurons(self) -> int:
        return self.network.n_neurons

    def init(self, dt: float, *, key=None, **astro_init) -> AstroNetworkState:
        return AstroNetworkState(self.network.init(dt, key=key), self.astrocytes.init(**astro_init),
                                 jnp.zeros((self.astrocytes.size,)))

    def step(self, state: AstroNetworkState, dt: float, *, key, currents=None):
        currents = dict(currents or {})
        for c in self.sic_couplings:
            i = c(state.sic)
            currents[c.target] = currents[c.target] + i if c.target in currents else i
        glio = None
        if self.glio_couplings:
            G_A = _inner_state(state.astro).G_A
            glio = {c.projection: c(G_A) for c in self.glio_couplings}
        net, spikes = self.network.step(state.net, dt, key=key, currents=currents, signals=glio)
        drive = jnp.zeros((self.astrocytes.size,))
        for c in self.spike_couplings:
            drive = c.operator.accumulate(drive, spikes[c.source])
        astro, sic = self.astrocytes.step(state.astro, drive, dt)
        return AstroNetworkState(net, astro, sic), spikes


class _SizedModel(AbstractSource):
    """Stand-in exposing an astrocyte model's size/init to monitors (it is never stepped by ``Network``)."""

    model: Any

    def __init__(self, model):
        self.model = model

    @property
    def size(self) -> int:
        return self.model.size

    def init(self, *, key=None):
        return self.model.init()

    def step(self, state, inputs, dt: float, *, key=None):
        raise NotImplementedError("the astrocytes of an AstroNetwork are stepped by AstroNetwork.step")
