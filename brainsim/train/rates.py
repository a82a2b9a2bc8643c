"""Differentiable population rates of biophysical networks (for fitting ``Network`` parameters).

``spike_counts(network, state, n_steps, dt, key=..., currents=..., record_from=...)`` advances a
``brainsim.network.Network`` with ``brainsim.simulate.run`` and returns every population's spike count per
neuron as a *float* array, summed over the steps ``record_from <= i < n_steps``. The spikes come from ``brainsim.spikes.spike``, so under ``jax.grad``
the counts carry surrogate gradients, which flow through the ``EventOperator`` custom VJP into
synaptic weights (including homogeneous scalar weights), neuron parameters and injected currents.
Gradients go through ``run``'s checkpointed adjoint (memory O(sqrt(n_steps))).
"""
from __future__ import annotations

from typing import Mapping, Optional

import jax.numpy as jnp

from ..adjoints import Checkpointed, Truncated
from ..simulate import CountMonitor, run


def spike_counts(network, state, n_steps: int, dt: float, *, key, currents: Optional[Mapping] = None,
                 record_from: int = 0, chunk: Optional[int] = None, truncate: Optional[int] = None):
    """Returns ``(final_state, {population: counts (size,)})``; ``currents``: population -> pA, constant.

    ``run`` with a ``CountMonitor`` per population and the ``Checkpointed(chunk)`` adjoint, or
    ``Truncated(truncate, chunk)``: the gradient path through the network state is cut every ``truncate``
    steps (truncated BPTT). Recurrent spiking networks are chaotic: exact-through-time surrogate gradients
    grow exponentially with the horizon (NaN after ~100 ms at dt 0.1 ms for COBA); a window of a few ms keeps
    the local, informative sensitivities of the rates to the parameters.
    """
    if not 0 <= record_from < n_steps:
        raise ValueError(f"spike_counts: record_from must be in [0, {n_steps}), got {record_from}")
    per_step = {name: jnp.broadcast_to(jnp.asarray(c, jnp.float32), (n_steps,) + jnp.shape(c))
                for name, c in (currents or {}).items()}
    names = list(network.populations)
    adjoint = Checkpointed(chunk) if truncate is None else Truncated(truncate, chunk)
    state, counts = run(network, state, n_steps, dt, key=key, currents=per_step or None, adjoint=adjoint,
                        monitors=[CountMonitor(name, start=record_from) for name in names])
    return state, dict(zip(names, counts))


def group_rates(counts: Mapping, groups: Mapping, duration_ms: float):
    """Mean rate (Hz) of named groups ``name -> (population, start, stop)`` from per-neuron counts."""
    return {name: jnp.mean(counts[pop][start:stop]) * (1000.0 / duration_ms) for name, (pop, start, stop) in groups.items()}
