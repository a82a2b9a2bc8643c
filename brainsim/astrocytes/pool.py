"""Tripartite connectivity: neuron–neuron synapses paired with astrocytes drawn from a per-target pool,
NEST's ``third_factor_bernoulli_with_pool`` rule (``nest.TripartiteConnect``).

1. Every (pre, post) pair is connected with probability ``p_primary`` (Bernoulli, as
   ``connectivity.fixed_probability``).
2. Every target neuron gets a pool of ``pool_size`` astrocytes:

   * ``"random"``: ``pool_size`` distinct astrocytes drawn uniformly for each target;
   * ``"block"``: astrocytes assigned in contiguous blocks. With ``n_post >= n_astro`` the counts must
     divide (``n_post % n_astro == 0``) and ``pool_size == 1``: target j gets astrocyte
     ``j // (n_post / n_astro)``. With ``n_astro > n_post``: ``n_astro % n_post == 0`` and
     ``pool_size == n_astro / n_post``: target j gets astrocytes ``j * pool_size ... (j + 1) * pool_size - 1``.
3. Each created synapse is paired, with probability ``p_third_if_primary``, with one astrocyte drawn
   uniformly from its target's pool. A paired synapse connects its presynaptic neuron to the astrocyte
   (glutamate → IP3) and the astrocyte to the postsynaptic neuron (slow inward current).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.experimental import sparse

from .._checks import check_choice, check_size
from ..connectivity import WeightSpec, _host_rng, _to_bcoo, fixed_probability

POOL_TYPES = ("random", "block")


class Tripartite(NamedTuple):
    primary: sparse.BCOO  # (n_pre, n_post) neuron-neuron weights
    astro_of_synapse: np.ndarray  # (n_synapses,) astrocyte paired with each primary synapse (BCOO order), -1 = none
    pre_to_astro: sparse.BCOO  # (n_pre, n_astro): number of paired synapses (x weight_astro) pre -> astrocyte
    astro_to_post: sparse.BCOO  # (n_astro, n_post): SIC coupling weights (x weight_sic)
    pools: np.ndarray  # (n_post, pool_size) astrocyte pool of every target neuron


def astrocyte_pools(key_or_rng, n_post: int, n_astro: int, pool_size: int = 1, pool_type: str = "block") -> np.ndarray:
    """The ``(n_post, pool_size)`` astrocyte pool of every target neuron (see module docstring)."""
    owner = "tripartite_bernoulli_with_pool"
    check_choice(pool_type, POOL_TYPES, "pool_type", owner)
    if isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or not 1 <= pool_size <= n_astro:
        raise ValueError(f"{owner}: pool_size must be an integer between 1 and the number of astrocytes "
                         f"({n_astro}), got {pool_size!r}")
    if pool_type == "random":
        rng = key_or_rng if isinstance(key_or_rng, np.random.Generator) else _host_rng(key_or_rng)
        keys = rng.random((n_post, n_astro)) if n_astro * n_post <= 50_000_000 else None
        if keys is not None:
            return np.argsort(keys, axis=1)[:, :pool_size].astype(np.int32)
        return np.stack([rng.choice(n_astro, pool_size, replace=False) for _ in range(n_post)]).astype(np.int32)
    if n_post >= n_astro:
        if n_post % n_astro:
            raise ValueError(f"{owner}: pool_type 'block' needs the number of target neurons ({n_post}) to be a "
                             f"multiple of the number of astrocytes ({n_astro}), or the other way round")
        if pool_size != 1:
            raise ValueError(f"{owner}: pool_type 'block' with {n_post} target neurons and {n_astro} astrocytes "
                             f"needs pool_size = 1, got {pool_size}")
        return (np.arange(n_post) // (n_post // n_astro)).astype(np.int32)[:, None]
    if n_astro % n_post:
        raise ValueError(f"{owner}: pool_type 'block' needs the number of astrocytes ({n_astro}) to be a multiple "
                         f"of the number of target neurons ({n_post}), or the other way round")
    if pool_size != n_astro // n_post:
        raise ValueError(f"{owner}: pool_type 'block' with {n_astro} astrocytes and {n_post} target neurons needs "
                         f"pool_size = {n_astro // n_post}, got {pool_size}")
    return np.arange(n_astro, dtype=np.int32).reshape(n_post, pool_size)


def tripartite_bernoulli_with_pool(key, n_pre: int, n_post: int, n_astro: int, *, p_primary: float,
                                   p_third_if_primary: float, pool_size: int = 1, pool_type: str = "block",
                                   weight: WeightSpec = 1.0, weight_astro: float = 1.0, weight_sic: float = 1.0,
                                   autapses: bool = True) -> Tripartite:
    """Build neuron–neuron–astrocyte connectivity (see module docstring).

    Args:
        key: JAX PRNG key (explicit).
        n_pre, n_post, n_astro: population sizes.
        p_primary: neuron–neuron connection probability in [0, 1].
        p_third_if_primary: probability in [0, 1] that a created synapse is paired with an astrocyte.
        pool_size, pool_type: astrocyte pool of each target neuron.
        weight: neuron–neuron weights (nS or pA); weight_astro: weight of pre -> astrocyte (NEST ``third_in``);
        weight_sic: weight of astrocyte -> post SIC (NEST ``third_out``, ``sic_connection``).
    """
    owner = "tripartite_bernoulli_with_pool"
    n_pre, n_post, n_astro = (check_size(n, owner) for n in (n_pre, n_post, n_astro))
    for name, p in (("p_primary", p_primary), ("p_third_if_primary", p_third_if_primary)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{owner}: {name} must be a probability in [0, 1], got {p}")
    for name, w in (("weight_astro", weight_astro), ("weight_sic", weight_sic)):
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"{owner}: {name} must be >= 0, got {w}")
    # a stream of its own: _host_rng(key) would replay the uniforms fixed_probability(key) drew the degrees from
    rng = _host_rng(jax.random.fold_in(key, 1))
    pools = astrocyte_pools(rng, n_post, n_astro, pool_size, pool_type)
    primary = fixed_probability(key, n_pre, n_post, p_primary, weight, autapses=autapses)
    pre, post = np.asarray(primary.indices).T
    paired = rng.random(len(pre)) < p_third_if_primary
    choice = rng.integers(0, pools.shape[1], size=len(pre))
    astro = np.where(paired, pools[post, choice], -1).astype(np.int32)
    # aggregate duplicate (pre, astro) and (astro, post) pairs into weights
    def merged(a, b, shape, w):
        if not len(a):
            return _to_bcoo(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), shape)
        keys, counts = np.unique(a.astype(np.int64) * shape[1] + b, return_counts=True)
        return _to_bcoo(keys // shape[1], keys % shape[1], (counts * w).astype(np.float32), shape)

    pre_to_astro = merged(pre[paired], astro[paired], (n_pre, n_astro), weight_astro)
    # as NEST, every paired synapse adds one third_in (pre -> astro) and one third_out (astro -> post) connection
    astro_to_post = merged(astro[paired], post[paired], (n_astro, n_post), weight_sic)
    return Tripartite(primary, astro, pre_to_astro, astro_to_post, pools)
