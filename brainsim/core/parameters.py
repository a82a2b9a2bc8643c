"""Constrained parameters: stored unconstrained, mapped through explicit bijections.

A constrained parameter is a ``Constrained(raw, bijection)`` leaf inside any model (an ``LIF``, a layer,
a ``Network``). Optimizers update ``raw`` freely on the real line; the model sees
``bijection.forward(raw)``, which always satisfies the constraint. ``resolve(tree)`` replaces every
``Constrained`` by its value, so the *same* neuron models run unchanged::

    lif = constrain(LIF(128, tau_m=10.0), tau_m=Positive(lower=1.0))   # tau_m > 1 ms, stored as raw
    state, spikes = resolve(lif).step(state, inputs, dt)

Bijections (``forward: R -> C``, ``inverse: C -> R``):

- ``Identity``: no constraint.
- ``Positive(lower)``: ``lower + softplus(u)``  (e.g. time constants in ms, > lower).
- ``Bounded(low, high)``: ``low + (high - low) * sigmoid(u)``  (e.g. thresholds in mV in a window).
- ``Exp(scale)``: ``scale * exp(u)``  (log-parametrised positive quantity, scale-free updates).
- ``DaleSign(signs)``: ``signs * softplus(u)`` row-wise, ``signs`` a ``(n_pre,)`` vector of ±1:
  every outgoing weight of an excitatory neuron stays >= 0 and of an inhibitory one <= 0 (Dale's law).
"""
from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, ArrayLike
from .contracts import (AbstractDrive, AbstractKinetics, AbstractOutput, AbstractPopulationModel, AbstractRule,
                        AbstractSTP)


def _softplus_inverse(y: Array) -> Array:
    # inverse of softplus(u) = log(1 + e^u) for y > 0, numerically stable for large y
    return y + jnp.log(-jnp.expm1(-y))


class Bijection(eqx.Module):
    """A differentiable bijection from the real line onto a constraint set.

    ``forward(u)``: the constrained value of the unconstrained ``u``; ``inverse(y)``: its inverse;
    ``check(y, name)``: raise ``ValueError`` if a concrete initial value ``y`` lies outside the set.
    """

    @abc.abstractmethod
    def forward(self, u: Array) -> Array:
        ...

    @abc.abstractmethod
    def inverse(self, y: Array) -> Array:
        ...

    @abc.abstractmethod
    def check(self, y: np.ndarray, name: str) -> None:
        ...


class Identity(Bijection):
    def forward(self, u):
        return u

    def inverse(self, y):
        return y

    def check(self, y, name):
        pass


class Positive(Bijection):
    """``y = lower + softplus(u)`` > ``lower``."""

    lower: float = eqx.field(static=True, default=0.0)

    def forward(self, u):
        return self.lower + jax.nn.softplus(u)

    def inverse(self, y):
        return _softplus_inverse(y - self.lower)

    def check(self, y, name):
        if np.any(y <= self.lower):
            raise ValueError(f"Positive: initial {name} must be > {self.lower}, got min {y.min()}")


class Exp(Bijection):
    """``y = scale * exp(u)`` > 0 (log parametrisation)."""

    scale: float = eqx.field(static=True, default=1.0)

    def forward(self, u):
        return self.scale * jnp.exp(u)

    def inverse(self, y):
        return jnp.log(y / self.scale)

    def check(self, y, name):
        if np.any(y <= 0):
            raise ValueError(f"Exp: initial {name} must be > 0, got min {y.min()}")


class Bounded(Bijection):
    """``y = low + (high - low) * sigmoid(u)`` in the open interval (low, high)."""

    low: float = eqx.field(static=True)
    high: float = eqx.field(static=True)

    def __init__(self, low: float, high: float):
        if not high > low:
            raise ValueError(f"Bounded: need high > low, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def forward(self, u):
        return self.low + (self.high - self.low) * jax.nn.sigmoid(u)

    def inverse(self, y):
        p = (y - self.low) / (self.high - self.low)
        return jnp.log(p) - jnp.log1p(-p)

    def check(self, y, name):
        if np.any(y <= self.low) or np.any(y >= self.high):
            raise ValueError(f"Bounded: initial {name} must lie in ({self.low}, {self.high}), "
                             f"got [{y.min()}, {y.max()}]")


class DaleSign(Bijection):
    """Sign-constrained weights: ``W[i, :] = signs[i] * softplus(U[i, :])`` (Dale's law, rows = presynaptic).

    ``signs``: ``(n_pre,)`` array of +1 (excitatory) / -1 (inhibitory).
    """

    signs: Array

    def __init__(self, signs: ArrayLike):
        signs = np.asarray(signs, dtype=np.float32)
        if signs.ndim != 1 or not np.all(np.abs(signs) == 1):
            raise ValueError("DaleSign: signs must be a 1-D array of +1 / -1 (one per presynaptic neuron)")
        self.signs = jnp.asarray(signs)

    def _s(self, u):
        return jax.lax.stop_gradient(self.signs).reshape((-1,) + (1,) * (u.ndim - 1))

    def forward(self, u):
        return self._s(u) * jax.nn.softplus(u)

    def inverse(self, y):
        magnitude = jnp.maximum(jnp.abs(y), 1e-6)
        return _softplus_inverse(magnitude)

    def check(self, y, name):
        s = np.asarray(self.signs).reshape((-1,) + (1,) * (y.ndim - 1))
        if y.shape[:1] != np.asarray(self.signs).shape:
            raise ValueError(f"DaleSign: {name} has {y.shape[0] if y.ndim else 0} rows but {len(self.signs)} signs")
        if np.any(y * s < 0):
            raise ValueError(f"DaleSign: initial {name} violates Dale's law (a weight has the wrong sign for its row)")


class Buffer(eqx.Module):
    """An array a module keeps but does not learn (e.g. a batch norm's running statistics): ``trainable`` leaves it
    out, whatever holds it."""

    value: Array


class Constrained(eqx.Module):
    """A parameter stored unconstrained: the model value is ``bijection.forward(raw)``.

    Build with ``Constrained.from_value(value, bijection)``; the optimizer updates ``raw``. The bijection
    itself has no trainable leaves (``DaleSign.signs`` is excluded by ``trainable``).
    """

    raw: Array
    bijection: Bijection

    @classmethod
    def from_value(cls, value: ArrayLike, bijection: Bijection, name: str = "parameter") -> "Constrained":
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"Constrained: initial {name} contains NaN or infinite values")
        bijection.check(arr, name)
        raw = bijection.inverse(jnp.asarray(arr, dtype=jnp.result_type(float)))
        return cls(raw=raw, bijection=bijection)

    @property
    def value(self) -> Array:
        return self.bijection.forward(self.raw)


def _is_constrained(x) -> bool:
    return isinstance(x, Constrained)


def resolve(tree):
    """Replace every ``Constrained`` leaf of ``tree`` by its constrained value (differentiably)."""
    return jax.tree_util.tree_map(lambda x: x.value if _is_constrained(x) else x, tree, is_leaf=_is_constrained)


def constrain(module, **bijections: Bijection):
    """Return ``module`` with the named array fields stored as ``Constrained`` through the given bijections.

    Example: ``constrain(LIF(n), tau_m=Positive(1.0), v_th=Bounded(-60.0, -40.0))``.
    """
    fields = {f.name for f in dataclasses.fields(module)}
    for name, bij in bijections.items():
        if name not in fields:
            raise ValueError(f"constrain: {type(module).__name__} has no parameter {name!r}")
        value = getattr(module, name)
        if _is_constrained(value):
            value = value.value
        module = eqx.tree_at(lambda m: getattr(m, name), module,
                             Constrained.from_value(np.asarray(value), bij, name=name))
    return module


def _holds_constants(node) -> bool:
    """Models whose plain arrays are constants (neurons, sources, astrocytes, kinetics, outputs, drives, STP,
    learning rules)."""
    return isinstance(node, (AbstractPopulationModel, AbstractKinetics, AbstractOutput, AbstractDrive, AbstractSTP,
                             AbstractRule, Buffer))


def _constrained_spec(node):
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, node)
    if isinstance(node.bijection, DaleSign):  # the signs are structure, not parameters
        spec = eqx.tree_at(lambda c: c.bijection.signs, spec, False)
    return spec


def trainable(tree):
    """Filter spec: ``True`` for the leaves an optimizer updates by default.

    - every ``Constrained`` parameter (a parameter declared learnable, kept in range by its bijection:
      ``ml_lif(learn_tau=True, learn_threshold=True)``, ``constrain(model, tau_m=Positive(1.0))``, a layer's
      ``tau_syn``), except the sign vectors of ``DaleSign``;
    - every other floating-point array outside a model's constants: weights and biases of layers, synaptic maps
      and projections.

    The arrays of a ``Buffer`` (running statistics) and the plain arrays of neuron models, spike sources, astrocytes,
    synaptic kinetics and outputs (reversal potentials), drives, short-term plasticity and learning rules are
    their constants (C_m, v_rest, t_ref, an input ``Signal``'s values, ...): they stay fixed
    unless declared learnable (``constrain``) or chosen by a filter spec of one's own.
    """
    def spec_of(node):
        if isinstance(node, Constrained):
            return _constrained_spec(node)
        if _holds_constants(node):
            return jax.tree_util.tree_map(
                lambda leaf: _constrained_spec(leaf) if isinstance(leaf, Constrained) else False,
                node, is_leaf=_is_constrained)
        return eqx.is_inexact_array(node)

    return jax.tree_util.tree_map(spec_of, tree, is_leaf=lambda x: _is_constrained(x) or _holds_constants(x))


def freeze(tree, *where, spec=None):
    """Filter spec that marks ``where(tree)`` leaves (callables selecting sub-trees) as not trainable.

    Example: ``freeze(model, lambda m: m.hidden.neuron.tau_m, lambda m: m.readout.tau)``; pass the result
    as ``filter_spec`` to ``fit`` or to ``eqx.partition``.
    """
    spec = trainable(tree) if spec is None else spec
    for select in where:
        sub = select(spec)
        spec = eqx.tree_at(select, spec, jax.tree_util.tree_map(lambda _: False, sub))
    return spec
