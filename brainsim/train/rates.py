"""Differentiable population rates of biophysical networks (for fitting ``Network`` parameters).

``spike_counts(network, state, n_steps, dt, key=..., currents=..., record_from=...)`` advances a
``brainsim.network.Network`` with its own pure ``Network.step`` (the step ``brainsim.simulate.run``
scans) and returns every population's spike count per neuron as a *float* array, summed over the steps
``record_from <= i < n_steps``. The spikes come from ``brainsim.spikes.spike``, so under ``jax.grad``
the counts carry surrogate gradients, which flow through the ``EventOperator`` custom VJP into
synaptic weights (including homogeneous scalar weights), neuron parameters and injected currents.
The time loop is ``bptt.checkpointed_scan`` (memory O(sqrt(n_steps))). Per-step keys are
``fold_in(key, state.step + i)`` as in ``simulate.run``, so the same key gives the same trajectory.
"""
from __future__ import annotations

from typing import Mapping, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .bptt import checkpointed_scan


def spike_counts(network, state, n_steps: int, dt: float, *, key, currents: Optional[Mapping] = None,
                 record_from: int = 0, chunk: Optional[int] = None, truncate: Optional[int] = None):
    """Returns ``(final_state, {population: counts (size,)})``; ``currents``: population -> pA, constant.

    ``truncate``: cut the gradient path through the network state every ``truncate`` steps (truncated
    BPTT). Recurrent spiking networks are chaotic: exact-through-time surrogate gradients grow
    exponentially with the horizon (NaN after ~100 ms at dt 0.1 ms for COBA); a window of a few ms keeps
    the local, informative sensitivities of the rates to the parameters.
    """
    if not 0 <= record_from < n_steps:
        raise ValueError(f"spike_counts: record_from must be in [0, {n_steps}), got {record_from}")
    currents = dict(currents or {})
    first = state.step
    counts0 = {name: jnp.zeros((pop.size,)) for name, pop in network.populations.items()}

    def body(carry, i):
        st, counts = carry
        if truncate is not None:
            cut = (i % truncate) == 0
            st = jax.tree_util.tree_map(lambda a: jnp.where(cut, jax.lax.stop_gradient(a), a) if eqx.is_inexact_array(a) else a, st)
        st, spikes = network.step(st, dt, key=jax.random.fold_in(key, first + i), currents=currents or None)
        keep = (i >= record_from).astype(jnp.float32)
        counts = {name: counts[name] + keep * spikes[name] for name in counts}
        return (st, counts), None

    (state, counts), _ = checkpointed_scan(body, (state, counts0), jnp.arange(n_steps), chunk)
    return state, counts


def group_rates(counts: Mapping, groups: Mapping, duration_ms: float):
    """Mean rate (Hz) of named groups ``name -> (population, start, stop)`` from per-neuron counts."""
    return {name: jnp.mean(counts[pop][start:stop]) * (1000.0 / duration_ms) for name, (pop, start, stop) in groups.items()}
