"""IP3 diffusion between astrocytes through gap junctions (Goldberg et al. 2010; Stimberg et al. 2019).

For every gap junction between astrocytes i and j the IP3 flux into i is (µM/ms, I in µM)::

    J_i = -F/2 (1 + tanh((|I_i - I_j| - I_Theta) / omega_I)) sign(I_i - I_j)

i.e. regenerative, thresholded diffusion down the gradient. Junctions are undirected; the flux is
antisymmetric, so total IP3 is conserved by the coupling.
"""
from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, check_size
from ._common import check_smooth
from .._types import Array
from . import _smooth


def regenerative_flux(d: Array, F, I_Theta, omega_I, smooth: float) -> Array:
    """``-F/2 (1 + tanh((|d| - I_Theta) / omega_I)) sign(d)``: thresholded IP3 flux down a gradient ``d`` (µM).

    The gap-junction flux (``d = I_i - I_j``) and G-ChI's exogenous drive (``d = I - I_bias``).
    """
    return -F / 2.0 * (1.0 + jnp.tanh((jnp.abs(d) - I_Theta) / omega_I)) * _smooth.sign(d, smooth)


class GapJunctions(eqx.Module):
    """Undirected IP3-permeable junctions between astrocytes of one population.

    Args:
        pairs: ``(n_junctions, 2)`` integer array of astrocyte indices ``(i, j)``, i != j, each pair once.
        n: number of astrocytes.
        F: junction IP3 permeability, µM/ms (>= 0; Stimberg et al.: 2 µM/s = 0.002 µM/ms).
        I_Theta: threshold gradient, µM (>= 0).
        omega_I: gradient scaling factor, µM (> 0).
        smooth: width (µM) of a smooth ``sign`` (tanh); 0 = exact sign.
    """

    i: Array
    j: Array
    F: Array
    I_Theta: Array
    omega_I: Array
    n: int = eqx.field(static=True)
    smooth: float = eqx.field(static=True)

    def __init__(self, pairs, n: int, *, F: float = 0.002, I_Theta: float = 0.3, omega_I: float = 0.05,
                 smooth: float = 0.0):
        owner = "GapJunctions"
        self.n = check_size(n, owner)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"{owner}: astrocyte indices must be in [0, {n}), got range "
                             f"[{pairs.min()}, {pairs.max()}]")
        if np.any(pairs[:, 0] == pairs[:, 1]):
            raise ValueError(f"{owner}: a gap junction needs two different astrocytes")
        key = np.sort(pairs, axis=1)
        if len(np.unique(key, axis=0)) != len(key):
            raise ValueError(f"{owner}: duplicate junctions (each unordered pair may appear once)")
        check_positive(F, "F (µM/ms)", owner, allow_zero=True)
        check_positive(I_Theta, "I_Theta (µM)", owner, allow_zero=True)
        check_positive(omega_I, "omega_I (µM)", owner)
        self.i, self.j = jnp.asarray(pairs[:, 0], jnp.int32), jnp.asarray(pairs[:, 1], jnp.int32)
        f = jnp.result_type(float)
        self.F, self.I_Theta, self.omega_I = (jnp.asarray(x, f) for x in (F, I_Theta, omega_I))
        self.smooth = check_smooth(smooth, owner)

    @classmethod
    def ring(cls, n: int, **kwargs) -> "GapJunctions":
        """Astrocyte k coupled to k + 1 (mod n), as Stimberg et al.'s ``astro_ring`` example."""
        k = np.arange(n)
        return cls(np.stack([k, (k + 1) % n], axis=1) if n > 2 else np.array([[0, 1]])[: n - 1], n, **kwargs)

    def flux(self, I: Array) -> Array:
        """IP3 flux into every astrocyte (µM/ms), shape ``(n,)``."""
        J = regenerative_flux(I[self.i] - I[self.j], self.F, self.I_Theta, self.omega_I, self.smooth)  # into i
        out = jnp.zeros((self.n,), I.dtype)
        return out.at[self.i].add(J).at[self.j].add(-J)
