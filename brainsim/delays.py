"""Synaptic delays: exact per-synapse integer delays (event-driven) and learnable delays (DCLS).

**Heterogeneous delays in the event-driven path** — ``DelayedEventOperator`` stores, beside the ELL
targets and weights of ``brainsim.propagation.EventOperator``, one integer delay per synapse (in steps
of ``dt``). Delivery keeps a *postsynaptic* ring buffer of ``max_delay + 1`` future input vectors::

    buffer: (max_delay + 1, n_post)        slot (t mod (D+1)) holds the input arriving at step t

A spike of presynaptic neuron ``i`` emitted at step ``t`` adds ``value_i * w_ik`` to slot
``(t + d_ik) mod (D + 1)`` of target ``targets[i, k]``; then slot ``t mod (D+1)`` is read and cleared.
So a spike arrives exactly ``d_ik`` steps after it was emitted (``d = 0``: the same step, as a projection
without delay). Memory: (D + 1) × n_post for the buffer — proportional to the maximum delay times the
number of neurons, not to the number of synapses — plus the per-synapse delays themselves, stored as
int8/int16 when ``max_delay`` allows (1–2 bytes per synapse). Cost per step: O(fan-out) per spike.

**Learnable delays** — ``DelayedDense`` is a feed-forward synaptic layer whose every synapse has a
continuous delay ``d_ij`` in ``[0, max_delay]`` steps, trainable by gradient descent with Dilated
Convolution with Learnable Spacings (DCLS; Hammouamri, Khalfaoui-Hassani & Masquelier 2023): the
delay is spread over the integer taps ``k = 0..max_delay`` with a Gaussian of width ``sigma`` (steps),
normalised over taps, so the output is differentiable in ``d``. ``sigma`` is annealed towards 0 during
training (``anneal_sigma``); at ``sigma -> 0`` (``hard=True``) the kernel is a one-hot tap at
``round(d)`` and the layer is exactly an integer-delay projection (``to_event_operator``).
Delays are stored unconstrained and mapped through ``d = max_delay * sigmoid(raw)``.
"""
from __future__ import annotations

import functools
import warnings
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from ._checks import check_count, check_size, positive_number, to_steps
from ._types import Array, ArrayLike
from ._kernels import KERNEL_DIR, NativeLibrary, cpu_or_pure
from . import connectivity
from .distributions import AbstractDistribution
from .propagation import EventOperator, default_capacity, ell_layout, for_each_event, row_cotangents


# ---------------------------------------------------------------------------------------------- validation
def check_integer_delays(delays, owner: str, *, max_delay: Optional[int] = None, dt: Optional[float] = None,
                         tol: float = 1e-6) -> np.ndarray:
    """Integer delays (steps) from ``delays`` (steps, or ms when ``dt`` is given); clear errors otherwise."""
    arr = np.asarray(delays)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{owner}: delays must be numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: delays contain NaN or infinite values")
    unit = "ms" if dt is not None else "steps"
    if max_delay is not None:
        max_delay = check_count(max_delay, owner, "max_delay")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{owner}: delays must be >= 0 {unit}, got {arr.min()}")
    if dt is not None:  # ms: the one rounding rule of every delay (nearest step, halves up)
        dt = positive_number(dt, "dt", "ms", owner)
        steps, off_grid = to_steps(arr, dt)
        if np.any(off_grid):
            example = np.asarray(delays).ravel()[np.argmax(off_grid.ravel())]
            warnings.warn(f"{owner}: {int(off_grid.sum())} delays are not whole numbers of steps of dt = {dt} ms "
                          f"(e.g. {example} ms); they are rounded to the nearest step, halves up", stacklevel=3)
    else:
        steps = np.rint(arr)
        bad = np.abs(arr - steps) > tol * np.maximum(1.0, np.abs(arr))
        if np.any(bad):
            example = np.asarray(delays).ravel()[np.argmax(bad.ravel())]
            raise ValueError(f"{owner}: delays in steps must be integer numbers of steps; got {example} (give "
                             f"dt= to give them in ms)")
        steps = steps.astype(np.int64)
    if max_delay is not None and steps.size and steps.max() > max_delay:
        raise ValueError(f"{owner}: delay of {steps.max()} steps exceeds max_delay = {max_delay} steps")
    return steps


def _delay_dtype(max_delay: int):
    return np.int8 if max_delay < 2**7 else np.int16 if max_delay < 2**15 else np.int32


# ----------------------------------------------------------------------------- event-driven propagation
def _scatter_rows(buffer, rows, values, targets, delays, weights, step, n_post: int):
    """Add ``values[r] * w[rows[r], k]`` to ``buffer[(step + d) mod (D+1), target]`` for the rows given."""
    depth = buffer.shape[0]
    rows_t = jnp.take(targets, rows, axis=0, mode="fill", fill_value=n_post)
    rows_d = jnp.take(delays, rows, axis=0, mode="fill", fill_value=0).astype(jnp.int32)
    if weights.ndim == 0:
        contrib = jnp.broadcast_to((values * weights)[:, None], rows_t.shape)
    else:
        contrib = jnp.take(weights, rows, axis=0, mode="fill", fill_value=0) * values[:, None]
    slot = (step + rows_d) % depth
    flat = jnp.where(rows_t < n_post, slot * n_post + rows_t, depth * n_post)  # padding -> dropped
    return buffer.reshape(-1).at[flat].add(contrib.astype(buffer.dtype), mode="drop").reshape(buffer.shape)


def _schedule_pure(buffer, spikes, targets, delays, weights, step, capacity: int):
    n_post = buffer.shape[1]

    def body(buf, rows):
        values = jnp.take(spikes, rows, mode="fill", fill_value=0)
        return _scatter_rows(buf, rows, values, targets, delays, weights, step, n_post)

    return for_each_event(spikes, capacity, body, buffer)


# Native binding: the same scheduling in place, O(out-degree) per spike (brainsim/_kernels/delayed_schedule.cc).
_SCHEDULE_TARGETS = {np.dtype(np.int8): "brainsim_delayed_schedule_s8", np.dtype(np.int16): "brainsim_delayed_schedule_s16",
                     np.dtype(np.int32): "brainsim_delayed_schedule_s32"}
_SCHEDULE = NativeLibrary(KERNEL_DIR / "delayed_schedule.cc",
                          {"brainsim_delayed_schedule_s8": "BrainsimDelayedScheduleS8",
                           "brainsim_delayed_schedule_s16": "BrainsimDelayedScheduleS16",
                           "brainsim_delayed_schedule_s32": "BrainsimDelayedScheduleS32"})


def _schedule_native(buffer, spikes, targets, delays, weights, step):
    target = _SCHEDULE_TARGETS[np.dtype(delays.dtype)]
    return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(buffer.shape, buffer.dtype), input_output_aliases={0: 0},
                            vmap_method="sequential")(buffer, spikes, targets, delays, weights.reshape(-1),
                                                      jnp.asarray(step, jnp.int32).reshape(1))


def _schedule_forward(buffer, spikes, targets, delays, weights, step, capacity: int):
    usable = (buffer.dtype == jnp.float32 and spikes.dtype == jnp.float32 and weights.dtype == jnp.float32
              and targets.dtype == jnp.int32 and np.dtype(delays.dtype) in _SCHEDULE_TARGETS and _SCHEDULE.available())
    return cpu_or_pure(_schedule_native, functools.partial(_schedule_pure, capacity=capacity), buffer, spikes,
                       targets, delays, weights, step, usable=usable)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def schedule(buffer, spikes, targets, delays, weights, step, capacity: int):
    """Add the spikes emitted at ``step`` into the postsynaptic ring ``buffer`` at their arrival slots.

    Differentiable in ``buffer`` (identity), ``spikes`` and ``weights``; the backward pass is
    ``d w_ik = spikes_i * d buffer[(step + d_ik) mod (D+1), t_ik]``.
    """
    return _schedule_forward(buffer, spikes, targets, delays, weights, step, capacity)


def _schedule_fwd(buffer, spikes, targets, delays, weights, step, capacity):
    out = _schedule_forward(buffer, spikes, targets, delays, weights, step, capacity)
    return out, (spikes, targets, delays, weights, step)


def _schedule_bwd(capacity, residuals, d_out):
    spikes, targets, delays, weights, step = residuals
    depth, n_post = d_out.shape
    slot = (step + delays.astype(jnp.int32)) % depth
    flat = jnp.where(targets < n_post, slot * n_post + targets, depth * n_post)
    d_at = jnp.take(d_out.reshape(-1), flat, mode="fill", fill_value=0)  # (n_pre, K)
    d_spikes, d_weights = row_cotangents(d_at, spikes, weights)
    zero_int = lambda a: np.zeros(a.shape, dtype=jax.dtypes.float0)  # noqa: E731
    return (d_out, d_spikes.astype(spikes.dtype), zero_int(targets), zero_int(delays),
            d_weights.astype(weights.dtype), zero_int(step))


schedule.defvjp(_schedule_fwd, _schedule_bwd)


def _aligned_values(matrix: sparse.BCOO, values: sparse.BCOO, owner: str) -> np.ndarray:
    """``values``' data in the stored order of ``matrix``, matching entries by (pre, post); repeated pairs are
    matched in their stored order. Raises when the two hold different synapses."""
    if values.shape != matrix.shape:
        raise ValueError(f"{owner}: the delay matrix has shape {values.shape}, the weights {matrix.shape}")
    a, b = np.asarray(matrix.indices), np.asarray(values.indices)
    data = np.asarray(values.data)
    if a.shape == b.shape and np.array_equal(a, b):
        return data
    n_post = matrix.shape[1]
    key_a, key_b = a[:, 0].astype(np.int64) * n_post + a[:, 1], b[:, 0].astype(np.int64) * n_post + b[:, 1]
    order_a, order_b = np.argsort(key_a, kind="stable"), np.argsort(key_b, kind="stable")
    if len(key_a) != len(key_b) or not np.array_equal(key_a[order_a], key_b[order_b]):
        missing = len(np.setdiff1d(key_a, key_b))
        raise ValueError(f"{owner}: the delay matrix does not hold the same synapses as the weights ({len(key_b)} vs "
                         f"{len(key_a)} entries, {missing} synapses without a delay)")
    out = np.empty_like(data)
    out[order_a] = data[order_b]
    return out


class DelayedEventOperator(eqx.Module):
    """ELL synapses with one integer delay per synapse (see module docstring).

    Attributes:
        weights: ``(n_pre, K)`` weights (nS or pA), zero in padding; or a scalar (homogeneous).
        targets: ``(n_pre, K)`` int32 postsynaptic indices, ``n_post`` = padding (at row ends).
        delays: ``(n_pre, K)`` integer delays in steps of ``dt`` (int8/int16/int32 by ``max_delay``).
        max_delay: largest allowed delay, steps (static; sets the ring-buffer depth ``max_delay + 1``).
        dt: the step (ms) the delays were given in, when they were given in ms (``from_sparse(..., dt=)``,
            ``from_indices(..., dt=)``): a projection stepped with another dt is an error.
    """

    weights: Array
    targets: Array
    delays: Array
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)
    n_synapses: int = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)
    dt: Optional[float] = eqx.field(static=True)

    def __init__(self, weights, targets, delays, n_post: int, *, max_delay: Optional[int] = None,
                 n_synapses: Optional[int] = None, capacity: Optional[int] = None, dt: Optional[float] = None):
        owner = "DelayedEventOperator"
        targets = np.asarray(targets, dtype=np.int32)
        if targets.ndim != 2:
            raise ValueError(f"{owner}: targets must have shape (n_pre, K), got {targets.shape}")
        weights = jnp.asarray(weights, dtype=jnp.result_type(float))
        if weights.ndim != 0 and weights.shape != targets.shape:
            raise ValueError(f"{owner}: weights {weights.shape} must be a scalar or match targets {targets.shape}")
        delays_arr = np.asarray(delays)
        if delays_arr.shape != targets.shape:
            raise ValueError(f"{owner}: delays have shape {delays_arr.shape}, expected {targets.shape} "
                             "(one integer delay in steps per synapse)")
        if max_delay is not None and (isinstance(max_delay, bool) or not isinstance(max_delay, (int, np.integer))
                                      or max_delay < 0):
            raise ValueError(f"{owner}: max_delay must be a non-negative integer number of steps, got {max_delay!r}")
        real = targets < n_post
        steps = check_integer_delays(np.where(real, delays_arr, 0), owner, max_delay=max_delay)
        top = int(steps.max(initial=0)) if max_delay is None else int(max_delay)
        self.weights, self.targets = weights, jnp.asarray(targets)
        self.delays = jnp.asarray(steps.astype(_delay_dtype(top)))
        self.n_pre, self.n_post = int(targets.shape[0]), int(n_post)
        self.n_synapses = int(real.sum()) if n_synapses is None else int(n_synapses)
        self.max_delay = top
        cap = default_capacity(self.n_pre) if capacity is None else check_size(capacity, owner, "capacity")
        self.capacity = min(cap, self.n_pre)
        self.dt = None if dt is None else positive_number(dt, "dt", "ms", owner)

    def check_dt(self, dt: float, owner: str) -> None:
        """Raise when the delays were given in ms for another step than ``dt``."""
        if self.dt is not None and abs(self.dt - dt) > 1e-9 * self.dt:
            raise ValueError(f"{owner}: its delays were converted to steps of dt = {self.dt} ms, but it is stepped "
                             f"with dt = {dt} ms; build the operator with the dt you simulate with")

    @classmethod
    def from_indices(cls, pre, post, n_pre: int, n_post: int, weights, delays, *, dt: Optional[float] = None,
                     max_delay: Optional[int] = None, capacity: Optional[int] = None) -> "DelayedEventOperator":
        """Synapses ``pre[i] -> post[i]`` with weight ``weights[i]`` and delay ``delays[i]``, in any order (each
        delay stays with its synapse; repeated pairs are separate synapses).

        Args:
            pre, post: 1-D integer arrays of equal length.
            weights, delays: a scalar or one value per synapse, in the order of ``pre``/``post``; delays in steps,
                or in ms when ``dt`` (ms) is given (rounded to the nearest step, halves up).
        """
        owner = "DelayedEventOperator.from_indices"
        pre, post = np.asarray(pre), np.asarray(post)
        if pre.shape != post.shape or pre.ndim != 1:
            raise ValueError(f"{owner}: pre and post must be 1-D arrays of equal length, got {pre.shape} and {post.shape}")
        n = len(pre)
        for name, value in (("weights", weights), ("delays", delays)):
            if np.ndim(value) not in (0, 1) or (np.ndim(value) == 1 and len(value) != n):
                raise ValueError(f"{owner}: {name} must be a scalar or one value per synapse ({n}), got shape "
                                 f"{np.shape(value)}")
        matrix = connectivity.from_indices(pre, post, n_pre, n_post, weights, multapses=True)
        order = np.lexsort((post, pre))  # the stored order of from_indices (stable among repeated pairs)
        delays = np.broadcast_to(np.asarray(delays), (n,))[order]
        return cls._from_aligned(matrix, delays, dt, max_delay, capacity, False, owner)

    @classmethod
    def from_sparse(cls, matrix, delays, *, dt: Optional[float] = None, max_delay: Optional[int] = None,
                    capacity: Optional[int] = None, homogeneous: bool = False, key=None) -> "DelayedEventOperator":
        """Build from a ``(n_pre, n_post)`` BCOO/BCSR weight matrix and the delays of its synapses.

        Args:
            matrix: weights (nS or pA).
            delays: a sparse matrix (BCOO/BCSR) holding each synapse's delay at its (pre, post) position (the
                same synapses as ``matrix``, in any stored order), one delay for all synapses (a number), or a
                distribution (``brainsim.distributions``) drawn once per synapse with ``key``. A plain array is
                refused: nothing ties its order to the synapses' (use ``from_indices`` for delays listed with
                their pre and post indices). Delays are integer steps, or ms when ``dt`` (ms) is given (rounded
                to the nearest step, halves up).
            max_delay: maximum delay in steps (default: the largest delay given); larger delays are errors.
            key: JAX key or NumPy ``Generator`` for a distribution of delays.
        """
        owner = "DelayedEventOperator.from_sparse"
        if isinstance(matrix, sparse.BCSR):
            matrix = matrix.to_bcoo()
        nse = int(matrix.data.shape[0])
        if isinstance(delays, sparse.BCSR):
            delays = delays.to_bcoo()
        if isinstance(delays, sparse.BCOO):
            delays = _aligned_values(matrix, delays, owner)
        elif isinstance(delays, AbstractDistribution):
            if key is None:
                raise ValueError(f"{owner}: delays drawn from {type(delays).__name__} need a key (key=jax.random.key(0))")
            delays = np.asarray(delays(key, nse))
        elif np.ndim(delays) == 0:
            delays = np.full(nse, delays)
        else:
            raise ValueError(f"{owner}: delays given as a plain array cannot be matched to the synapses (their order "
                             f"is the matrix's stored order, not yours): give a sparse matrix of delays with the same "
                             f"(pre, post) entries, or use DelayedEventOperator.from_indices(pre, post, ..., delays)")
        return cls._from_aligned(matrix, delays, dt, max_delay, capacity, homogeneous, owner)

    @classmethod
    def _from_aligned(cls, matrix, delays, dt, max_delay, capacity, homogeneous, owner) -> "DelayedEventOperator":
        """From a BCOO and one delay per stored entry, in the order of ``matrix.data``."""
        steps = check_integer_delays(delays, owner, max_delay=max_delay, dt=dt)
        base = EventOperator.from_sparse(matrix, homogeneous=homogeneous)
        ell_delays = ell_layout(matrix).scatter(steps, np.int64)
        return cls(base.weights, base.targets, ell_delays, base.n_post, max_delay=max_delay,
                   n_synapses=base.n_synapses, capacity=capacity, dt=dt)

    @property
    def homogeneous(self) -> bool:
        return self.weights.ndim == 0

    @property
    def depth(self) -> int:
        """Ring-buffer depth, ``max_delay + 1`` steps."""
        return self.max_delay + 1

    def init_buffer(self, dtype=None) -> Array:
        """Empty postsynaptic ring buffer ``(max_delay + 1, n_post)``."""
        return jnp.zeros((self.depth, self.n_post), dtype or self.weights.dtype)

    def propagate(self, buffer: Array, step, spikes: Array) -> tuple[Array, Array]:
        """Schedule the spikes emitted at ``step`` and return ``(new_buffer, input arriving at step)``.

        Args:
            buffer: ``(max_delay + 1, n_post)`` ring buffer from ``init_buffer`` / the previous step.
            step: index of the current step (int scalar).
            spikes: ``(n_pre,)`` spike values emitted at ``step``.
        """
        if spikes.shape != (self.n_pre,):
            raise ValueError(f"DelayedEventOperator: spikes have shape {spikes.shape}, expected ({self.n_pre},)")
        if buffer.shape != (self.depth, self.n_post):
            raise ValueError(f"DelayedEventOperator: buffer has shape {buffer.shape}, expected "
                             f"({self.depth}, {self.n_post})")
        step = jnp.asarray(step, jnp.int32)
        buffer = schedule(buffer, spikes.astype(buffer.dtype), self.targets, self.delays,
                          self.weights.astype(buffer.dtype), step, self.capacity)
        slot = step % self.depth
        arrived = jax.lax.dynamic_index_in_dim(buffer, slot, keepdims=False)
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, jnp.zeros_like(arrived), slot, 0)
        return buffer, arrived

    def without_delays(self) -> EventOperator:
        """The same synapses delivered without delay."""
        return EventOperator(self.weights, self.targets, self.n_post, n_synapses=self.n_synapses,
                             capacity=self.capacity)

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``(n_pre, n_post)`` weights and delays (steps; -1 where there is no synapse)."""
        t, w, d = np.asarray(self.targets), np.broadcast_to(np.asarray(self.weights), self.targets.shape), np.asarray(self.delays)
        W = np.zeros((self.n_pre, self.n_post), np.float32)
        D = np.full((self.n_pre, self.n_post), -1, np.int64)
        pre, slot = np.nonzero(t < self.n_post)
        W[pre, t[pre, slot]] = w[pre, slot]
        D[pre, t[pre, slot]] = d[pre, slot]
        return W, D


# ------------------------------------------------------------------------------------ learnable delays
def anneal_sigma(step, n_steps: int, sigma_start: float, sigma_end: float = 0.5):
    """Exponential annealing of the DCLS kernel width (steps) from ``sigma_start`` to ``sigma_end``."""
    if not (sigma_start > 0 and sigma_end > 0):
        raise ValueError(f"anneal_sigma: widths must be > 0 steps, got {sigma_start} and {sigma_end}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(int(n_steps) - 1, 1), 0.0, 1.0)
    return sigma_start * (sigma_end / sigma_start) ** frac


class DelayedDense(eqx.Module):
    """Dense feed-forward synapses ``n_in -> n_out`` with a learnable continuous delay per synapse (DCLS).

    ``layer(x, sigma)`` maps input spikes ``x`` of shape ``(T, n_in)`` (or ``(B, T, n_in)``), one row per
    step of ``dt``, to synaptic input ``(T, n_out)``::

        out[t, j] = sum_i sum_k  x[t - k, i] * w_ij * g_k(d_ij),    k = 0 .. max_delay
        g_k(d) = exp(-(k - d)^2 / (2 sigma^2)) / sum_k' exp(-(k' - d)^2 / (2 sigma^2))

    Args:
        n_in, n_out: numbers of input and output neurons.
        max_delay: largest delay, steps of ``dt`` (integer >= 1): delays live in ``[0, max_delay]``.
        key: PRNG key (weights ~ N(0, weight_scale^2 / n_in) times sqrt(n_in)... see ``weight_scale``).
        weight_scale: standard deviation of the initial weights (weight units: pA or nS).
        init_delays: optional initial delays in steps, ``(n_in, n_out)`` or scalar (default uniform).
        learn_delays: if False the delays are stored as a non-trainable (stop-gradient) parameter.

    Parameters: ``weight`` ``(n_in, n_out)``; ``delay_raw`` ``(n_in, n_out)``, unconstrained, with
    ``delays = max_delay * sigmoid(delay_raw)`` (steps).
    """

    weight: Array
    delay_raw: Array
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)
    learn_delays: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, max_delay: int, *, key, weight_scale: float = 1.0,
                 init_delays: Optional[ArrayLike] = None, learn_delays: bool = True):
        owner = "DelayedDense"
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{owner}: {name} must be a positive integer, got {v!r}")
        if isinstance(max_delay, bool) or not isinstance(max_delay, (int, np.integer)) or max_delay < 1:
            raise ValueError(f"{owner}: max_delay must be an integer number of steps >= 1, got {max_delay!r}")
        self.n_in, self.n_out, self.max_delay = int(n_in), int(n_out), int(max_delay)
        self.learn_delays = bool(learn_delays)
        k_w, k_d = jax.random.split(key)
        self.weight = weight_scale * jax.random.normal(k_w, (n_in, n_out))
        if init_delays is None:
            d0 = jax.random.uniform(k_d, (n_in, n_out), minval=0.05, maxval=0.95) * max_delay
        else:
            d0 = np.asarray(init_delays, dtype=np.float64)
            if d0.ndim and d0.shape != (n_in, n_out):
                raise ValueError(f"{owner}: init_delays has shape {d0.shape}, expected a scalar or ({n_in}, {n_out})")
            if np.any(d0 < 0) or np.any(d0 > max_delay):
                raise ValueError(f"{owner}: init_delays must lie in [0, max_delay = {max_delay}] steps")
            d0 = jnp.broadcast_to(jnp.asarray(np.clip(d0, 1e-3, max_delay - 1e-3), jnp.float32), (n_in, n_out))
        self.delay_raw = jnp.log(d0 / max_delay) - jnp.log1p(-d0 / max_delay)  # logit

    @property
    def in_shape(self) -> tuple:
        return (self.n_in,)

    @property
    def out_shape(self) -> tuple:
        return (self.n_out,)

    @property
    def delays(self) -> Array:
        """Continuous delays, steps, in ``[0, max_delay]``."""
        raw = self.delay_raw if self.learn_delays else jax.lax.stop_gradient(self.delay_raw)
        return self.max_delay * jax.nn.sigmoid(raw)

    def kernel(self, sigma=1.0, *, hard: bool = False) -> Array:
        """Tap kernel ``(max_delay + 1, n_in, n_out)``: ``w_ij g_k(d_ij)`` (one-hot at round(d) if ``hard``)."""
        taps = jnp.arange(self.max_delay + 1, dtype=jnp.float32)[:, None, None]
        d = self.delays[None]
        if hard:
            g = (taps == jnp.round(d)).astype(jnp.float32)
        else:
            logits = -0.5 * ((taps - d) / sigma) ** 2
            g = jax.nn.softmax(logits, axis=0)
        return g * self.weight[None]

    def __call__(self, x: Array, sigma=1.0, *, hard: bool = False) -> Array:
        """Synaptic input ``(T, n_out)`` (or ``(B, T, n_out)``) for input spikes ``x`` ``(T, n_in)`` / ``(B, T, n_in)``."""
        if x.shape[-1] != self.n_in or x.ndim not in (2, 3):
            raise ValueError(f"DelayedDense: input has shape {x.shape}, expected (T, {self.n_in}) or (B, T, {self.n_in})")
        batched = x.ndim == 3
        xb = x if batched else x[None]
        kern = self.kernel(sigma, hard=hard)  # (D+1, n_in, n_out)
        rhs = jnp.transpose(kern[::-1], (2, 1, 0))  # (O, I, W): flipped in time for a causal correlation
        lhs = jnp.transpose(xb, (0, 2, 1)).astype(rhs.dtype)  # (B, I, T)
        out = jax.lax.conv_general_dilated(lhs, rhs, window_strides=(1,), padding=[(self.max_delay, 0)],
                                           dimension_numbers=("NCH", "OIH", "NCH"))
        out = jnp.transpose(out, (0, 2, 1))
        return out if batched else out[0]

    def integer_delays(self) -> np.ndarray:
        """Delays rounded to whole steps (host array), as used with ``hard=True``."""
        return np.rint(np.asarray(self.delays)).astype(np.int64)

    def to_event_operator(self, *, capacity: Optional[int] = None) -> DelayedEventOperator:
        """Exact event-driven equivalent with the rounded delays (all-to-all synapses)."""
        targets = np.broadcast_to(np.arange(self.n_out, dtype=np.int32), (self.n_in, self.n_out))
        return DelayedEventOperator(self.weight, targets, self.integer_delays(), self.n_out,
                                    max_delay=self.max_delay, capacity=capacity)
