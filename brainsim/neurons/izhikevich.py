"""Izhikevich (2003) simple spiking model.

Equations, in Izhikevich's dimensionless-per-ms form (v in mV, t in ms)::

    dv/dt = 0.04 v^2 + 5 v + 140 - u + I(v)        (mV/ms)
    du/dt = a (b v - u)                             (mV/ms)
    spike when v > v_peak (30 mV): v <- c, u <- u + d

Input convention: as in Izhikevich (2003), the input enters dv/dt directly, so the "current" I(v) is read
in mV/ms. brainsim passes ``inputs.total_current(v)`` (nominally pA) unchanged, i.e. 1 pA of input raises
dv/dt by 1 mV/ms (an implicit unit membrane capacitance of 1 pF); conductance inputs g_k (E_k - v) enter the
same way. So ``I = 10`` reproduces Izhikevich's ``I = 10``. Scale inputs accordingly when mixing this model
with physically-scaled synapses.

Method: ``"euler"`` only (forward Euler from start-of-step v, u, as Brian2's ``method="euler"``).
Parameters a (1/ms), b (1/ms), c (mV), d (mV/ms) default to regular spiking.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import as_param, check_choice, check_positive, check_size
from .._types import Array, ArrayLike
from ..spikes import check_slope, check_surrogate, spike
from .base import AbstractNeuron, SynapticInput, as_input

IZHIKEVICH_METHODS = ("euler",)


class IzhikevichState(NamedTuple):
    v: Array  # membrane potential, mV
    u: Array  # recovery variable, mV/ms


class Izhikevich(AbstractNeuron):
    """Izhikevich (2003) neuron.

    Args:
        size: number of neurons.
        a: recovery rate, 1/ms (> 0).
        b: sensitivity of u to v, 1/ms.
        c: reset potential, mV.
        d: spike-triggered increment of u, mV/ms.
        v_peak: spike cut-off, mV.
        method: ``"euler"``.
        surrogate, slope: surrogate derivative of the spike function at ``(v - v_peak)/|v_peak - c|``.
    """

    a: Array  # 1/ms
    b: Array  # 1/ms
    c: Array  # mV
    d: Array  # mV/ms
    v_peak: Array  # mV
    size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        a: ArrayLike = 0.02,
        b: ArrayLike = 0.2,
        c: ArrayLike = -65.0,
        d: ArrayLike = 8.0,
        v_peak: ArrayLike = 30.0,
        method: str = "euler",
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
    ):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        check_positive(a, "a (1/ms, recovery rate)", owner)
        self.a = as_param(a, size, "a", owner)
        self.b = as_param(b, size, "b", owner)
        self.c = as_param(c, size, "c", owner)
        self.d = as_param(d, size, "d", owner)
        self.v_peak = as_param(v_peak, size, "v_peak", owner)
        self.method = check_choice(method, IZHIKEVICH_METHODS, "method", owner)
        self.surrogate = check_surrogate(surrogate, owner)
        self.slope = check_slope(slope, type(self).__name__)

    def init(self, *, key=None, v: ArrayLike | None = None, u: ArrayLike | None = None) -> IzhikevichState:
        """v = -65 mV (or ``v``), u = b v (or ``u``), as in Izhikevich's (2003) reference code."""
        v0 = jnp.broadcast_to(jnp.asarray(-65.0 if v is None else v, self.b.dtype), (self.size,))
        u0 = self.b * v0 if u is None else jnp.broadcast_to(jnp.asarray(u, v0.dtype), (self.size,))
        return IzhikevichState(v=v0, u=u0)

    def step(self, state: IzhikevichState, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        v, u = state
        dvdt = 0.04 * v * v + 5.0 * v + 140.0 - u + inputs.total_current(v)  # mV/ms
        dudt = self.a * (self.b * v - u)  # mV/ms
        v, u = v + dt * dvdt, u + dt * dudt
        spikes = spike((v - self.v_peak) / jnp.abs(self.v_peak - self.c), self.surrogate, self.slope)
        v = v + spikes * (self.c - v)
        u = u + spikes * self.d
        return IzhikevichState(v=v, u=u), spikes
