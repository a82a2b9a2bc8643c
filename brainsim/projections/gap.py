"""Electrical synapses (gap junctions) between neurons: ``GapJunctionProjection``.

A gap junction of conductance g_ij (nS) between neuron j of ``pre`` and neuron i of ``post`` passes the current
``g_ij (v_j - v_i)`` (pA) into i. The projection sums them per postsynaptic neuron,
``I_i = sum_j g_ij v_j - G_i v_i`` with ``G_i = sum_j g_ij``, from the membrane potentials at the end of a step,
and delivers the sum into a current receptor that drives the next step (``Receptor(Instant(), CurrentOutput())``):
the currents are held over a step, as Brian2 computes a summed gap-junction current before each update. Explicit in
the coupling: stable while ``G_i dt / C_m`` stays well below 1.

Within one population, a symmetric matrix (``g_ij = g_ji``) couples pairs both ways and conserves current
(``sum_i I_i = 0``); between two populations, each direction is one projection.
"""
from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from .._types import Array
from ..core.contracts import AbstractKinetics, StepContext
from ..synapses.outputs import CurrentOutput
from .graded import AbstractGathered, _gather, _target_major


class GapJunctionProjection(AbstractGathered):
    """Gap junctions from ``pre`` onto current receptor ``receptor`` of ``post`` (see the module docstring).

    Args:
        pre, post, receptor: names in the network; the receptor must be a current (``CurrentOutput``), usually
            with ``Instant()`` kinetics.
        conductances: ``(n_pre, n_post)`` BCOO/BCSR matrix of junction conductances, nS (>= 0); with
            ``pre == post`` it must be symmetric (a junction couples both cells), unless ``symmetric=False``.
    """

    sources: Array  # (n_post, k) presynaptic indices, n_pre = padding
    conductances: Array  # (n_post, k) nS (a leaf: trainable, e.g. with eqx.tree_at)
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    n_pre: int = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, conductances, *, symmetric: bool = True):
        owner = f"GapJunctionProjection {pre}->{post}"
        if isinstance(conductances, sparse.BCSR):
            conductances = conductances.to_bcoo()
        if isinstance(conductances, sparse.BCOO):
            values = np.asarray(conductances.data)
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"{owner}: conductances must be finite and >= 0 nS")
            if symmetric and pre == post:
                dense = np.asarray(conductances.todense())
                if dense.shape[0] != dense.shape[1] or not np.allclose(dense, dense.T, rtol=1e-6, atol=0.0):
                    raise ValueError(f"{owner}: conductances within one population must be symmetric (g_ij = g_ji); "
                                     f"give symmetric=False for one-way coupling")
        self.pre, self.post, self.receptor, self.symmetric = pre, post, receptor, bool(symmetric)
        self.sources, self.conductances, self.n_pre = _target_major(conductances, owner)

    def check(self, name, populations) -> None:
        self._check_shape(name, populations, "conductances")
        if not isinstance(populations[self.post].receptors[self.receptor].output, CurrentOutput):
            raise ValueError(f"Network: gap junctions {name!r} deliver a current: receptor {self.receptor!r} of "
                             f"{self.post!r} must have a CurrentOutput (Receptor(Instant(), CurrentOutput()))")
        for role in ("pre", "post"):
            if populations[getattr(self, role)].model.membrane_potential(populations[getattr(self, role)].model.init()) is None:
                raise ValueError(f"Network: gap junctions {name!r} need a membrane potential; {getattr(self, role)!r} "
                                 f"has none")

    def init(self, dt: float):
        return None

    def deliver(self, state, target, kinetics: AbstractKinetics, ctx: StepContext):
        v_pre, v_post = ctx.potentials[self.pre], ctx.potentials[self.post]
        total = jnp.sum(self.conductances, axis=1)  # G_i = sum_j g_ij
        current = _gather(v_pre, self.sources, self.conductances) - total * v_post
        return state, kinetics.arrive(target, current)
