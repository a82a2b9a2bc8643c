"""Mixed precision: synaptic maps computed in bfloat16 or float16, everything else in float32.

The policy of mixed-precision training (as in JMP and PyTorch AMP): parameters stay float32 (the optimizer
updates float32 master copies), the products of the synaptic maps (``Linear``, ``Conv2d``, ... over the whole
sequence) run in ``compute_dtype``, and their currents come back as float32, so membrane potentials, synaptic
and adaptation states, the time loop's carry, losses and reductions stay float32 (a low-precision membrane
would lose sub-threshold increments of a few per mille of the threshold).

    model = mixed_precision(model, jnp.bfloat16)     # every layer's input projection in bfloat16

Recurrent weights act inside the time loop on float32 spikes and stay float32. Low-precision products pay off
where the hardware has them (GPU/TPU tensor cores, CPUs with AVX-512 BF16/AMX); on other CPUs XLA emulates them
and a step may be slower.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array
from .layers import Sequential
from .maps import AbstractSynapticMap

COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


class Precision(AbstractSynapticMap):
    """``synapses`` computed in ``compute_dtype``: its input and floating-point parameters are cast down for the
    product, the result is returned as float32 (the parameters themselves stay float32)."""

    synapses: AbstractSynapticMap
    compute_dtype: str = eqx.field(static=True)
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)

    def __init__(self, synapses: AbstractSynapticMap, compute_dtype="bfloat16"):
        if not isinstance(synapses, AbstractSynapticMap):
            raise TypeError(f"Precision: synapses must be a synaptic map (Linear, Conv2d, Chain, ...), "
                            f"got {type(synapses).__name__}")
        name = jnp.dtype(compute_dtype).name
        if name not in COMPUTE_DTYPES:
            raise ValueError(f"Precision: compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
        self.synapses, self.compute_dtype = synapses, name
        self.in_shape, self.out_shape = synapses.in_shape, synapses.out_shape

    def apply(self, x: Array) -> Array:
        low = jnp.dtype(self.compute_dtype)
        cast = jax.tree_util.tree_map(lambda a: a.astype(low) if eqx.is_inexact_array(a) else a, self.synapses)
        return cast.apply(x.astype(low)).astype(jnp.float32)


def mixed_precision(model: Sequential, compute_dtype=jnp.bfloat16) -> Sequential:
    """``model`` with every layer's input map wrapped in ``Precision(..., compute_dtype)`` (module docstring;
    projections that are not synaptic maps, e.g. ``DelayedDense``, stay float32); ``compute_dtype=jnp.float32``
    unwraps them again."""
    if not isinstance(model, Sequential):
        raise TypeError(f"mixed_precision: model must be a Sequential, got {type(model).__name__}")
    name = jnp.dtype(compute_dtype).name
    layers = []
    for layer in model.layers:
        inner = layer.projection.synapses if isinstance(layer.projection, Precision) else layer.projection
        wrapped = inner if name == "float32" or not isinstance(inner, AbstractSynapticMap) else Precision(inner, name)
        layers.append(eqx.tree_at(lambda l: l.projection, layer, wrapped))
    return Sequential(layers)
