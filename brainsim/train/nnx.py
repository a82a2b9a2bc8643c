"""Flax NNX adapter: use any brainsim Equinox layer (``SpikingLayer``, ``Sequential``, ...) inside an NNX model.

``EqxModule(module)`` stores the wrapped module's trainable array leaves (``bijections.trainable``, or a
given ``filter_spec``) as ``nnx.Param`` and its other array leaves as plain ``nnx.Variable`` (so
``nnx.Optimizer(model, tx, wrt=nnx.Param)`` updates exactly what ``fit`` would). Calling it rebuilds the
Equinox module from the current variable values and calls it (or one of its methods)::

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(64, 64, rngs=rngs)
            self.snn = EqxModule(Sequential([...]))
        def __call__(self, x):                  # x: (T, 64)
            out, _ = self.snn(self.encoder(x))
            return out

Requires ``flax`` (optional dependency).
"""
from __future__ import annotations

import equinox as eqx
import jax
from flax import nnx

from .bijections import trainable


class EqxModule(nnx.Module):
    """NNX wrapper of an Equinox module (see module docstring)."""

    def __init__(self, module, filter_spec=None):
        spec = trainable(module) if filter_spec is None else filter_spec
        leaves, treedef = jax.tree_util.tree_flatten(module)
        flags = jax.tree_util.tree_leaves(spec)
        if len(flags) != len(leaves):
            raise ValueError("EqxModule: filter_spec does not match the module's structure")
        self._treedef = treedef
        self._kinds = tuple("param" if f and eqx.is_inexact_array(l) else ("array" if eqx.is_array(l) else "static")
                            for l, f in zip(leaves, flags))
        self._statics = tuple(None if k != "static" else l for l, k in zip(leaves, self._kinds))
        self.leaves = nnx.List([nnx.Param(l) if k == "param" else nnx.Variable(l)
                                for l, k in zip(leaves, self._kinds) if k != "static"])

    @property
    def module(self):
        """The Equinox module with the current parameter values."""
        values = iter(v[...] for v in self.leaves)
        leaves = [next(values) if k != "static" else s for k, s in zip(self._kinds, self._statics)]
        return jax.tree_util.tree_unflatten(self._treedef, leaves)

    def __call__(self, *args, method: str | None = None, **kwargs):
        m = self.module
        return (m if method is None else getattr(m, method))(*args, **kwargs)
