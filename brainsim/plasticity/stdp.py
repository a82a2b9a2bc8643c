"""Spike-timing-dependent plasticity on ELL weights, updated event-driven.

Pair-based STDP with exponential windows (Song, Miller & Abbott 2000; Morrison et al. 2008), with
presynaptic traces ``x`` (time constant ``tau_plus``) and postsynaptic traces ``y`` (``tau_minus``)::

    tau_plus  dx_i/dt = -x_i      pre spike of i:  x_i <- x_i + 1     (all-to-all) or x_i <- 1 (nearest)
    tau_minus dy_j/dt = -y_j      post spike of j: y_j <- y_j + 1     (all-to-all) or y_j <- 1 (nearest)

    pre spike of i  (depression):   w_ij <- w_ij - A_minus * f_minus(w_ij) * y_j      for every target j
    post spike of j (potentiation): w_ij <- w_ij + A_plus  * f_plus(w_ij)  * x_i      for every source i

Triplet STDP (Pfister & Gerstner 2006) adds slow traces ``r2`` (pre, ``tau_x``) and ``o2`` (post,
``tau_y``) and uses, with the slow traces taken just before the current spike's own increment::

    pre spike:  w <- w - y_j (A2_minus + A3_minus r2_i)        post spike: w <- w + x_i (A2_plus + A3_plus o2_j)

Order within a step of ``dt`` (ms) — the same as Brian2's ``on_pre`` before ``on_post``: traces relax over
``dt``; presynaptic events depress (using post traces that do not yet include this step's post spikes);
pre traces jump; postsynaptic events potentiate (so a pre and a post spike in the same step count as
pre-before-post, Δt = 0); post traces jump.

Weight dependence, with ``u = (w - w_min) / (w_max - w_min)``:

- ``"additive"``:        f_plus = 1,     f_minus = 1
- ``"multiplicative"``:  f_plus = 1,     f_minus = u      (van Rossum, Bi & Turrigiano 2000)

Bounds: ``"hard"`` clips to ``[w_min, w_max]`` after every update; ``"soft"`` additionally multiplies
``f_plus`` by ``1 - u`` and makes ``f_minus = u`` (updates vanish at the bounds, Gütig et al. 2003 with
mu = 1), and still clips as a guard.

Cost per step: O(n_pre + n_post) to relax the traces plus O(fan-out) per presynaptic spike and
O(fan-in) per postsynaptic spike; the postsynaptic columns are found through a ``ReverseIndex`` built
once outside the time loop.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _native

from .._checks import check_choice
from .._kernels import cpu_or_pure
from .._types import Array
from ..propagation import deliver_jax, row_cotangents
from ..core.contracts import AbstractRule
from .base import ReverseIndex, check_bounds, check_scalar, default_event_capacity, for_each_event

WEIGHT_DEPENDENCES = ("additive", "multiplicative")
BOUNDS = ("hard", "soft")
PAIRINGS = ("all_to_all", "nearest")


class STDPState(NamedTuple):
    weights: Array  # (n_pre, K) synaptic weights in ELL layout, nS or pA
    pre_trace: Array  # (1, n_pre) for pair STDP, (2, n_pre) for triplet: x (tau_plus) and r2 (tau_x)
    post_trace: Array  # (1, n_post) for pair STDP, (2, n_post) for triplet: y (tau_minus) and o2 (tau_y)


class STDP(AbstractRule):
    """Pair-based STDP (see module docstring).

    Args:
        tau_plus: presynaptic trace time constant, ms (potentiation window), > 0.
        tau_minus: postsynaptic trace time constant, ms (depression window), > 0.
        A_plus: potentiation amplitude per pre-post pair, in weight units (nS or pA), >= 0.
        A_minus: depression amplitude per post-pre pair, in weight units (nS or pA), >= 0.
        w_min, w_max: weight bounds (nS or pA), w_min < w_max.
        weight_dependence: ``"additive"`` or ``"multiplicative"``.
        bounds: ``"hard"`` or ``"soft"``.
        pairing: ``"all_to_all"`` (traces sum over all spikes) or ``"nearest"`` (traces reset to 1).
        capacity: events handled per batch of the pure-JAX event loop (default ~0.5 % of the neurons).
        native: use the native CPU kernel when available (same result; the pure-JAX path runs elsewhere).
        triplet: keep the slow traces of triplet STDP even when ``A3_plus`` and ``A3_minus`` are 0
            (``TripletSTDP`` sets it).
    """

    tau_plus: float = eqx.field(static=True)
    tau_minus: float = eqx.field(static=True)
    A_plus: float = eqx.field(static=True)
    A_minus: float = eqx.field(static=True)
    w_min: float = eqx.field(static=True)
    w_max: float = eqx.field(static=True)
    weight_dependence: str = eqx.field(static=True)
    bounds: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    capacity: Optional[int] = eqx.field(static=True)
    # triplet terms (zero for pair STDP)
    tau_x: float = eqx.field(static=True)
    tau_y: float = eqx.field(static=True)
    A3_plus: float = eqx.field(static=True)
    A3_minus: float = eqx.field(static=True)
    modulator: Optional[str] = eqx.field(static=True)
    native: bool = eqx.field(static=True)
    triplet: bool = eqx.field(static=True)  # two traces per side (pre: x, r2; post: y, o2)
    needs_reverse = True

    def __init__(self, *, tau_plus: float = 20.0, tau_minus: float = 20.0, A_plus: float = 0.01,
                 A_minus: float = 0.0105, w_min: float = 0.0, w_max: float = 1.0,
                 weight_dependence: str = "additive", bounds: str = "hard", pairing: str = "all_to_all",
                 capacity: Optional[int] = None, tau_x: float = 1.0, tau_y: float = 1.0,
                 A3_plus: float = 0.0, A3_minus: float = 0.0, native: bool = True, triplet: bool = False):
        owner = type(self).__name__
        self.tau_plus = check_scalar(tau_plus, "tau_plus (ms)", owner, positive=True, allow_zero=False)
        self.tau_minus = check_scalar(tau_minus, "tau_minus (ms)", owner, positive=True, allow_zero=False)
        self.tau_x = check_scalar(tau_x, "tau_x (ms)", owner, positive=True, allow_zero=False)
        self.tau_y = check_scalar(tau_y, "tau_y (ms)", owner, positive=True, allow_zero=False)
        self.A_plus = check_scalar(A_plus, "A_plus (learning rate, weight units)", owner, positive=True)
        self.A_minus = check_scalar(A_minus, "A_minus (learning rate, weight units)", owner, positive=True)
        self.A3_plus = check_scalar(A3_plus, "A3_plus (learning rate, weight units)", owner, positive=True)
        self.A3_minus = check_scalar(A3_minus, "A3_minus (learning rate, weight units)", owner, positive=True)
        self.w_min, self.w_max = check_bounds(w_min, w_max, owner)
        self.weight_dependence = check_choice(weight_dependence, WEIGHT_DEPENDENCES, "weight_dependence", owner)
        self.bounds = check_choice(bounds, BOUNDS, "bounds", owner)
        self.pairing = check_choice(pairing, PAIRINGS, "pairing", owner)
        if capacity is not None and (not isinstance(capacity, int) or capacity <= 0):
            raise ValueError(f"{owner}: capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self.modulator = None
        self.native = bool(native)
        self.triplet = bool(triplet) or self.A3_plus != 0.0 or self.A3_minus != 0.0

    @property
    def n_traces(self) -> int:
        return 2 if self.triplet else 1

    # ---------------------------------------------------------------- weight dependence
    def _u(self, w):
        return (w - self.w_min) / (self.w_max - self.w_min)

    def f_plus(self, w: Array) -> Array:
        if self.bounds == "soft":
            return 1.0 - self._u(w)
        return jnp.ones_like(w)

    def f_minus(self, w: Array) -> Array:
        if self.bounds == "soft" or self.weight_dependence == "multiplicative":
            return self._u(w)
        return jnp.ones_like(w)

    def clip(self, w: Array) -> Array:
        return jnp.clip(w, self.w_min, self.w_max)

    # ---------------------------------------------------------------- state
    def init_state(self, weights: Array, n_pre: int, n_post: int) -> STDPState:
        """Traces at zero; ``weights`` is the ``(n_pre, K)`` ELL weight array."""
        weights = jnp.asarray(weights)
        if weights.ndim != 2 or weights.shape[0] != n_pre:
            raise ValueError(f"{type(self).__name__}: weights must have shape ({n_pre}, K), got {weights.shape}")
        dtype = weights.dtype
        return STDPState(weights=weights, pre_trace=jnp.zeros((self.n_traces, n_pre), dtype),
                         post_trace=jnp.zeros((self.n_traces, n_post), dtype))

    def _decays(self, dt: float, dtype):
        pre = [math.exp(-dt / self.tau_plus), math.exp(-dt / self.tau_x)][: self.n_traces]
        post = [math.exp(-dt / self.tau_minus), math.exp(-dt / self.tau_y)][: self.n_traces]
        return jnp.asarray(pre, dtype)[:, None], jnp.asarray(post, dtype)[:, None]

    def _jump(self, trace: Array, spiked: Array) -> Array:
        if self.pairing == "nearest":
            return jnp.where(spiked[None, :], 1.0, trace)
        return trace + spiked[None, :].astype(trace.dtype)

    # ---------------------------------------------------------------- update
    def depress_rows(self, weights, targets, rows, pre_trace, post_trace, n_post: int, scale=1.0):
        """Depression of the rows ``rows`` (padded with n_pre) of the ELL weights; returns new weights."""
        rows_t = jnp.take(targets, rows, axis=0, mode="fill", fill_value=n_post)
        w = jnp.take(weights, rows, axis=0, mode="fill", fill_value=0)
        y = jnp.take(post_trace[0], rows_t, mode="fill", fill_value=0)
        amp = self.A_minus
        if self.triplet:
            amp = amp + self.A3_minus * jnp.take(pre_trace[1], rows, mode="fill", fill_value=0)[:, None]
        new = self.clip(w - scale * amp * y * self.f_minus(w))
        new = jnp.where(rows_t < n_post, new, w)
        return weights.at[rows].set(new, mode="drop")

    def potentiate_columns(self, flat_weights, reverse: ReverseIndex, cols, pre_trace, post_trace, scale=1.0):
        """Potentiation of all synapses onto the post neurons ``cols`` (padded with n_post); flat weights."""
        slots = jnp.take(reverse.slots, cols, axis=0, mode="fill", fill_value=reverse.n_pre * reverse.width)
        w = jnp.take(flat_weights, slots, mode="fill", fill_value=0)
        x = jnp.take(pre_trace[0], reverse.sources(slots), mode="fill", fill_value=0)
        amp = self.A_plus
        if self.triplet:
            amp = amp + self.A3_plus * jnp.take(post_trace[1], cols, mode="fill", fill_value=0)[:, None]
        new = self.clip(w + scale * amp * x * self.f_plus(w))
        return flat_weights.at[slots].set(new, mode="drop")

    def update(self, state: STDPState, targets: Array, reverse: ReverseIndex, pre_spikes: Array,
               post_spikes: Array, dt: float, *, modulator=None) -> STDPState:
        """One step of ``dt`` ms: relax traces, then apply this step's pre and post spikes (nonzero = spike).

        Under differentiation the update is straight-through: d(new weights)/d(old weights) = identity,
        traces carry no gradient (local rules are applied, not differentiated).
        """
        w, x, y = _stdp_step(self, float(dt), state.weights, state.pre_trace, state.post_trace, targets,
                             reverse.slots, pre_spikes, post_spikes)
        return STDPState(weights=w, pre_trace=x, post_trace=y)

    def _update_pure(self, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, dt):
        n_pre, width = targets.shape
        n_post = slots.shape[0]
        reverse = _Reverse(slots, n_pre, width)
        dec_pre, dec_post = self._decays(dt, pre_trace.dtype)
        pre_trace = pre_trace * dec_pre
        post_trace = post_trace * dec_post
        cap_pre = self.capacity or default_event_capacity(n_pre)
        cap_post = self.capacity or default_event_capacity(n_post)
        weights = for_each_event(
            pre_spikes, cap_pre,
            lambda w, rows: self.depress_rows(w, targets, rows, pre_trace, post_trace, n_post), weights)
        pre_trace = self._jump(pre_trace, pre_spikes != 0)
        flat = for_each_event(
            post_spikes, cap_post,
            lambda w, cols: self.potentiate_columns(w, reverse, cols, pre_trace, post_trace), weights.reshape(-1))
        post_trace = self._jump(post_trace, post_spikes != 0)
        return flat.reshape(n_pre, width), pre_trace, post_trace

    def deliver_and_update(self, state: STDPState, targets: Array, reverse: ReverseIndex, pre_spikes: Array,
                           post_spikes: Array, dt: float, *, modulator=None,
                           into: Array | None = None) -> tuple[Array, STDPState]:
        """``into + pre_spikes @ W`` (n_post,; ``into`` defaults to zeros) with the weights before this
        step's update, and the updated state.

        Equal to delivering with ``EventOperator`` and then calling ``update``; on CPU both run in one
        native call that rewrites the weights in place (a separate delivery would make XLA copy them).
        Differentiable like ``brainsim.propagation.deliver`` in spikes and weights, straight-through in
        the weights for the update.
        """
        if into is None:
            into = jnp.zeros((reverse.slots.shape[0],), state.weights.dtype)
        g, w, x, y = _stdp_deliver_step(self, float(dt), into, state.weights, state.pre_trace, state.post_trace,
                                        targets, reverse.slots, pre_spikes, post_spikes)
        return g, STDPState(weights=w, pre_trace=x, post_trace=y)

    def _attrs(self, dt):
        dec = [math.exp(-dt / t) for t in (self.tau_plus, self.tau_x, self.tau_minus, self.tau_y)]
        return dict(a_plus=np.float32(self.A_plus), a_minus=np.float32(self.A_minus),
                    a3_plus=np.float32(self.A3_plus), a3_minus=np.float32(self.A3_minus),
                    w_min=np.float32(self.w_min), w_max=np.float32(self.w_max),
                    dec_pre1=np.float32(dec[0]), dec_pre2=np.float32(dec[1]),
                    dec_post1=np.float32(dec[2]), dec_post2=np.float32(dec[3]),
                    soft=np.int64(self.bounds == "soft"),
                    multiplicative=np.int64(self.weight_dependence == "multiplicative"),
                    nearest=np.int64(self.pairing == "nearest"))

    def _deliver_update(self, g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, dt):

        def pure(g, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes):
            g = deliver_jax(g, pre_spikes, targets, weights, capacity=default_event_capacity(targets.shape[0]))
            return (g, *self._update_pure(weights, pre_trace, post_trace, targets, slots, pre_spikes,
                                          post_spikes, dt))

        args = (g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes)
        return self._dispatch(_native.stdp_deliver_update_native, pure, args, dt)

    def _update(self, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, dt):
        args = (weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes)
        return self._dispatch(_native.stdp_update_native, lambda *a: self._update_pure(*a, dt), args, dt)

    def _dispatch(self, kernel, pure, args, dt):
        """``kernel(*args)`` when lowering for CPU and the native library is usable, ``pure(*args)`` otherwise.

        ``args`` end with ``targets, slots, pre_spikes, post_spikes``; the kernel takes those two index
        arrays as int32 and every other argument as float32.
        """
        indices, values = args[-4:-2], args[:-4] + args[-2:]
        dtypes_ok = all(a.dtype == jnp.int32 for a in indices) and all(a.dtype == jnp.float32 for a in values)
        native = lambda *a: tuple(kernel(*a, **self._attrs(dt)))  # noqa: E731
        return cpu_or_pure(native, pure, *args, usable=self.native and dtypes_ok and _native.native_available())


def TripletSTDP(*, tau_plus: float = 16.8, tau_minus: float = 33.7, tau_x: float = 101.0, tau_y: float = 125.0,
                A2_plus: float = 5e-10, A3_plus: float = 6.2e-3, A2_minus: float = 7e-3, A3_minus: float = 2.3e-4,
                **kwargs) -> STDP:
    """Triplet STDP (Pfister & Gerstner 2006), all-to-all or nearest-spike.

    Defaults: the all-to-all visual-cortex fit of Pfister & Gerstner (2006, Table 4, minimal model):
    tau_plus 16.8 ms, tau_minus 33.7 ms, tau_x 101 ms (unused by the minimal model, A3_minus = 0),
    tau_y 125 ms, A2_plus 5e-10, A3_plus 6.2e-3, A2_minus 7e-3, A3_minus 2.3e-4 — amplitudes are in
    weight units, so scale them with your weights.

    Returns an ``STDP`` rule with two traces per side. Args, beyond those of ``STDP``:
        A2_plus, A2_minus: pair amplitudes (weight units, >= 0); ``A_plus``/``A_minus`` in ``STDP``.
        A3_plus, A3_minus: triplet amplitudes (weight units, >= 0).
        tau_x: slow presynaptic trace time constant, ms. tau_y: slow postsynaptic trace time constant, ms.
    """
    return STDP(tau_plus=tau_plus, tau_minus=tau_minus, A_plus=A2_plus, A_minus=A2_minus, tau_x=tau_x, tau_y=tau_y,
                A3_plus=A3_plus, A3_minus=A3_minus, triplet=True, **kwargs)


class _Reverse(NamedTuple):
    slots: Array
    n_pre: int
    width: int

    def sources(self, slots):
        return jnp.minimum(slots // self.width, self.n_pre)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _stdp_step(rule, dt, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes):
    return rule._update(weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, dt)


@_stdp_step.defjvp
def _stdp_step_jvp(rule, dt, primals, tangents):
    out = _stdp_step(rule, dt, *primals)
    d_weights = tangents[0]
    return out, (d_weights, jnp.zeros_like(out[1]), jnp.zeros_like(out[2]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _stdp_deliver_step(rule, dt, g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes):
    return rule._deliver_update(g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, dt)


def _stdp_deliver_fwd(rule, dt, g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes):
    out = _stdp_deliver_step(rule, dt, g0, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes)
    return out, (weights, targets, slots, pre_spikes, post_spikes, pre_trace, post_trace)


def _stdp_deliver_bwd(rule, dt, residuals, cotangents):
    weights, targets, slots, pre_spikes, post_spikes, pre_trace, post_trace = residuals
    d_g, d_w, _, _ = cotangents
    n_post = slots.shape[0]
    d_at = jnp.where(targets < n_post, jnp.take(d_g, targets, mode="fill", fill_value=0), 0.0)  # (n_pre, K)
    d_pre, d_delivered = row_cotangents(d_at, pre_spikes, weights)
    d_weights = d_w + d_delivered
    float0 = lambda a: np.zeros(a.shape, dtype=jax.dtypes.float0)  # noqa: E731
    return (d_g, d_weights, jnp.zeros_like(pre_trace), jnp.zeros_like(post_trace), float0(targets), float0(slots),
            d_pre.astype(pre_spikes.dtype), jnp.zeros_like(post_spikes))


_stdp_deliver_step.defvjp(_stdp_deliver_fwd, _stdp_deliver_bwd)
