"""Leaky integrator: a membrane without threshold, the readout of machine-learning networks.

Membrane equation (v in mV, t in ms, C_m in pF, I in pA)::

    C_m dv/dt = -(C_m / tau) v + I(v),     I(v) = I + sum_k g_k (E_k - v)

integrated exactly for inputs constant over a step (exponential Euler). It never spikes: its output is zero,
its value is the membrane ``v`` (read with ``StateMonitor(..., "v", when="end")`` or ``MeanMonitor``).
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import as_param, check_positive, check_size
from .._types import Array, ArrayLike
from .base import AbstractNeuron, SynapticInput, as_input, exp_euler_linear


class LeakyIntegratorState(NamedTuple):
    v: Array  # membrane potential, mV


class LeakyIntegrator(AbstractNeuron):
    """Non-spiking leaky integrator (module docstring): the LIF membrane without threshold, at rest at 0 mV.

    Args:
        size: number of units.
        tau: membrane time constant, ms (> 0).
        C_m: membrane capacitance, pF (> 0); a constant current I drives v to ``tau I / C_m``.
    """

    tau: Array  # ms
    C_m: Array  # pF
    size: int = eqx.field(static=True)

    def __init__(self, size: int, *, tau: ArrayLike = 10.0, C_m: ArrayLike = 1.0):
        self.size = check_size(size, "LeakyIntegrator")
        check_positive(tau, "tau (ms)", "LeakyIntegrator")
        check_positive(C_m, "C_m (pF)", "LeakyIntegrator")
        self.tau = as_param(tau, size, "tau", "LeakyIntegrator")
        self.C_m = as_param(C_m, size, "C_m", "LeakyIntegrator")

    def time_constants(self) -> tuple:
        return (self.tau,)

    def init(self, *, key=None, v: ArrayLike | None = None) -> LeakyIntegratorState:
        """At rest (0 mV), or at membrane potential ``v`` (mV)."""
        if v is None:  # a NumPy array: known to be at rest when traced (LayerByLayer skips what a start adds)
            return LeakyIntegratorState(v=np.zeros((self.size,), self.tau.dtype))
        v0 = jnp.broadcast_to(jnp.asarray(v, self.tau.dtype), (self.size,))
        return LeakyIntegratorState(v=v0)

    def step(self, state: LeakyIntegratorState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        g_leak = self.C_m / self.tau  # nS
        g_total = g_leak + inputs.conductance
        v_inf = (inputs.current + inputs.conductance_reversal) / g_total
        v = exp_euler_linear(state.v, v_inf, g_total / self.C_m, dt)
        return LeakyIntegratorState(v=v), jnp.zeros_like(v)
