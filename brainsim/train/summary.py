"""A model summary as ML users expect one (Keras' ``model.summary()``, torchinfo): layers, shapes, parameter counts."""
from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from .bijections import trainable
from .layers import LeakyReadout, Sequential, SpikingLayer
from .maps import Chain


def _count(tree, spec) -> tuple[int, int]:
    """``(trainable, fixed)`` numbers of floating-point values in ``tree`` under the filter ``spec``."""
    arrays = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    learn = jax.tree_util.tree_leaves(eqx.filter(eqx.filter(tree, spec), eqx.is_inexact_array))
    total, learnt = sum(int(np.size(a)) for a in arrays), sum(int(np.size(a)) for a in learn)
    return learnt, total - learnt


def _map_names(m) -> str:
    return " > ".join(_map_names(part) for part in m.maps) if isinstance(m, Chain) else type(m).__name__


def _shape(shape) -> str:
    return "x".join(str(n) for n in shape)


def summary(model, filter_spec=None) -> str:
    """A table of the model's layers (input projection, neuron, shapes) with their trainable and fixed parameter
    counts, under ``filter_spec`` (default ``bijections.trainable``, what ``fit`` trains). Works for a
    ``Sequential`` layer by layer and for any other Equinox module as totals. ``print(summary(model))``."""
    spec = trainable(model) if filter_spec is None else filter_spec
    if callable(spec) and not isinstance(spec, eqx.Module):  # a predicate on leaves, e.g. eqx.is_inexact_array
        spec = jax.tree_util.tree_map(spec, model)
    lines = []
    if isinstance(model, Sequential):
        header = f"{'layer':<6} {'input projection':<38} {'neurons':<22} {'in':>10} {'out':>10} {'trainable':>10} {'fixed':>8}"
        lines += [header, "-" * len(header)]
        for i, (layer, layer_spec) in enumerate(zip(model.layers, spec.layers)):
            kind = (type(layer.neuron).__name__ + (" + rec" if layer.recurrent else "")
                    + (" + syn" if layer.synapse is not None else "")
                    if isinstance(layer, SpikingLayer) else "LeakyReadout (v)" if isinstance(layer, LeakyReadout)
                    else type(layer).__name__)
            learnt, fixed = _count(layer, layer_spec)
            lines.append(f"{i:<6} {_map_names(layer.projection)[:38]:<38} {kind[:22]:<22} "
                         f"{_shape(layer.projection.in_shape):>10} {_shape(layer.projection.out_shape):>10} "
                         f"{learnt:>10,} {fixed:>8,}")
        lines.append("-" * len(header))
        lines.append(f"time step {model.dt} ms")
    learnt, fixed = _count(model, spec)
    lines.append(f"trainable parameters: {learnt:,}   fixed: {fixed:,}   total: {learnt + fixed:,}")
    return "\n".join(lines)
