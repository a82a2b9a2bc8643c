"""Li–Rinzel IP3R calcium dynamics of an astrocyte, as NEST's ``astrocyte_lr_1994``.

State per astrocyte: IP3 (µM), cytosolic Ca²⁺ ``Ca`` (µM), fraction of IP3 receptors not inactivated
``h`` (dimensionless). Equations (t in ms, concentrations in µM; Li & Rinzel 1994, De Young & Keizer
1992, Nadkarni & Jung 2003; parameter names and defaults as NEST 3.10)::

    dIP3/dt = (IP3_0 - IP3) / tau_IP3 + J_IP3                    (+ delta_IP3 * w per incoming spike)
    dCa/dt  = J_channel - J_pump + J_leak + J_Ca
    dh/dt   = alpha_h (1 - h) - beta_h h

    c       = clip(Ca, 0, Ca_tot (1 + ratio_ER_cyt))             (calcium inside its physical range)
    Ca_ER   = (Ca_tot - c) / ratio_ER_cyt                        ER calcium (conservation of total Ca²⁺)
    m_inf   = IP3 / (IP3 + Kd_IP3_1),   n_inf = c / (c + Kd_act)
    J_channel = ratio_ER_cyt rate_IP3R m_inf^3 n_inf^3 h^3 (Ca_ER - c)
    J_pump    = rate_SERCA c^2 / (Km_SERCA^2 + c^2)
    J_leak    = ratio_ER_cyt rate_L (Ca_ER - c)
    alpha_h   = k_IP3R Kd_inh (IP3 + Kd_IP3_1) / (IP3 + Kd_IP3_2),   beta_h = k_IP3R c

``J_IP3`` (µM/ms, e.g. gap-junction diffusion) and ``J_Ca`` (µM/ms, NEST's "current" input) are optional
flux inputs. The astrocyte's output is NEST's slow inward current (SIC) into paired neurons, in pA::

    SIC = SIC_scale * log(1000 (Ca - SIC_th))   if 1000 (Ca - SIC_th) > 1 (Ca in nM above SIC_th), else 0

Order of one step (NEST): integrate the ODE over dt (RK4, ``substeps`` sub-steps), then add this step's
spike input ``IP3 += delta_IP3 * sum(w)``, then compute the SIC from the new Ca.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_size
from .._types import Array, ArrayLike
from . import _smooth
from ..core.contracts import AbstractAstrocyte, as_input
from ..core.integrators import rk4
from ._common import check_concentration, check_smooth, check_substeps, set_params


class LiRinzelState(NamedTuple):
    IP3: Array  # inositol 1,4,5-trisphosphate, µM
    Ca: Array  # cytosolic calcium, µM
    h: Array  # fraction of IP3 receptors not inactivated by Ca²⁺, dimensionless in [0, 1]


class LiRinzel(AbstractAstrocyte):
    """Li–Rinzel astrocyte (NEST ``astrocyte_lr_1994``), one per element of a population of ``size``.

    Args (NEST names, defaults of NEST 3.10; all > 0 unless marked >= 0):
        size: number of astrocytes.
        Ca_tot: total free Ca²⁺ concentration in terms of cytosolic volume, µM.
        IP3_0: baseline IP3 concentration, µM (>= 0).
        Kd_IP3_1, Kd_IP3_2: first / second IP3R dissociation constants of IP3, µM.
        Kd_act: IP3R dissociation constant of Ca²⁺ (activation), µM.
        Kd_inh: IP3R dissociation constant of Ca²⁺ (inhibition), µM (>= 0).
        Km_SERCA: half-activation constant of the SERCA pump, µM.
        SIC_scale: scale of the slow inward current, pA.
        SIC_th: Ca²⁺ threshold of the SIC, µM (>= 0).
        delta_IP3: IP3 increase per unit of incoming spike weight, µM (>= 0).
        k_IP3R: IP3R binding constant for Ca²⁺ inhibition, 1/(µM·ms) (>= 0).
        rate_IP3R: maximal Ca²⁺ release rate through IP3R, 1/ms (>= 0).
        rate_L: Ca²⁺ leak rate from the ER, 1/ms (>= 0).
        rate_SERCA: maximal SERCA uptake rate, µM/ms (>= 0).
        ratio_ER_cyt: ER-to-cytosol volume ratio.
        tau_IP3: IP3 decay time constant, ms.
        substeps: RK4 sub-steps per call of ``step`` (static; raise it for astrocyte steps of tens of ms).
        smooth: width (µM) of the smooth versions of the Ca clamp and the SIC threshold; 0 = exact (NEST).
    """

    Ca_tot: Array
    IP3_0: Array
    Kd_IP3_1: Array
    Kd_IP3_2: Array
    Kd_act: Array
    Kd_inh: Array
    Km_SERCA: Array
    SIC_scale: Array
    SIC_th: Array
    delta_IP3: Array
    k_IP3R: Array
    rate_IP3R: Array
    rate_L: Array
    rate_SERCA: Array
    ratio_ER_cyt: Array
    tau_IP3: Array
    size: int = eqx.field(static=True)
    substeps: int = eqx.field(static=True)
    smooth: float = eqx.field(static=True)

    def __init__(self, size: int, *, Ca_tot: ArrayLike = 2.0, IP3_0: ArrayLike = 0.16, Kd_IP3_1: ArrayLike = 0.13,
                 Kd_IP3_2: ArrayLike = 0.9434, Kd_act: ArrayLike = 0.08234, Kd_inh: ArrayLike = 1.049,
                 Km_SERCA: ArrayLike = 0.1, SIC_scale: ArrayLike = 1.0, SIC_th: ArrayLike = 0.19669,
                 delta_IP3: ArrayLike = 0.0002, k_IP3R: ArrayLike = 0.0002, rate_IP3R: ArrayLike = 0.006,
                 rate_L: ArrayLike = 0.00011, rate_SERCA: ArrayLike = 0.0009, ratio_ER_cyt: ArrayLike = 0.185,
                 tau_IP3: ArrayLike = 7142.0, substeps: int = 1, smooth: float = 0.0):
        owner = type(self).__name__
        self.size = check_size(size, owner)
        set_params(self, (
            ("Ca_tot", Ca_tot, False, "µM"), ("IP3_0", IP3_0, True, "µM"), ("Kd_IP3_1", Kd_IP3_1, False, "µM"),
            ("Kd_IP3_2", Kd_IP3_2, False, "µM"), ("Kd_act", Kd_act, False, "µM"), ("Kd_inh", Kd_inh, True, "µM"),
            ("Km_SERCA", Km_SERCA, False, "µM"), ("SIC_scale", SIC_scale, False, "pA"),
            ("SIC_th", SIC_th, True, "µM"), ("delta_IP3", delta_IP3, True, "µM"),
            ("k_IP3R", k_IP3R, True, "1/(µM ms)"), ("rate_IP3R", rate_IP3R, True, "1/ms"),
            ("rate_L", rate_L, True, "1/ms"), ("rate_SERCA", rate_SERCA, True, "µM/ms"),
            ("ratio_ER_cyt", ratio_ER_cyt, False, "dimensionless"), ("tau_IP3", tau_IP3, False, "ms"),
        ), owner)
        self.substeps, self.smooth = check_substeps(substeps, owner), check_smooth(smooth, owner)

    def init(self, *, key=None, IP3: Optional[ArrayLike] = None, Ca: ArrayLike = 0.073,
             h: ArrayLike = 0.793) -> LiRinzelState:
        """NEST's initial state (IP3 = IP3_0, Ca = 0.073 µM, h = 0.793) unless given."""
        owner = type(self).__name__
        check_concentration(IP3, "IP3", owner)
        check_concentration(Ca, "Ca", owner)
        if np.any(np.asarray(h) < 0) or np.any(np.asarray(h) > 1):
            raise ValueError(f"{owner}: initial h must be in [0, 1], got {h}")
        full = lambda x: jnp.broadcast_to(jnp.asarray(x, self.Ca_tot.dtype), (self.size,))
        return LiRinzelState(IP3=self.IP3_0 if IP3 is None else full(IP3), Ca=full(Ca), h=full(h))

    @property
    def max_Ca(self) -> Array:
        """Upper bound of cytosolic Ca²⁺ (all calcium in the cytosol), µM."""
        return self.Ca_tot * (1.0 + self.ratio_ER_cyt)

    def derivatives(self, state: LiRinzelState, J_IP3=0.0, J_Ca=0.0) -> LiRinzelState:
        """Right-hand side (µM/ms, 1/ms) at ``state`` with extra fluxes ``J_IP3``, ``J_Ca`` (µM/ms)."""
        ip3, h = state.IP3, state.h
        c = _smooth.clip(state.Ca, 0.0, self.max_Ca, self.smooth)
        alpha_h = self.k_IP3R * self.Kd_inh * (ip3 + self.Kd_IP3_1) / (ip3 + self.Kd_IP3_2)
        beta_h = self.k_IP3R * c
        J_pump = self.rate_SERCA * c**2 / (self.Km_SERCA**2 + c**2)
        m_inf = ip3 / (ip3 + self.Kd_IP3_1)
        n_inf = c / (c + self.Kd_act)
        ca_er = (self.Ca_tot - c) / self.ratio_ER_cyt
        J_leak = self.ratio_ER_cyt * self.rate_L * (ca_er - c)
        J_channel = self.ratio_ER_cyt * self.rate_IP3R * (m_inf * n_inf * h) ** 3 * (ca_er - c)
        return LiRinzelState(
            IP3=(self.IP3_0 - ip3) / self.tau_IP3 + J_IP3,
            Ca=J_channel - J_pump + J_leak + J_Ca,
            h=alpha_h * (1.0 - h) - beta_h * h,
        )

    def sic(self, Ca: Array) -> Array:
        """Slow inward current (pA) for cytosolic Ca²⁺ ``Ca`` (µM), NEST/Nadkarni–Jung."""
        x = (Ca - self.SIC_th) * 1000.0  # nM above threshold
        if self.smooth > 0:
            # log(1 + softplus(x - 1)): equals log(x) well above 1 nM, 0 well below, smooth in between
            return self.SIC_scale * jnp.log1p(_smooth.relu(x - 1.0, self.smooth * 1000.0))
        return jnp.where(x > 1.0, jnp.log(jnp.maximum(x, 1.0)) * self.SIC_scale, 0.0)

    def step(self, state: LiRinzelState, inputs: Optional[ArrayLike], dt: float, *, key=None, J_IP3=0.0,
             J_Ca=0.0) -> tuple[LiRinzelState, Array]:
        """Advance by ``dt`` ms.

        Args:
            state: current state.
            inputs: summed weight of the spikes arriving in this step (dimensionless, shape ``(size,)``,
                scalar, None, or the ``current`` of a ``SynapticInput`` from the population's receptors); each
                unit raises IP3 by ``delta_IP3`` µM at the end of the step.
            dt: step, ms.
            J_IP3, J_Ca: extra IP3 / Ca²⁺ fluxes (µM/ms), constant over the step.

        Returns:
            ``(new_state, sic)``: SIC in pA, shape ``(size,)``.
        """
        f = lambda y: self.derivatives(y, J_IP3, J_Ca)
        new = rk4(f, state, dt, self.substeps)
        if inputs is not None:
            new = new._replace(IP3=new.IP3 + self.delta_IP3 * as_input(inputs, self.size).current)
        return new, self.sic(new.Ca)
