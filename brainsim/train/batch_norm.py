"""Running statistics of the ``BatchNorm`` maps of a ``Sequential``, set from data ("precise BN", Wu & Johnson 2021).

During training a ``BatchNorm`` normalises with the statistics of its batch; in ``inference_mode`` with its running
statistics. ``calibrate_batch_norm(model, xs)`` sets those to the statistics of the examples ``xs``, each layer's
input computed by the model itself (its earlier batch norms in training mode over the same examples), so that the
model in inference mode gives on ``xs`` what it gives in training mode on the batch ``xs``. ``fit`` calibrates on the
first training examples before each evaluation and at the end.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..core.parameters import Buffer
from .layers import LeakyReadout, Sequential
from .maps import AbstractSynapticMap, BatchNorm, Chain, inference_mode
from .precision import Precision


def _in_training(model) -> bool:
    leaves = jax.tree_util.tree_leaves(model, is_leaf=lambda v: isinstance(v, BatchNorm))
    return not any(isinstance(leaf, BatchNorm) and leaf.inference for leaf in leaves)


def has_batch_norm(model) -> bool:
    """Whether ``model`` holds a ``BatchNorm``."""
    leaves = jax.tree_util.tree_leaves(model, is_leaf=lambda v: isinstance(v, BatchNorm))
    return any(isinstance(leaf, BatchNorm) for leaf in leaves)


def _calibrated(m: AbstractSynapticMap, h):
    """``m`` with the running statistics of its batch norms set from its input ``h`` ``(N, n_in)``, and its output."""
    if isinstance(m, BatchNorm):
        mean, var = m.statistics(h.reshape((-1,) + m.in_shape))
        m = eqx.tree_at(lambda b: (b.running_mean, b.running_var), m, (Buffer(mean), Buffer(var)))
        return m, m(h)
    if isinstance(m, Chain):
        parts = []
        for part in m.maps:
            part, h = _calibrated(part, h)
            parts.append(part)
        return eqx.tree_at(lambda c: c.maps, m, tuple(parts)), h
    if isinstance(m, Precision):  # the inner maps in float32 (training runs them in the compute dtype)
        inner, h = _calibrated(m.synapses, h)
        return eqx.tree_at(lambda p: p.synapses, m, inner), h
    return m, m(h)


def calibrate_batch_norm(model: Sequential, xs) -> Sequential:
    """``model`` with the running statistics of every ``BatchNorm`` in its layers' input maps set to the statistics
    of ``xs`` ``(B, T, ...)`` (module docstring; the model's input, as ``Sequential.batch`` takes it); ``model`` itself
    if it has none. Its earlier batch norms run in training mode over ``xs`` whatever mode ``model`` is in."""
    if not isinstance(model, Sequential):
        raise TypeError(f"calibrate_batch_norm: model must be a Sequential, got {type(model).__name__}")
    if not has_batch_norm(model):
        return model
    xs = jnp.asarray(xs)
    if xs.ndim < 3 or xs.shape[0] < 1:
        raise ValueError(f"calibrate_batch_norm: xs must be a batch (B, T, ...) of at least one example, got shape "
                         f"{xs.shape}")
    if any(isinstance(layer, LeakyReadout) for layer in model.layers[:-1]):
        raise ValueError("calibrate_batch_norm: a LeakyReadout before the last layer; each layer's input is taken "
                         "from the spikes of the layer before it")
    training = inference_mode(model, False)
    _, aux = training.batch(xs, record=True)  # every layer's output, batch norms in training mode over xs
    inputs = [xs.reshape(xs.shape[:2] + (-1,))] + list(aux["spikes"])
    layers = []
    for layer, h in zip(training.layers, inputs):
        if isinstance(layer.projection, AbstractSynapticMap) and has_batch_norm(layer.projection):
            projection, _ = _calibrated(layer.projection, h.reshape((-1, h.shape[-1])))
            layer = eqx.tree_at(lambda l: l.projection, layer, projection)
        layers.append(layer)
    calibrated = eqx.tree_at(lambda m: m.layers, training, tuple(layers))
    return calibrated if _in_training(model) else inference_mode(calibrated)  # the mode ``model`` was in
