"""Three-factor rules: Hebbian/STDP eligibility gated by a neuromodulatory or error signal.

Neuromodulators are ordinary signals: the output vector of a population named by ``modulator`` (for
example a ``Signal`` source replaying a reward time series, a ``SpikeTimes`` source of reward events,
or dopaminergic neurons), passed to the rule every step by the network, or given directly to
``update(..., modulator=...)`` in user code.

``RewardModulatedSTDP`` — Izhikevich (2007), "Solving the distal reward problem"::

    dc_ij/dt = -c_ij / tau_c + STDP(pre/post pairings)        (eligibility, event-driven jumps)
    dd/dt    = -d / tau_d + release * m(t)                     (dopamine, µM; m: modulator output)
    dw_ij/dt = lr * (d + d_tonic) * c_ij                       (weights, clipped to [w_min, w_max])

``ModulatedHebbian`` — error-modulated / attention-gated learning of a readout::

    dw_ij/dt = lr * M_j(t) * x_i(t) [* post_j(t)]             x_i: presynaptic trace (tau_pre)

with ``M_j`` the modulator (per postsynaptic neuron, e.g. target - output error, or a scalar broadcast);
``attention_gated_signal`` builds AGREL's ``M_j = delta * g_j`` (reward prediction error times the
attentional feedback of the selected output; Roelfsema & van Ooyen 2005).

Cost: the eligibility jumps are event-driven (O(fan-out) per pre spike, O(fan-in) per post spike), but
the decay of ``c`` and the weight change ``lr d c`` touch every synapse each step: O(synapses) per step.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import equinox as eqx
import jax.numpy as jnp

from .._types import Array
from ..core.contracts import AbstractRule
from .base import deliver_then_update, ReverseIndex, check_bounds, check_scalar, default_event_capacity, for_each_event


class RewardSTDPState(NamedTuple):
    weights: Array  # (n_pre, K) ELL weights
    eligibility: Array  # (n_pre, K) eligibility traces c (weight-change units per µM per ms / lr)
    pre_trace: Array  # (n_pre,) presynaptic STDP trace
    post_trace: Array  # (n_post,) postsynaptic STDP trace
    dopamine: Array  # scalar extracellular dopamine, µM


class RewardModulatedSTDP(AbstractRule):
    """Dopamine-modulated STDP with eligibility traces (Izhikevich 2007).

    Args:
        A_plus, A_minus: STDP amplitudes added to the eligibility per pre-post / post-pre pair (>= 0).
        tau_plus, tau_minus: STDP windows, ms.
        tau_c: eligibility time constant, ms (1 000 in the paper).
        tau_d: dopamine uptake time constant, ms (200).
        release: dopamine released per unit of modulator output, µM (0.5).
        d_tonic: tonic dopamine, µM (0.01 in the paper; added to d in the weight update).
        lr: learning rate, weight units per (µM · ms · unit eligibility).
        w_min, w_max: weight bounds (weight units).
        modulator: name of the population whose output (summed) releases dopamine; None when the
            modulator is passed directly to ``update``.
    """

    A_plus: float = eqx.field(static=True)
    A_minus: float = eqx.field(static=True)
    tau_plus: float = eqx.field(static=True)
    tau_minus: float = eqx.field(static=True)
    tau_c: float = eqx.field(static=True)
    tau_d: float = eqx.field(static=True)
    release: float = eqx.field(static=True)
    d_tonic: float = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    w_min: float = eqx.field(static=True)
    w_max: float = eqx.field(static=True)
    modulator: Optional[str] = eqx.field(static=True)
    needs_reverse = True

    def __init__(self, *, A_plus: float = 1.0, A_minus: float = 1.5, tau_plus: float = 20.0,
                 tau_minus: float = 20.0, tau_c: float = 1000.0, tau_d: float = 200.0, release: float = 0.5,
                 d_tonic: float = 0.01, lr: float = 1e-3, w_min: float = 0.0, w_max: float = 4.0,
                 modulator: Optional[str] = None):
        owner = "RewardModulatedSTDP"
        self.A_plus = check_scalar(A_plus, "A_plus", owner, positive=True)
        self.A_minus = check_scalar(A_minus, "A_minus", owner, positive=True)
        for name in ("tau_plus", "tau_minus", "tau_c", "tau_d"):
            setattr(self, name, check_scalar(locals()[name], f"{name} (ms)", owner, positive=True, allow_zero=False))
        self.release = check_scalar(release, "release (µM)", owner, positive=True)
        self.d_tonic = check_scalar(d_tonic, "d_tonic (µM)", owner, positive=True)
        self.lr = check_scalar(lr, "lr (learning rate)", owner, positive=True)
        self.w_min, self.w_max = check_bounds(w_min, w_max, owner)
        self.modulator = modulator

    def init_state(self, weights, n_pre: int, n_post: int) -> RewardSTDPState:
        weights = jnp.asarray(weights)
        if weights.ndim != 2 or weights.shape[0] != n_pre:
            raise ValueError(f"RewardModulatedSTDP: weights must have shape ({n_pre}, K), got {weights.shape}")
        return RewardSTDPState(weights, jnp.zeros_like(weights), jnp.zeros((n_pre,), weights.dtype),
                               jnp.zeros((n_post,), weights.dtype), jnp.zeros((), weights.dtype))

    def update(self, state: RewardSTDPState, targets: Array, reverse: ReverseIndex, pre_spikes: Array,
               post_spikes: Array, dt: float, *, modulator=None) -> RewardSTDPState:
        """One step of ``dt`` ms. ``modulator``: this step's modulator output (summed to one release)."""
        n_pre, width = targets.shape
        n_post = reverse.n_post
        x = state.pre_trace * math.exp(-dt / self.tau_plus)
        y = state.post_trace * math.exp(-dt / self.tau_minus)
        c = state.eligibility * math.exp(-dt / self.tau_c)

        def depress(c, rows):
            t = jnp.take(targets, rows, axis=0, mode="fill", fill_value=n_post)
            yt = jnp.take(y, t, mode="fill", fill_value=0)
            return c.at[rows].add(-self.A_minus * yt, mode="drop")

        c = for_each_event(pre_spikes, default_event_capacity(n_pre), depress, c)
        x = x + jnp.where(pre_spikes != 0, 1.0, 0.0)

        def potentiate(cf, cols):
            slots = jnp.take(reverse.slots, cols, axis=0, mode="fill", fill_value=n_pre * width)
            xs = jnp.take(x, reverse.sources(slots), mode="fill", fill_value=0)
            return cf.at[slots].add(self.A_plus * xs, mode="drop")

        c = for_each_event(post_spikes, default_event_capacity(n_post), potentiate, c.reshape(-1)).reshape(n_pre, width)
        y = y + jnp.where(post_spikes != 0, 1.0, 0.0)
        c = jnp.where(targets < n_post, c, 0.0)
        m = 0.0 if modulator is None else jnp.sum(modulator)
        d = state.dopamine * math.exp(-dt / self.tau_d) + self.release * m
        w = jnp.clip(state.weights + self.lr * dt * (d + self.d_tonic) * c, self.w_min, self.w_max)
        w = jnp.where(targets < n_post, w, state.weights)
        return RewardSTDPState(w, c, x, y, d)

    def deliver_and_update(self, state, targets, reverse, pre_spikes, post_spikes, dt: float, *, modulator=None,
                           into):
        return deliver_then_update(self, state, targets, reverse, pre_spikes, post_spikes, dt,
                                   modulator=modulator, into=into)


class HebbianState(NamedTuple):
    weights: Array  # (n_pre, K) ELL weights
    pre_trace: Array  # (n_pre,) low-pass filtered presynaptic spikes (dimensionless)


class ModulatedHebbian(AbstractRule):
    """Error- or reward-modulated Hebbian learning: ``dw_ij/dt = lr M_j x_i [post_j]`` (see module doc).

    Args:
        lr: learning rate (weight units per ms per unit modulator), scalar.
        tau_pre: presynaptic trace time constant, ms.
        gate_post: multiply by the postsynaptic spike (1/dt-normalised) — a Hebbian coincidence term;
            False for a delta rule on the readout (M_j is then the error of output j).
        w_min, w_max: weight bounds (defaults: unbounded).
        modulator: population whose output is ``M`` (per postsynaptic neuron, or size 1 broadcast).
    """

    lr: float = eqx.field(static=True)
    tau_pre: float = eqx.field(static=True)
    gate_post: bool = eqx.field(static=True)
    w_min: float = eqx.field(static=True)
    w_max: float = eqx.field(static=True)
    modulator: Optional[str] = eqx.field(static=True)
    needs_reverse = False

    def __init__(self, *, lr: float = 1e-3, tau_pre: float = 20.0, gate_post: bool = False,
                 w_min: float = -math.inf, w_max: float = math.inf, modulator: Optional[str] = None):
        owner = "ModulatedHebbian"
        self.lr = check_scalar(lr, "lr (learning rate)", owner, positive=True)
        self.tau_pre = check_scalar(tau_pre, "tau_pre (ms)", owner, positive=True, allow_zero=False)
        self.gate_post = bool(gate_post)
        self.w_min, self.w_max = check_bounds(w_min, w_max, owner, finite=False)
        self.modulator = modulator

    def init_state(self, weights, n_pre: int, n_post: int) -> HebbianState:
        weights = jnp.asarray(weights)
        return HebbianState(weights, jnp.zeros((n_pre,), weights.dtype))

    def update(self, state: HebbianState, targets: Array, reverse, pre_spikes: Array, post_spikes: Array,
               dt: float, *, modulator=None) -> HebbianState:
        n_post = post_spikes.shape[0]
        x = state.pre_trace * math.exp(-dt / self.tau_pre) + jnp.where(pre_spikes != 0, 1.0, 0.0)
        if modulator is None:
            return HebbianState(state.weights, x)
        m = jnp.broadcast_to(jnp.asarray(modulator, state.weights.dtype).reshape(-1), (n_post,)) \
            if jnp.size(modulator) in (1, n_post) else _bad_modulator(modulator, n_post)
        if self.gate_post:
            m = m * post_spikes / dt
        m_at = jnp.take(m, targets, mode="fill", fill_value=0)  # (n_pre, K)
        w = state.weights + self.lr * dt * m_at * x[:, None]
        w = jnp.where(targets < n_post, jnp.clip(w, self.w_min, self.w_max), state.weights)
        return HebbianState(w, x)

    def deliver_and_update(self, state, targets, reverse, pre_spikes, post_spikes, dt: float, *, modulator=None,
                           into):
        return deliver_then_update(self, state, targets, reverse, pre_spikes, post_spikes, dt,
                                   modulator=modulator, into=into)


def _bad_modulator(modulator, n_post):
    raise ValueError(f"ModulatedHebbian: modulator has {jnp.size(modulator)} values; expected 1 (global) or "
                     f"{n_post} (one per postsynaptic neuron)")


def attention_gated_signal(reward: Array, expected: Array, chosen: Array, n_out: int,
                           feedback: float = 1.0) -> Array:
    """AGREL modulator ``M_j = (reward - expected) * feedback * [j == chosen]`` (Roelfsema & van Ooyen 2005)."""
    delta = jnp.asarray(reward) - jnp.asarray(expected)
    return jnp.where(jnp.arange(n_out) == chosen, delta * feedback, 0.0)
