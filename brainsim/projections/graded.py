"""Couplings of graded values (not spikes) through sparse weights: a population's output into a receptor
(``GradedProjection``), and a state variable as a signal addressed to a component (``StateSignal``).

Both are stored target-major: each target gathers from its few sources, ``out[t] = sum_k w[t, k] x[src[t, k]]``,
so a step costs O(n_target x in-degree) whatever the sources' values. Astrocytes use them for their slow inward
current onto neurons (NEST's ``sic_connection``) and their gliotransmitter at presynaptic terminals
(Stimberg et al. 2019); rate or neuromodulator couplings are the same mechanism.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from .._types import Array
from ..core.contracts import AbstractKinetics, AbstractSignal, StepContext
from ..propagation import ell_layout
from .base import AbstractProjection


def _target_major(weights, owner: str):
    """``(n_source, n_target)`` BCOO/BCSR -> padded ``(n_target, k)`` source indices (``n_source`` = padding),
    their weights, and ``n_source``."""
    if isinstance(weights, sparse.BCSR):
        weights = weights.to_bcoo()
    if not isinstance(weights, sparse.BCOO) or weights.ndim != 2:
        raise TypeError(f"{owner}: weights must be a (n_source, n_target) BCOO/BCSR matrix, "
                        f"got {type(weights).__name__}")
    n_source, n_target = weights.shape
    transposed = weights.T
    lay = ell_layout(transposed)  # ELL of the transpose: one row per target, its sources in the slots
    src = np.full((n_target, lay.width), n_source, np.int32)
    src[lay.pre, lay.slot] = lay.post
    return jnp.asarray(src), jnp.asarray(lay.scatter(transposed.data, np.float32)), int(n_source)


def _gather(values: Array, sources: Array, weights: Array) -> Array:
    """``out[t] = sum_k weights[t, k] values[sources[t, k]]`` (padding reads 0)."""
    return jnp.sum(jnp.take(values, sources, mode="fill", fill_value=0.0) * weights, axis=1)


class AbstractGathered(AbstractProjection):
    """What the target-major couplings share: per target, its sources (``sources``, ``n_pre`` = padding), delivered
    at the end of the step, reading no signal."""

    sources: eqx.AbstractVar[Array]
    n_pre: eqx.AbstractVar[int]

    @property
    def same_step(self) -> bool:
        return False

    @property
    def reads_signal(self) -> bool:
        return False

    @property
    def n_synapses(self) -> int:
        return int(np.count_nonzero(np.asarray(self.sources) < self.n_pre))

    def _check_shape(self, name, populations, what: str) -> None:
        needed = (populations[self.pre].size, populations[self.post].size)
        if (self.n_pre, self.sources.shape[0]) != needed:
            raise ValueError(f"Network: projection {name!r} has {what} of shape ({self.n_pre}, "
                             f"{self.sources.shape[0]}) but {self.pre}->{self.post} needs {needed}")


class GradedProjection(AbstractGathered):
    """The graded output of ``pre`` (e.g. an astrocyte's slow inward current, pA) into receptor ``receptor`` of
    ``post`` through ``(n_pre, n_post)`` sparse weights, delivered at the end of the step (seen from the next).

    With an ``Instant`` receptor and ``CurrentOutput`` the target receives ``sum_i w[i, j] out_i`` as a current
    during the next step (NEST's ``sic_connection`` with its one-step delay).
    """

    sources: Array  # (n_post, k) presynaptic indices, n_pre = padding
    weights: Array  # (n_post, k)
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    n_pre: int = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, weights):
        self.pre, self.post, self.receptor = pre, post, receptor
        self.sources, self.weights, self.n_pre = _target_major(weights, f"GradedProjection {pre}->{post}")

    def check(self, name, populations) -> None:
        self._check_shape(name, populations, "weights")

    def init(self, dt: float):
        return None

    def deliver(self, state, target, kinetics: AbstractKinetics, ctx: StepContext):
        return state, kinetics.arrive(target, _gather(ctx.spikes[self.pre], self.sources, self.weights))


class StateSignal(AbstractSignal):
    """State variable ``variable`` of population ``source``, mapped through ``(n_source, n_target)`` sparse weights
    (or taken as is when ``weights`` is None), as the signal of component ``target`` in every step.

    The value is read from the state at the start of the step (as the previous step left it). Example: the
    gliotransmitter ``G_A`` (µM) of astrocytes at the ``n_pre`` presynaptic terminals of a projection whose
    ``stp`` is a ``TripartiteSynapse`` (weight 1 = the terminal sees its astrocyte's ``G_A``).
    """

    sources: Optional[Array]  # (n_target, k) source indices, n_source = padding; None = identity
    weights: Optional[Array]
    target: str = eqx.field(static=True)
    source: str = eqx.field(static=True)
    variable: str = eqx.field(static=True)
    shape: Optional[tuple] = eqx.field(static=True)  # (n_source, n_target) of the weights

    def __init__(self, target: str, source: str, variable: str, weights=None):
        self.target, self.source, self.variable = target, source, variable
        if weights is None:
            self.sources = self.weights = self.shape = None
        else:
            self.sources, self.weights, n_source = _target_major(weights, f"StateSignal {source}.{variable}")
            self.shape = (n_source, int(self.sources.shape[0]))

    def value(self, states: Mapping[str, Any]) -> Array:
        x = getattr(states[self.source], self.variable)
        return x if self.sources is None else _gather(x, self.sources, self.weights)

    def check(self, populations, projections) -> None:
        owner = f"Network: signal {self.source}.{self.variable} -> {self.target!r}"
        if self.source not in populations:
            raise ValueError(f"{owner}: unknown population {self.source!r}; known: {', '.join(populations)}")
        state = populations[self.source].init()[0]
        try:
            getattr(state, self.variable)
        except AttributeError:
            raise ValueError(f"{owner}: population {self.source!r} ({type(populations[self.source].model).__name__}) "
                             f"has no state variable {self.variable!r}") from None
        if self.shape is not None and self.shape[0] != populations[self.source].size:
            raise ValueError(f"{owner}: weights have shape {self.shape} but {self.source!r} has "
                             f"{populations[self.source].size} units")
