"""Synaptic maps of spatial layers: convolutions, pooling, flattening and chains of them.

A synaptic map turns a layer's input into the currents (pA) of its neurons. Inputs and outputs travel as flat
vectors ``(..., n)`` (leading axes: time, batch), read as channels-first arrays ``in_shape`` / ``out_shape``
(``(C, H, W)`` for 2-D, ``(C, L)`` for 1-D; the layout of PyTorch, snnTorch, Norse and NIR), so every neuron
model runs on them unchanged. Weights follow PyTorch's layout: ``Conv2d.weight`` is ``(C_out, C_in, kH, kW)``
(pA per unit input), ``Conv1d.weight`` ``(C_out, C_in, k)``. Pooling of spikes or currents is a fixed map:
``SumPool2d`` adds each window, ``AvgPool2d`` averages it (zero padding counted, as PyTorch's default),
``MaxPool2d`` takes its largest entry. ``Dropout`` zeroes random input units while training (given a key);
``BatchNorm`` normalises each channel by statistics over the batch, the time steps and the positions.

In a ``Sequential`` a map is the input projection of a ``SpikingLayer`` or ``LeakyReadout``
(``SpikingLayer(Chain([Conv2d(...), MaxPool2d(...)]))``); in a ``Network`` it is the ``synapses`` of a
``brainsim.projections.MappedProjection``. Each map is final; ``AbstractSynapticMap`` is the contract.
"""
from __future__ import annotations

import abc
import math
from typing import Sequence, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite
from .._types import Array
from ..core.parameters import Buffer

IntOrPair = Union[int, Sequence[int]]


class AbstractSynapticMap(eqx.Module):
    """A map ``(..., n_in) -> (..., n_out)`` of flat vectors read as ``in_shape`` / ``out_shape`` arrays."""

    in_shape: eqx.AbstractVar[tuple]
    out_shape: eqx.AbstractVar[tuple]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    def check_input(self, x: Array) -> None:
        if x.shape[-1] != self.n_in:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[-1]} features, expected {self.n_in} "
                             f"(= {' x '.join(map(str, self.in_shape))})")

    def __call__(self, x: Array) -> Array:
        """``(..., n_in) -> (..., n_out)`` through ``apply`` (final: maps implement ``apply`` only)."""
        self.check_input(x)
        lead = x.shape[:-1]
        y = self.apply(x.reshape((-1,) + tuple(self.in_shape)))
        return y.reshape(lead + (self.n_out,))

    @abc.abstractmethod
    def apply(self, x: Array) -> Array:
        """``(N, *in_shape) -> (N, *out_shape)``."""


def _tuple(value: IntOrPair, n: int, name: str, owner: str, minimum: int = 1) -> tuple:
    values = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in values):
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum} or {n} of them, got {value!r}")
    return tuple(int(v) for v in values)


def _shape(in_shape, dims: int, owner: str) -> tuple:
    shape = tuple(int(s) for s in np.atleast_1d(in_shape))
    if len(shape) != dims + 1 or min(shape) < 1:
        names = "(channels, height, width)" if dims == 2 else "(channels, length)"
        raise ValueError(f"{owner}: in_shape must be {names} with positive sizes, got {in_shape!r}")
    return shape


def _padding(padding, kernel: tuple, dilation: tuple, owner: str) -> tuple:
    """``((lo, hi), ...)`` per spatial axis from an int, a tuple of ints, pairs, ``"valid"`` or ``"same"``."""
    if isinstance(padding, str) and padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if isinstance(padding, str) and padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    message = (f"{owner}: padding must be 'valid', 'same', an integer or {len(kernel)} of them, or "
               f"(low, high) pairs, got {padding!r}")
    if isinstance(padding, str):
        raise ValueError(message)
    flat = np.asarray(padding)
    if flat.ndim <= 1 and np.issubdtype(flat.dtype, np.integer):  # one number, or one per axis
        values = int(flat) if flat.ndim == 0 else tuple(int(v) for v in flat)
        return tuple((p, p) for p in _tuple(values, len(kernel), "padding", owner, minimum=0))
    try:
        pairs = tuple(tuple(int(v) for v in p) for p in padding)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if len(pairs) != len(kernel) or any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ValueError(message)
    return pairs


def _out_size(size: int, k: int, stride: int, pad: tuple, dilation: int, owner: str) -> int:
    out = (size + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"{owner}: a kernel of {k} (dilation {dilation}) does not fit an input of {size} with "
                         f"padding {pad}")
    return out


class _Conv(AbstractSynapticMap):
    """What Conv1d and Conv2d share: ``lax.conv_general_dilated`` over channels-first inputs."""

    weight: eqx.AbstractVar[Array]
    bias: eqx.AbstractVar[Array | None]
    stride: eqx.AbstractVar[tuple]
    padding: eqx.AbstractVar[tuple]
    dilation: eqx.AbstractVar[tuple]
    groups: eqx.AbstractVar[int]

    def apply(self, x: Array) -> Array:
        dims = len(self.stride)
        spec = ("NCH", "OIH", "NCH") if dims == 1 else ("NCHW", "OIHW", "NCHW")
        y = jax.lax.conv_general_dilated(x.astype(self.weight.dtype), self.weight, self.stride, self.padding,
                                         rhs_dilation=self.dilation, dimension_numbers=spec,
                                         feature_group_count=self.groups)
        if self.bias is not None:
            y = y + self.bias.reshape((1, -1) + (1,) * dims)
        return y


def _conv_fields(module, in_shape, out_channels, kernel_size, stride, padding, dilation, groups, bias, key, scale,
                 weight, dims: int):
    owner = type(module).__name__
    module.in_shape = _shape(in_shape, dims, owner)
    c_in = module.in_shape[0]
    if not isinstance(out_channels, (int, np.integer)) or out_channels < 1:
        raise ValueError(f"{owner}: out_channels must be a positive integer, got {out_channels!r}")
    if not isinstance(groups, (int, np.integer)) or groups < 1 or c_in % groups or out_channels % groups:
        raise ValueError(f"{owner}: groups must divide in_channels ({c_in}) and out_channels ({out_channels}), "
                         f"got {groups!r}")
    kernel = _tuple(kernel_size, dims, "kernel_size", owner)
    module.stride = _tuple(stride, dims, "stride", owner)
    module.dilation = _tuple(dilation, dims, "dilation", owner)
    module.padding = _padding(padding, kernel, module.dilation, owner)
    module.groups = int(groups)
    spatial = tuple(_out_size(n, k, s, p, d, owner) for n, k, s, p, d in
                    zip(module.in_shape[1:], kernel, module.stride, module.padding, module.dilation))
    module.out_shape = (int(out_channels),) + spatial
    w_shape = (int(out_channels), c_in // module.groups) + kernel
    if weight is None:
        if key is None:
            raise ValueError(f"{owner}: give key= (a PRNG key) to draw the weights, or weight=")
        check_finite(scale, "scale", owner)
        fan_in, fan_out = w_shape[1] * math.prod(kernel), w_shape[0] * math.prod(kernel)
        weight = scale * jax.random.normal(key, w_shape) * np.sqrt(2.0 / (fan_in + fan_out))
    weight = jnp.asarray(weight, jnp.result_type(float))
    if weight.shape != w_shape:
        raise ValueError(f"{owner}: weight must have shape {w_shape} (out, in/groups, *kernel), got {weight.shape}")
    module.weight = weight
    if bias is True:
        bias = jnp.zeros((int(out_channels),), weight.dtype)
    elif bias is False or bias is None:
        bias = None
    else:
        bias = jnp.asarray(bias, weight.dtype)
        if bias.shape != (int(out_channels),):
            raise ValueError(f"{owner}: bias must have shape ({out_channels},), got {bias.shape}")
    module.bias = bias


class Conv2d(_Conv):
    """2-D convolution of a ``(C_in, H, W)`` input into ``out_channels`` feature maps (cross-correlation, as
    PyTorch's ``nn.Conv2d``).

    Args:
        in_shape: ``(C_in, H, W)`` of the input.
        out_channels: number of output feature maps.
        kernel_size, stride, dilation: an integer or ``(kH, kW)``.
        padding: zeros added on each side: an integer, ``(pH, pW)``, ``((top, bottom), (left, right))``,
            ``"valid"`` (none) or ``"same"`` (output size = input size at stride 1).
        groups: grouped convolution (``groups == C_in == out_channels``: depthwise).
        bias: learn a per-channel bias (pA), or an array ``(out_channels,)``.
        key: PRNG key for the weights (normal, std ``scale * sqrt(2 / (fan_in + fan_out))``), or ``weight``.
    """

    weight: Array
    bias: Array | None
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)
    dilation: tuple = eqx.field(static=True)
    groups: int = eqx.field(static=True)

    def __init__(self, in_shape, out_channels: int, kernel_size: IntOrPair, *, stride: IntOrPair = 1,
                 padding="valid", dilation: IntOrPair = 1, groups: int = 1, bias=True, key=None,
                 scale: float = 1.0, weight=None):
        _conv_fields(self, in_shape, out_channels, kernel_size, stride, padding, dilation, groups, bias, key, scale,
                     weight, dims=2)


class Conv1d(_Conv):
    """1-D convolution of a ``(C_in, L)`` input (e.g. audio channels over frequency), as ``nn.Conv1d``.

    Args: those of ``Conv2d`` with one spatial axis (``in_shape = (C_in, L)``).
    """

    weight: Array
    bias: Array | None
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)
    dilation: tuple = eqx.field(static=True)
    groups: int = eqx.field(static=True)

    def __init__(self, in_shape, out_channels: int, kernel_size: IntOrPair, *, stride: IntOrPair = 1,
                 padding="valid", dilation: IntOrPair = 1, groups: int = 1, bias=True, key=None,
                 scale: float = 1.0, weight=None):
        _conv_fields(self, in_shape, out_channels, kernel_size, stride, padding, dilation, groups, bias, key, scale,
                     weight, dims=1)


class _Pool(AbstractSynapticMap):
    """What the pooling maps share: a window reduction over each channel's spatial axes."""

    kernel_size: eqx.AbstractVar[tuple]
    stride: eqx.AbstractVar[tuple]
    padding: eqx.AbstractVar[tuple]

    def _reduce(self, x: Array, init, op) -> Array:
        ones = (1, 1)
        return jax.lax.reduce_window(x, init, op, ones + self.kernel_size, ones + self.stride,
                                     ((0, 0), (0, 0)) + self.padding)


def _pool_fields(module, in_shape, kernel_size, stride, padding):
    owner = type(module).__name__
    module.in_shape = _shape(in_shape, 2, owner)
    module.kernel_size = _tuple(kernel_size, 2, "kernel_size", owner)
    module.stride = module.kernel_size if stride is None else _tuple(stride, 2, "stride", owner)
    module.padding = _padding(padding, module.kernel_size, (1, 1), owner)
    if any(max(p) > k // 2 for p, k in zip(module.padding, module.kernel_size)):
        raise ValueError(f"{owner}: padding {module.padding} must be at most half the window "
                         f"{module.kernel_size} (whole windows of padding have no input)")
    spatial = tuple(_out_size(n, k, s, p, 1, owner) for n, k, s, p in
                    zip(module.in_shape[1:], module.kernel_size, module.stride, module.padding))
    module.out_shape = (module.in_shape[0],) + spatial


_POOL_DOC = """

    Args:
        in_shape: ``(C, H, W)`` of the input.
        kernel_size: window, an integer or ``(kH, kW)``.
        stride: step between windows (default: the window, non-overlapping).
        padding: zeros on each side (an integer, a pair, pairs of (low, high), ``"valid"`` or ``"same"``).
    """


class SumPool2d(_Pool):
    __doc__ = "Sum over each window (NIR's ``SumPool2d``): spike counts per window." + _POOL_DOC

    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    kernel_size: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)

    def __init__(self, in_shape, kernel_size: IntOrPair, *, stride=None, padding=0):
        _pool_fields(self, in_shape, kernel_size, stride, padding)

    def apply(self, x: Array) -> Array:
        return self._reduce(x, np.array(0, x.dtype), jax.lax.add)


class AvgPool2d(_Pool):
    __doc__ = ("Mean over each window, zero padding counted (PyTorch's ``nn.AvgPool2d`` default, NIR's "
               "``AvgPool2d``)." + _POOL_DOC)

    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    kernel_size: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)

    def __init__(self, in_shape, kernel_size: IntOrPair, *, stride=None, padding=0):
        _pool_fields(self, in_shape, kernel_size, stride, padding)

    def apply(self, x: Array) -> Array:
        return self._reduce(x, np.array(0, x.dtype), jax.lax.add) / math.prod(self.kernel_size)


class MaxPool2d(_Pool):
    __doc__ = "Largest entry of each window (``nn.MaxPool2d``; padding adds -inf)." + _POOL_DOC

    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    kernel_size: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)

    def __init__(self, in_shape, kernel_size: IntOrPair, *, stride=None, padding=0):
        _pool_fields(self, in_shape, kernel_size, stride, padding)

    def apply(self, x: Array) -> Array:
        return self._reduce(x, np.array(-np.inf, x.dtype), jax.lax.max)


class Flatten(AbstractSynapticMap):
    """Merges the axes ``start_dim..end_dim`` of an ``in_shape`` array (all of them by default; axes are counted
    without the batch axis, as NIR's ``Flatten`` writes them). On the flat layout it moves no data: it marks where
    a spatial stack meets dense layers."""

    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    start_dim: int = eqx.field(static=True)
    end_dim: int = eqx.field(static=True)

    def __init__(self, in_shape, start_dim: int = 0, end_dim: int = -1):
        shape = tuple(int(s) for s in np.atleast_1d(in_shape))
        if not shape or min(shape) < 1:
            raise ValueError(f"Flatten: in_shape must be positive sizes, got {in_shape!r}")
        n = len(shape)
        start, end = int(start_dim) % n if -n <= int(start_dim) < n else None, \
            int(end_dim) % n if -n <= int(end_dim) < n else None
        if start is None or end is None or start > end:
            raise ValueError(f"Flatten: start_dim {start_dim} and end_dim {end_dim} must name axes of {shape} in order")
        self.in_shape, self.start_dim, self.end_dim = shape, start, end
        self.out_shape = shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]

    def apply(self, x: Array) -> Array:
        return x.reshape((x.shape[0],) + self.out_shape)


class Scale(AbstractSynapticMap):
    """``y = scale * x + bias`` elementwise (NIR's ``Scale``; with a bias, a gain and offset folded in by
    ``brainsim.nir``). ``scale`` and ``bias`` broadcast against ``shape`` (e.g. one value per channel as
    ``(C, 1, 1)``)."""

    scale: Array
    bias: Array | None
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)

    def __init__(self, shape, scale=1.0, bias=None):
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if not shape or min(shape) < 1:
            raise ValueError(f"Scale: shape must be positive sizes, got {shape!r}")
        self.in_shape = self.out_shape = shape
        check_finite(scale, "scale", "Scale")
        self.scale = jnp.asarray(scale, jnp.result_type(float))
        self.bias = None if bias is None else jnp.asarray(bias, jnp.result_type(float))
        for name, value in (("scale", self.scale), ("bias", self.bias)):
            if value is not None and np.broadcast_shapes(value.shape, shape) != shape:
                raise ValueError(f"Scale: {name} of shape {value.shape} does not broadcast to {shape}")

    def apply(self, x: Array) -> Array:
        y = x * self.scale
        return y if self.bias is None else y + self.bias


class Dropout(AbstractSynapticMap):
    """Zeroes each input unit with probability ``p`` and scales the others by ``1 / (1 - p)``, with the same units
    dropped at every step of a sequence (variational dropout, Gal & Ghahramani 2016: one mask per example, as
    recurrent and spiking networks are usually regularised). Active only with a ``key``: ``Sequential(xs,
    key=...)`` gives every ``Dropout`` of the model its own (``with_dropout_keys``); without one (``simulate``,
    ``Sequential.step``), or in ``inference_mode`` (``fit``'s evaluation), it passes its input through unchanged.

    Args:
        shape: the input's shape (the map's ``in_shape`` and ``out_shape``).
        p: drop probability, 0 <= p < 1.
    """

    p: float = eqx.field(static=True)
    key: Union[jax.Array, None]
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    inference: bool  # a plain leaf (as in Equinox), so that inference_mode can switch it with tree_at

    def __init__(self, shape, p: float = 0.5, *, key=None, inference: bool = False):
        sizes = np.atleast_1d(shape)
        if sizes.size == 0 or not all(float(s) == int(s) >= 1 for s in sizes):
            raise ValueError(f"Dropout: shape must be positive whole sizes, got {shape!r}")
        shape = tuple(int(s) for s in sizes)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.in_shape = self.out_shape = shape
        self.p, self.key, self.inference = float(p), key, bool(inference)

    def apply(self, x: Array) -> Array:
        if self.key is None or self.p == 0.0 or self.inference:
            return x
        keep = jax.random.bernoulli(self.key, 1.0 - self.p, self.in_shape)
        return jnp.where(keep, x / (1.0 - self.p), jnp.zeros((), x.dtype))


def with_dropout_keys(model, key):
    """``model`` with a key of its own (folded from ``key``) in every ``Dropout`` it holds, which makes them drop
    units; ``key=None`` removes the keys (evaluation)."""
    count = [0]

    def keyed(leaf):
        if not isinstance(leaf, Dropout):
            return leaf
        count[0] += 1
        new = None if key is None else jax.random.fold_in(key, count[0])
        return eqx.tree_at(lambda d: d.key, leaf, new, is_leaf=lambda v: v is None)

    return jax.tree_util.tree_map(keyed, model, is_leaf=lambda v: isinstance(v, Dropout))


BATCH_AXIS = "batch"  # the name of the examples' vmapped axis in fit and Sequential.batch


def _at_least_float32(dtype):
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


class BatchNorm(AbstractSynapticMap):
    """Batch normalisation of a layer's currents, per channel (Ioffe & Szegedy 2015), with the statistics of a whole
    batch of sequences: over the examples, the time steps and the spatial positions (the threshold-dependent batch
    norm of spiking networks, tdBN, Zheng et al. 2021, which starts ``weight`` at ``alpha * v_th``)::

        y = weight * (x - mean) / sqrt(var + eps) + bias         per channel c (axis 0 of ``shape``)

    Training: ``mean`` and ``var`` are the batch's, taken across the vmapped examples when their axis is named
    ``axis_name`` (``"batch"``: ``fit`` and ``Sequential.batch`` name it), else across the one example's steps and
    positions. In ``inference_mode`` (``fit``'s evaluation): the running statistics, which
    ``calibrate_batch_norm(model, xs)`` sets from data (``fit`` does before each evaluation and at the end).
    ``weight`` and ``bias`` are learnable, the running statistics (``Buffer``) are not. Run one step at a time
    (``Sequential.step``, the ``StepByStep`` order) it sees one step's statistics only: use ``inference_mode`` there.

    Args:
        shape: the input's shape, channels first (e.g. ``(C, H, W)``, or ``(n,)``: one channel per unit).
        eps: added to the variance.
    """

    weight: Array
    bias: Array
    running_mean: Buffer
    running_var: Buffer
    eps: float = eqx.field(static=True)
    axis_name: str = eqx.field(static=True)
    inference: bool  # a plain leaf (as in Equinox), so that inference_mode can switch it with tree_at
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)

    def __init__(self, shape, *, eps: float = 1e-5, weight=1.0, axis_name: str = BATCH_AXIS, inference: bool = False):
        sizes = np.atleast_1d(shape)
        if sizes.size == 0 or not all(float(s) == int(s) >= 1 for s in sizes):
            raise ValueError(f"BatchNorm: shape must be positive whole sizes, got {shape!r}")
        if not float(eps) > 0.0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps!r}")
        self.in_shape = self.out_shape = tuple(int(s) for s in sizes)
        c = self.in_shape[0]
        check_finite(weight, "weight", "BatchNorm")
        self.weight = jnp.broadcast_to(jnp.asarray(weight, jnp.result_type(float)), (c,))
        self.bias = jnp.zeros((c,), jnp.result_type(float))
        self.running_mean = Buffer(jnp.zeros((c,), jnp.result_type(float)))
        self.running_var = Buffer(jnp.ones((c,), jnp.result_type(float)))
        self.eps, self.axis_name, self.inference = float(eps), str(axis_name), bool(inference)

    def statistics(self, x: Array):
        """Per-channel mean and variance of ``x`` ``(N, *in_shape)`` (and of the other examples of the named axis),
        in at least float32 (a low-precision ``x`` under ``mixed_precision`` would lose the variance)."""
        x = x.astype(_at_least_float32(x.dtype))
        axes = (0,) + tuple(range(2, x.ndim))

        def across_batch(value):
            try:
                return jax.lax.pmean(value, self.axis_name)
            except NameError:  # not inside a vmap over a named batch axis: this example's statistics
                return value

        mean = across_batch(jnp.mean(x, axes))
        centred = x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))
        return mean, across_batch(jnp.mean(centred * centred, axes))

    def apply(self, x: Array) -> Array:
        wide = _at_least_float32(x.dtype)  # normalised in at least float32, returned in x's dtype
        if self.inference:
            mean, var = jax.lax.stop_gradient((self.running_mean.value, self.running_var.value))
        else:
            mean, var = self.statistics(x)
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        scale = (self.weight.astype(wide) * jax.lax.rsqrt(var.astype(wide) + self.eps)).reshape(per_channel)
        y = (x.astype(wide) - mean.astype(wide).reshape(per_channel)) * scale + self.bias.astype(wide).reshape(per_channel)
        return y.astype(x.dtype)


def inference_mode(model, value: bool = True):
    """``model`` with every ``Dropout`` and ``BatchNorm`` it holds switched to inference (``value=True``: dropout
    passes its input through whatever key it is given, batch norm uses its running statistics) or back to
    training; ``fit`` evaluates in inference mode."""
    def switch(leaf):
        if isinstance(leaf, (Dropout, BatchNorm)):
            return eqx.tree_at(lambda d: d.inference, leaf, bool(value))
        return leaf

    return jax.tree_util.tree_map(switch, model, is_leaf=lambda v: isinstance(v, (Dropout, BatchNorm)))


class Chain(AbstractSynapticMap):
    """Maps applied one after the other (e.g. ``Chain([Conv2d(...), MaxPool2d(...)])``); shapes must chain."""

    maps: tuple
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)

    def __init__(self, maps):
        maps = tuple(maps)
        if not maps:
            raise ValueError("Chain: give at least one map")
        for i, m in enumerate(maps):
            if not isinstance(m, AbstractSynapticMap):
                raise TypeError(f"Chain: maps[{i}] must be a synaptic map (Conv2d, MaxPool2d, Flatten, Linear, ...), "
                                f"got {type(m).__name__}")
        for i, (a, b) in enumerate(zip(maps[:-1], maps[1:])):
            if a.n_out != b.n_in:
                raise ValueError(f"Chain: maps[{i}] gives {a.n_out} outputs {a.out_shape} but maps[{i + 1}] takes "
                                 f"{b.n_in} {b.in_shape}")
        self.maps = maps
        self.in_shape, self.out_shape = maps[0].in_shape, maps[-1].out_shape

    def apply(self, x: Array) -> Array:
        for m in self.maps:
            x = m.apply(x.reshape((x.shape[0],) + tuple(m.in_shape)))
        return x.reshape((x.shape[0],) + tuple(self.out_shape))
