"""Editing a network's parameters and sweeping them: ``with_params`` and ``sweep``.

Networks are immutable ``equinox.Module`` trees; a parameter is addressed by its path, the dotted names of
dictionary keys and attributes from the network down (``"populations.E.model.tau_m"``,
``"projections.EE.operator.weights"``, ``"drives.0.rate"``)::

    faster = bs.with_params(net, {"populations.E.model.tau_m": 10.0})          # scalar: broadcast to the leaf
    louder = bs.with_params(net, {"projections.EE.operator.weights": lambda w: 2 * w})

``sweep`` runs the network once per parameter set, all sets in one vectorised program (``jax.vmap`` over
``brainsim.run``), and decodes the records on the host::

    results = bs.sweep(net, {"populations.E.model.tau_m": [10.0, 15.0, 20.0]}, duration=500.0, dt=0.1,
                       key=jax.random.key(0), monitors=[bs.SpikeMonitor("E")])
    [r.spikes["E"].mean_rate() for r in results]
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import _is_concrete
from .monitors import SpikeMonitor, StateMonitor, check_monitors
from .simulate import _result, run


def _getter(path: str) -> Callable:
    parts = path.split(".")

    def get(tree):
        node = tree
        for part in parts:
            if isinstance(node, Mapping):
                node = node[part]
            elif isinstance(node, (tuple, list)) and part.isdigit():
                node = node[int(part)]
            else:
                node = getattr(node, part)
        return node

    return get


def _leaf(network, path: str):
    try:
        leaf = _getter(path)(network)
    except (KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"with_params: {path!r} does not name a part of the network ({type(e).__name__}: {e})") from None
    if not eqx.is_array(leaf):
        raise ValueError(f"with_params: {path!r} is {type(leaf).__name__}, not an array parameter (static "
                         f"configuration such as sizes or methods is fixed at construction)")
    return leaf


def with_params(network, params: Mapping[str, Any]):
    """A copy of ``network`` with the parameters at the given paths replaced.

    Args:
        params: path -> new value: an array of the parameter's shape, a scalar (broadcast to it), or a function of
            the old value. Values keep the parameter's dtype; the result is checked for NaN/inf where concrete.
    """
    for path, value in params.items():
        old = _leaf(network, path)
        new = value(old) if callable(value) else value
        new = jnp.asarray(new, old.dtype)
        if new.shape != old.shape:
            try:
                new = jnp.broadcast_to(new, old.shape)
            except ValueError:
                raise ValueError(f"with_params: {path!r} has shape {old.shape}; got a value of shape {new.shape}"
                                 ) from None
        if _is_concrete(new) and jnp.issubdtype(new.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(new))):
            raise ValueError(f"with_params: {path!r} would contain NaN or infinite values")
        network = eqx.tree_at(_getter(path), network, new)
    return network


def sweep(network, params: Mapping[str, Sequence], duration: float, dt: float, *, key, monitors=(),
          state=None, same_key: bool = True) -> list:
    """Run ``network`` for ``duration`` ms once per parameter set, vectorised, and decode the records.

    Args:
        params: path -> sequence of values, one per set (all of equal length); a value is what ``with_params``
            takes (an array of the parameter's shape or a scalar).
        key: PRNG key; every set uses it (``same_key=True``: common random numbers, so that differences come from
            the parameters) or its own split of it.
        monitors: ``SpikeMonitor`` and ``StateMonitor`` objects.
        state: initial state (default ``network.init(dt)``).

    Returns:
        one ``SimulationResult`` per set (``spikes``, ``traces``, ``state``), with ``params`` (path -> value).
    """
    paths = list(params)
    if not paths:
        raise ValueError("sweep: give at least one parameter path with its values")
    lengths = {len(params[p]) for p in paths}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"sweep: every parameter needs the same, nonzero number of values, got "
                         f"{ {p: len(params[p]) for p in paths} }")
    n_sets = lengths.pop()
    monitors = tuple(monitors)
    for m in monitors:
        if not isinstance(m, (SpikeMonitor, StateMonitor)):
            raise TypeError(f"sweep: monitors must be SpikeMonitor or StateMonitor, got {type(m).__name__}")
    state = network.init(dt) if state is None else state
    check_monitors(network, state, monitors)
    n_steps = int(round(duration / dt))
    leaves = {p: _leaf(network, p) for p in paths}
    stacked = {p: jnp.stack([jnp.broadcast_to(jnp.asarray(v, leaves[p].dtype), leaves[p].shape) for v in params[p]])
               for p in paths}
    keys = jnp.stack([key] * n_sets) if same_key else jax.random.split(key, n_sets)
    recorded = tuple(SpikeMonitor(m.population, packed=False, indices=m.indices) if isinstance(m, SpikeMonitor)
                     else m for m in monitors)
    dynamic, static = eqx.partition(network, eqx.is_array)

    @jax.jit
    def one(dynamic, values, key):
        net = with_params(eqx.combine(dynamic, static), values)
        return run(net, state, n_steps, dt, key=key, monitors=recorded)

    final, records = jax.vmap(one, in_axes=(None, 0, 0))(dynamic, stacked, keys)
    results = []
    first = int(state.step)
    for k in range(n_sets):
        collected = [[m.to_host(np.asarray(rec[k]), first, dt)] for m, rec in zip(recorded, records)]
        result = _result(network, recorded, collected, jax.tree.map(lambda x: x[k], final), dt, first, n_steps,
                         0.0, 0.0)
        result.params.update({p: np.asarray(stacked[p][k]) for p in paths})
        results.append(result)
    return results
