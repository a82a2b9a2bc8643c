"""G-ChI astrocyte: Ca²⁺-induced Ca²⁺ release coupled to IP3 metabolism (De Pittà et al. 2009), with the
glutamate-activated receptors and the Ca²⁺-dependent gliotransmitter release of De Pittà et al. 2011, as in
the Brian2 examples of Stimberg et al. 2019. Units: ms, µM (parameters given per ms).

State: Gamma_A (fraction of activated astrocytic mGluRs), I (IP3, µM), C (Ca²⁺, µM), h (IP3R
de-inactivation), x_A (fraction of gliotransmitter resources available), G_A (gliotransmitter in the
extracellular space, µM)::

    dGamma_A/dt = O_N Y_S (1 - Gamma_A) - Omega_N (1 + zeta C/(C + K_KC)) Gamma_A     (Y_S: synaptic glutamate, µM)
    dI/dt  = J_beta + J_delta - J_3K - J_5P + J_ex + J_IP3
      J_beta  = O_beta Gamma_A                                              PLCβ (agonist-dependent)
      J_delta = O_delta / (1 + I/kappa_delta) * C^2/(C^2 + K_delta^2)        PLCδ (endogenous)
      J_3K    = O_3K C^4/(C^4 + K_D^4) * I/(I + K_3K)                        IP3-3K degradation
      J_5P    = Omega_5P I                                                   IP-5P degradation
      J_ex    = -F_ex/2 (1 + tanh((|I - I_bias| - I_Theta)/omega_I)) sign(I - I_bias)   exogenous drive
    dC/dt  = (Omega_C m_inf^3 h^3 + Omega_L)(C_T - (1 + rho_A) C) - O_P C^2/(C^2 + K_P^2)
    dh/dt  = (h_inf - h) / tau_h
      m_inf = I/(I + d_1) * C/(C + d_5),  Q_2 = d_2 (I + d_1)/(I + d_3),
      h_inf = Q_2/(Q_2 + C),  tau_h = 1/(O_2 (Q_2 + C))
    dx_A/dt = Omega_A (1 - x_A),   dG_A/dt = -Omega_e G_A

Gliotransmitter release when C crosses C_Theta upwards (once per crossing)::

    G_A += rho_e G_T U_A x_A,   x_A -= U_A x_A

One step: RK4 over dt (``substeps`` sub-steps) with the inputs held constant, then the threshold test on
the new C against the C at the start of the step, then the release (Brian2's state update, threshold,
reset order).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_size
from .._types import Array, ArrayLike
from . import _smooth
from ..core.contracts import AbstractAstrocyte, as_input
from ..core.integrators import rk4
from ._common import check_concentration, check_smooth, check_substeps, set_params
from .gap_junctions import regenerative_flux


class GChIState(NamedTuple):
    Gamma_A: Array  # fraction of activated astrocytic receptors, dimensionless
    I: Array  # IP3, µM
    C: Array  # cytosolic Ca²⁺, µM
    h: Array  # IP3R de-inactivation, dimensionless
    x_A: Array  # available gliotransmitter resources, dimensionless
    G_A: Array  # extracellular gliotransmitter, µM


# name, default (per ms / µM), allow zero, unit
_PARAMS = (
    ("O_P", 0.9e-3, True, "µM/ms"), ("K_P", 0.05, False, "µM"), ("C_T", 2.0, False, "µM"),
    ("rho_A", 0.18, False, ""), ("Omega_C", 6e-3, True, "1/ms"), ("Omega_L", 0.1e-3, True, "1/ms"),
    ("d_1", 0.13, False, "µM"), ("d_2", 1.05, False, "µM"), ("O_2", 0.2e-3, False, "1/(µM ms)"),
    ("d_3", 0.9434, False, "µM"), ("d_5", 0.08, False, "µM"),
    ("O_beta", 3.2e-3, True, "µM/ms"), ("O_N", 0.3e-3, True, "1/(µM ms)"), ("Omega_N", 0.5e-3, True, "1/ms"),
    ("K_KC", 0.5, False, "µM"), ("zeta", 10.0, True, ""),
    ("O_delta", 0.6e-3, True, "µM/ms"), ("kappa_delta", 1.5, False, "µM"), ("K_delta", 0.1, False, "µM"),
    ("O_3K", 4.5e-3, True, "µM/ms"), ("K_D", 0.7, False, "µM"), ("K_3K", 1.0, False, "µM"),
    ("Omega_5P", 0.05e-3, True, "1/ms"),
    ("F_ex", 0.0, True, "µM/ms"), ("I_bias", 0.0, True, "µM"), ("I_Theta", 0.3, True, "µM"),
    ("omega_I", 0.05, False, "µM"),
    ("C_Theta", 0.5, True, "µM"), ("Omega_A", 0.6e-3, True, "1/ms"), ("U_A", 0.6, True, ""),
    ("G_T", 200e3, True, "µM"), ("rho_e", 6.5e-4, True, ""), ("Omega_e", 60e-3, True, "1/ms"),
)


class GChI(AbstractAstrocyte):
    """De Pittà G-ChI astrocyte with glutamate receptors and gliotransmitter release (see module docstring).

    Every parameter of the module docstring is a keyword argument (defaults: Stimberg et al. 2019, converted
    to ms and µM; rates must be >= 0, affinities > 0). ``F_ex = 0`` (default) switches the exogenous IP3
    drive off. ``substeps``: RK4 sub-steps per step. ``smooth``: width (µM) of smooth versions of the
    release threshold and of ``sign``; 0 = exact forward (threshold with surrogate derivative).
    """

    O_P: Array
    K_P: Array
    C_T: Array
    rho_A: Array
    Omega_C: Array
    Omega_L: Array
    d_1: Array
    d_2: Array
    O_2: Array
    d_3: Array
    d_5: Array
    O_beta: Array
    O_N: Array
    Omega_N: Array
    K_KC: Array
    zeta: Array
    O_delta: Array
    kappa_delta: Array
    K_delta: Array
    O_3K: Array
    K_D: Array
    K_3K: Array
    Omega_5P: Array
    F_ex: Array
    I_bias: Array
    I_Theta: Array
    omega_I: Array
    C_Theta: Array
    Omega_A: Array
    U_A: Array
    G_T: Array
    rho_e: Array
    Omega_e: Array
    size: int = eqx.field(static=True)
    substeps: int = eqx.field(static=True)
    smooth: float = eqx.field(static=True)

    def __init__(self, size: int, *, substeps: int = 1, smooth: float = 0.0, **params):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        known = {p[0] for p in _PARAMS}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"{owner}: unknown parameter(s) {', '.join(sorted(unknown))}")
        set_params(self, ((name, params.get(name, default), zero_ok, unit)
                          for name, default, zero_ok, unit in _PARAMS), owner)
        if "U_A" in params and float(jnp.max(self.U_A)) > 1:
            raise ValueError(f"{owner}: U_A must be in [0, 1], got {params['U_A']}")
        self.substeps, self.smooth = check_substeps(substeps, owner), check_smooth(smooth, owner)

    def init(self, *, key=None, Gamma_A: ArrayLike = 0.0, I: ArrayLike = 0.01, C: ArrayLike = 0.01,
             h: ArrayLike = 0.9, x_A: ArrayLike = 1.0, G_A: ArrayLike = 0.0) -> GChIState:
        owner = type(self).__name__
        for name, value in (("I", I), ("C", C), ("G_A", G_A)):
            check_concentration(value, name, owner)
        full = lambda x: jnp.broadcast_to(jnp.asarray(x, self.C_T.dtype), (self.size,))
        return GChIState(full(Gamma_A), full(I), full(C), full(h), full(x_A), full(G_A))

    def ip3_fluxes(self, state: GChIState) -> dict:
        """The IP3 production/degradation fluxes (µM/ms) at ``state``: J_beta, J_delta, J_3K, J_5P, J_ex."""
        I, C = state.I, state.C
        return dict(
            J_beta=self.O_beta * state.Gamma_A,
            J_delta=self.O_delta / (1.0 + I / self.kappa_delta) * C**2 / (C**2 + self.K_delta**2),
            J_3K=self.O_3K * C**4 / (C**4 + self.K_D**4) * I / (I + self.K_3K),
            J_5P=self.Omega_5P * I,
            J_ex=regenerative_flux(I - self.I_bias, self.F_ex, self.I_Theta, self.omega_I, self.smooth),
        )

    def derivatives(self, state: GChIState, Y_S=0.0, J_IP3=0.0) -> GChIState:
        I, C, h = state.I, state.C, state.h
        fl = self.ip3_fluxes(state)
        dGamma = self.O_N * Y_S * (1.0 - state.Gamma_A) - self.Omega_N * (1.0 + self.zeta * C / (C + self.K_KC)) * state.Gamma_A
        dI = fl["J_beta"] + fl["J_delta"] - fl["J_3K"] - fl["J_5P"] + fl["J_ex"] + J_IP3
        m_inf = I / (I + self.d_1) * C / (C + self.d_5)
        Q_2 = self.d_2 * (I + self.d_1) / (I + self.d_3)
        h_inf = Q_2 / (Q_2 + C)
        dh = (h_inf - h) * self.O_2 * (Q_2 + C)
        dC = (self.Omega_C * m_inf**3 * h**3 + self.Omega_L) * (self.C_T - (1.0 + self.rho_A) * C) \
            - self.O_P * C**2 / (C**2 + self.K_P**2)
        return GChIState(Gamma_A=dGamma, I=dI, C=dC, h=dh, x_A=self.Omega_A * (1.0 - state.x_A),
                         G_A=-self.Omega_e * state.G_A)

    def step(self, state: GChIState, inputs: Optional[ArrayLike] = None, dt: float = 1.0, *, key=None,
             J_IP3=0.0) -> tuple[GChIState, Array]:
        """Advance by ``dt`` ms.

        Args:
            inputs: synaptic glutamate ``Y_S`` (µM) seen by each astrocyte during the step (or None; or the
                ``current`` of a ``SynapticInput`` from the population's receptors).
            J_IP3: extra IP3 flux (µM/ms), e.g. gap-junction diffusion.

        Returns:
            ``(new_state, release)``: release events (float {0, 1}, surrogate derivative) of gliotransmitter.
        """
        Y_S = 0.0 if inputs is None else as_input(inputs, self.size).current
        new = rk4(lambda y: self.derivatives(y, Y_S, J_IP3), state, dt, self.substeps)
        crossed = _smooth.step_fn(new.C - self.C_Theta, self.smooth) * (
            1.0 - _smooth.step_fn(state.C - self.C_Theta, self.smooth))
        released = self.U_A * new.x_A * crossed
        new = new._replace(G_A=new.G_A + self.rho_e * self.G_T * released, x_A=new.x_A - released)
        return new, crossed
