"""Homeostasis and rate-based Hebbian variants: adaptive thresholds, synaptic scaling, Oja, anti-Hebbian.

Rate estimates are exponential traces of spikes in Hz: ``r <- r exp(-dt/tau) + spike * 1000 / tau``
(a neuron firing regularly at f Hz has a mean estimate of f Hz).

- ``HomeostaticThreshold``: a per-neuron threshold offset theta (mV) driven towards a target rate:
  ``dtheta/dt = eta (r - r_target)`` (plus an optional jump ``delta_theta`` per spike, Diehl & Cook 2015);
  add ``theta`` to the neuron's ``v_th``. (For spike-triggered threshold adaptation inside a network use
  ``brainsim.neurons.AdaptiveLIF(delta_theta=..., tau_theta=...)``.)
- ``SynapticScaling`` (Turrigiano 1998; van Rossum et al. 2000): every incoming weight of neuron j is
  scaled multiplicatively, ``dw_ij/dt = lr w_ij (r_target - r_j) / r_target``, preserving ratios.
- ``Oja`` (Oja 1982): ``dw_ij/dt = lr y_j (x_i - y_j w_ij)`` with rates x (pre) and y (post): the weight
  vector of each neuron converges to the unit-norm principal component of its inputs.
- ``AntiHebbian`` lateral decorrelation (Földiák 1990): inhibitory weights grow with co-activity,
  ``dw_ij/dt = lr (x_i y_j - r_target^2)``, clipped at ``w >= 0`` (attach to an inhibitory receptor).

The three synaptic rules are projection rules (``Projection(..., plasticity=rule)``); their updates touch
every synapse each step (O(synapses)), since they depend on continuous rates, not on spike events.
"""
from __future__ import annotations

import abc

import math
from typing import NamedTuple, Optional

import equinox as eqx
import jax.numpy as jnp

from .._checks import positive_number
from .._types import Array
from ..core.contracts import AbstractRule
from .base import deliver_then_update, check_bounds, check_scalar


def rate_trace(r: Array, spikes: Array, dt: float, tau: float) -> Array:
    """Exponential rate estimate in Hz (tau in ms)."""
    return r * math.exp(-dt / tau) + jnp.where(spikes != 0, 1000.0 / tau, 0.0)


class ThresholdState(NamedTuple):
    theta: Array  # threshold offset, mV
    rate: Array  # rate estimate, Hz


class HomeostaticThreshold(eqx.Module):
    """Adaptive threshold offset theta (mV) pulled towards a target rate (see module docstring).

    Args:
        size: number of neurons.
        target_rate: Hz (>= 0).
        eta: mV per ms per Hz of rate error (>= 0), scalar.
        tau_rate: rate-estimate time constant, ms.
        delta_theta: jump per spike, mV (>= 0).
    """

    target_rate: float = eqx.field(static=True)
    eta: float = eqx.field(static=True)
    tau_rate: float = eqx.field(static=True)
    delta_theta: float = eqx.field(static=True)
    size: int = eqx.field(static=True)

    def __init__(self, size: int, *, target_rate: float = 5.0, eta: float = 1e-4, tau_rate: float = 1000.0,
                 delta_theta: float = 0.0):
        owner = "HomeostaticThreshold"
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"{owner}: size must be a positive integer, got {size!r}")
        self.size = size
        self.target_rate = check_scalar(target_rate, "target_rate (Hz)", owner, positive=True)
        self.eta = check_scalar(eta, "eta (learning rate, mV/(ms Hz))", owner, positive=True)
        self.tau_rate = check_scalar(tau_rate, "tau_rate (ms)", owner, positive=True, allow_zero=False)
        self.delta_theta = check_scalar(delta_theta, "delta_theta (mV)", owner, positive=True)

    def init(self) -> ThresholdState:
        z = jnp.zeros((self.size,))
        return ThresholdState(theta=z, rate=z + self.target_rate)

    def step(self, state: ThresholdState, spikes: Array, dt: float) -> ThresholdState:
        rate = rate_trace(state.rate, spikes, dt, self.tau_rate)
        theta = state.theta + dt * self.eta * (rate - self.target_rate) + jnp.where(spikes != 0, self.delta_theta, 0.0)
        return ThresholdState(theta=theta, rate=rate)


class RateState(NamedTuple):
    weights: Array  # (n_pre, K) ELL weights
    pre_rate: Array  # (n_pre,) Hz
    post_rate: Array  # (n_post,) Hz


class _RateRule(AbstractRule):
    """Rules driven by rate traces of the pre- and postsynaptic spikes; ``dw(w, x, y)`` is their update."""

    lr: float = eqx.field(static=True)
    tau_rate: float = eqx.field(static=True)
    target_rate: float = eqx.field(static=True)
    w_min: float = eqx.field(static=True)
    w_max: float = eqx.field(static=True)
    modulator: Optional[str] = eqx.field(static=True)
    needs_reverse = False

    def __init__(self, *, lr: float, tau_rate: float = 100.0, target_rate: float = 5.0,
                 w_min: float = -math.inf, w_max: float = math.inf):
        owner = type(self).__name__
        self.lr = check_scalar(lr, "lr (learning rate)", owner, positive=True)
        self.tau_rate = check_scalar(tau_rate, "tau_rate (ms)", owner, positive=True, allow_zero=False)
        self.target_rate = check_scalar(target_rate, "target_rate (Hz)", owner, positive=True)
        self.w_min, self.w_max = check_bounds(w_min, w_max, owner, finite=False)
        self.modulator = None

    def init_state(self, weights, n_pre: int, n_post: int) -> RateState:
        weights = jnp.asarray(weights)
        return RateState(weights, jnp.zeros((n_pre,), weights.dtype) + self.target_rate,
                         jnp.zeros((n_post,), weights.dtype) + self.target_rate)

    @abc.abstractmethod
    def dw(self, w, x, y):
        """dw/dt per unit learning rate for weights ``w``, presynaptic rates ``x`` and postsynaptic ``y`` (Hz)."""

    def update(self, state: RateState, targets: Array, reverse, pre_spikes: Array, post_spikes: Array,
               dt: float, *, modulator=None) -> RateState:
        n_post = post_spikes.shape[0]
        x = rate_trace(state.pre_rate, pre_spikes, dt, self.tau_rate)
        y = rate_trace(state.post_rate, post_spikes, dt, self.tau_rate)
        y_at = jnp.take(y, targets, mode="fill", fill_value=0)
        w = state.weights + dt * self.lr * self.dw(state.weights, x[:, None], y_at)
        w = jnp.where(targets < n_post, jnp.clip(w, self.w_min, self.w_max), state.weights)
        return RateState(w, x, y)

    def deliver_and_update(self, state, targets, reverse, pre_spikes, post_spikes, dt: float, *, modulator=None,
                           into):
        return deliver_then_update(self, state, targets, reverse, pre_spikes, post_spikes, dt,
                                   modulator=modulator, into=into)


class SynapticScaling(_RateRule):
    """Multiplicative synaptic scaling towards ``target_rate`` Hz: ``dw/dt = lr w (r_target - y) / r_target``.

    Args: lr (1/ms), tau_rate (ms, rate estimate), target_rate (Hz, > 0), w_min, w_max (weight units).
    """

    def __init__(self, *, lr: float = 1e-4, tau_rate: float = 1000.0, target_rate: float = 5.0,
                 w_min: float = 0.0, w_max: float = math.inf):
        positive_number(target_rate, "target_rate", "Hz", "SynapticScaling")
        super().__init__(lr=lr, tau_rate=tau_rate, target_rate=target_rate, w_min=w_min, w_max=w_max)

    def dw(self, w, x, y):
        return w * (self.target_rate - y) / self.target_rate


class Oja(_RateRule):
    """Oja's rule on rates (Hz): ``dw/dt = lr y (x - y w)``; lr in 1/(Hz² ms)."""

    def __init__(self, *, lr: float = 1e-6, tau_rate: float = 100.0, w_min: float = -math.inf,
                 w_max: float = math.inf):
        super().__init__(lr=lr, tau_rate=tau_rate, target_rate=0.0, w_min=w_min, w_max=w_max)

    def dw(self, w, x, y):
        return oja_dw(w, x, y)


class AntiHebbian(_RateRule):
    """Földiák lateral anti-Hebbian rule: ``dw/dt = lr (x y - r_target^2)``, w >= 0 (inhibitory weights)."""

    def __init__(self, *, lr: float = 1e-6, tau_rate: float = 100.0, target_rate: float = 5.0,
                 w_max: float = math.inf):
        super().__init__(lr=lr, tau_rate=tau_rate, target_rate=target_rate, w_min=0.0, w_max=w_max)

    def dw(self, w, x, y):
        return x * y - self.target_rate ** 2


def oja_dw(w: Array, x: Array, y: Array) -> Array:
    """Oja's weight change ``y (x - y w)`` (broadcasting)."""
    return y * (x - y * w)
