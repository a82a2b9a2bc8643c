"""Tripartite synapse: presynaptic release modulated by astrocytic gliotransmitter (De Pittà et al. 2011),
as in Stimberg et al. 2019 (Brian2 examples 3–4). Units: ms, µM.

One state per synapse. Between presynaptic spikes (exact for G_A held constant over a step)::

    dY_S/dt     = -Omega_c Y_S                                    synaptic glutamate in the cleft, µM
    dGamma_S/dt = O_G G_A (1 - Gamma_S) - Omega_G Gamma_S         activated presynaptic receptors
    du_S/dt     = -Omega_f u_S                                    facilitation (utilisation)
    dx_S/dt     = Omega_d (1 - x_S)                               available resources

At a presynaptic spike (per-spike release ``r_S``)::

    U_0 = (1 - Gamma_S) U_0_star + alpha Gamma_S                  gliotransmitter-modulated release probability
    u_S += U_0 (1 - u_S);   r_S = u_S x_S;   x_S -= r_S;   Y_S += rho_c Y_T r_S

``alpha < U_0_star``: release-decreasing gliotransmission; ``alpha > U_0_star``: release-increasing.
``Y_S`` drives the IP3 production (``Gamma_A``) of the paired astrocyte (``GChI``); ``r_S`` scales the weight of
the postsynaptic effect.

Inside a ``Network``: pass ``TripartiteSynapse(n_pre)`` as the ``stp`` of a ``Projection`` (one release state
per presynaptic neuron, shared by its synapses in that projection, like ``TsodyksMarkram``); the
gliotransmitter ``G_A`` reaching each presynaptic terminal is the projection's signal of the step: a
``StateSignal`` of the network reading the astrocytes' ``G_A`` (``brainsim.networks.astrocytes.with_astrocytes``
adds it), or ``Network.step(signals={projection: G_A})`` from outside.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_size
from .._types import Array, ArrayLike
from ..core.contracts import AbstractSTP
from ..core.integrators import exp_euler_linear
from ._common import set_params


class TripartiteState(NamedTuple):
    Y_S: Array  # synaptic glutamate in the extracellular space, µM
    Gamma_S: Array  # fraction of activated presynaptic receptors
    u_S: Array  # utilisation of synaptic resources
    x_S: Array  # available synaptic resources


class TripartiteSynapse(AbstractSTP):
    """Gliotransmitter-modulated Tsodyks–Markram release (see module docstring).

    Args:
        size: number of synapses.
        rho_c: vesicle-to-extracellular volume ratio; Y_T: total vesicular glutamate, µM;
        Omega_c: glutamate clearance rate, 1/ms; U_0_star: resting release probability in (0, 1];
        Omega_f, Omega_d: facilitation / depression rates, 1/ms; O_G: receptor activation rate,
        1/(µM ms); Omega_G: receptor deactivation rate, 1/ms; alpha: gliotransmission nature in [0, 1].
    """

    rho_c: Array
    Y_T: Array  # µM
    Omega_c: Array  # 1/ms
    U_0_star: Array
    Omega_f: Array  # 1/ms
    Omega_d: Array  # 1/ms
    O_G: Array  # 1/(µM ms)
    Omega_G: Array  # 1/ms
    alpha: Array
    size: int = eqx.field(static=True)

    def __init__(self, size: int, *, rho_c: ArrayLike = 0.005, Y_T: ArrayLike = 500e3, Omega_c: ArrayLike = 40e-3,
                 U_0_star: ArrayLike = 0.6, Omega_f: ArrayLike = 3.33e-3, Omega_d: ArrayLike = 2.0e-3,
                 O_G: ArrayLike = 1.5e-3, Omega_G: ArrayLike = 0.5 / 60e3, alpha: ArrayLike = 0.0):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        set_params(self, (("rho_c", rho_c, True, ""), ("Y_T", Y_T, True, "µM"), ("Omega_c", Omega_c, False, "1/ms"),
                          ("U_0_star", U_0_star, False, ""), ("Omega_f", Omega_f, False, "1/ms"),
                          ("Omega_d", Omega_d, False, "1/ms"), ("O_G", O_G, True, "1/(µM ms)"),
                          ("Omega_G", Omega_G, True, "1/ms"), ("alpha", alpha, True, "")), owner)
        for name, value in (("U_0_star", U_0_star), ("alpha", alpha)):
            if float(jnp.max(getattr(self, name))) > 1.0:
                raise ValueError(f"{owner}: {name} must be in [0, 1], got {value}")

    #: the signal it reads is the gliotransmitter concentration at its terminals (see module docstring)
    reads_signal = True

    def init(self, size: int | None = None, *, key=None) -> TripartiteState:
        """Resting state. ``size`` (optional, as ``TsodyksMarkram.init``) must equal ``self.size``."""
        if size is not None and int(size) != self.size:
            raise ValueError(f"{type(self).__name__}: built for {self.size} synapses/presynaptic neurons, "
                             f"asked to initialise {size}")
        z = jnp.zeros((self.size,), self.Y_T.dtype)
        return TripartiteState(Y_S=z, Gamma_S=z, u_S=z, x_S=jnp.ones_like(z))

    def step(self, state: TripartiteState, spikes: Array, dt: float, signal: ArrayLike | None = None):
        """Relax over ``dt`` ms with gliotransmitter ``signal`` = G_A (µM, per synapse; ``None`` = 0) held
        constant, then apply this step's presynaptic ``spikes``. Returns ``(new_state, r_S * spikes)``."""
        G_A = 0.0 if signal is None else signal
        G_A = jnp.broadcast_to(jnp.asarray(G_A, self.O_G.dtype), (self.size,))
        a = self.O_G * G_A + self.Omega_G
        gamma_inf = jnp.where(a > 0, self.O_G * G_A / jnp.where(a > 0, a, 1.0), 0.0)
        Gamma_S = exp_euler_linear(state.Gamma_S, gamma_inf, a, dt)
        Y_S = state.Y_S * jnp.exp(-self.Omega_c * dt)
        u_S = state.u_S * jnp.exp(-self.Omega_f * dt)
        x_S = exp_euler_linear(state.x_S, 1.0, self.Omega_d, dt)
        U_0 = (1.0 - Gamma_S) * self.U_0_star + self.alpha * Gamma_S
        u_new = u_S + U_0 * (1.0 - u_S)
        u_S = u_S + spikes * (u_new - u_S)
        r_S = spikes * u_S * x_S
        x_S = x_S - r_S
        Y_S = Y_S + self.rho_c * self.Y_T * r_S
        return TripartiteState(Y_S, Gamma_S, u_S, x_S), r_S
