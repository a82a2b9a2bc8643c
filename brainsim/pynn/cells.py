"""PyNN standard cell types mapped onto brainsim models.

Parameters are stored in PyNN's own names and units (mV, ms, nA, nF, uS, Hz); ``brainsim_model`` converts them
to brainsim's (mV, ms, pA, pF, nS, Hz) when the network is built: capacitance x1000 (nF -> pF), currents
x1000 (nA -> pA), conductances x1000 (uS -> nS). ``i_offset`` (nA) becomes an injected current (pA).

Each neuron type provides ``brainsim_model(p, size) -> (model, receptors)``, ``record_map`` (PyNN variable ->
(brainsim state variable or receptor name, factor to PyNN units)), ``init_map`` (initial value name ->
(brainsim state field, factor to brainsim units)) and ``weight_scale`` (PyNN weight -> brainsim weight).
Spike sources provide ``events(p, size, t0, t1, rng) -> (times ms, indices)``: their spikes in (t0, t1].
"""
from __future__ import annotations

import numpy as np

import brainsim as bs
from pyNN.standardmodels import build_translations, cells

from .sources import array_events, gamma_events, poisson_events


def _identity(base):
    return build_translations(*[(n, n) for n in base.default_parameters])


def _v(p, name, scale=1.0):
    """Parameter ``name`` (PyNN units) as a float32 array (or scalar if homogeneous) times ``scale``."""
    arr = np.asarray(p[name], dtype=np.float64) * scale
    if arr.ndim and np.all(arr == arr.flat[0]):
        return float(arr.flat[0])
    return arr.astype(np.float32)


def _receptors(p, kinetics, conductance):
    out = {}
    for rec, suffix in (("excitatory", "E"), ("inhibitory", "I")):
        kin = kinetics(_v(p, f"tau_syn_{suffix}"))
        output = bs.ConductanceOutput(_v(p, f"e_rev_{suffix}")) if conductance else bs.CurrentOutput()
        out[rec] = bs.Receptor(kin, output)
    return out


_GSYN = {"gsyn_exc": ("excitatory", 1e-3), "gsyn_inh": ("inhibitory", 1e-3)}  # nS -> uS


class _LIFMixin:
    """IF_{curr,cond}_{exp,alpha}: brainsim LIF, exact integration, NEST's refractory counting."""

    weight_scale = 1000.0  # nA -> pA or uS -> nS
    record_map = {"v": ("v", 1.0), **_GSYN}
    init_map = {"v": ("v", 1.0)}
    _kinetics = staticmethod(bs.Exponential)
    _conductance = False

    def brainsim_model(self, p, size):
        model = bs.LIF(size, tau_m=_v(p, "tau_m"), C_m=_v(p, "cm", 1000.0), v_rest=_v(p, "v_rest"),
                       v_th=_v(p, "v_thresh"), v_reset=_v(p, "v_reset"), t_ref=_v(p, "tau_refrac"),
                       method="exact", refractory_convention="nest")
        return model, _receptors(p, self._kinetics, self._conductance)


class IF_curr_exp(_LIFMixin, cells.IF_curr_exp):
    __doc__ = cells.IF_curr_exp.__doc__
    translations = _identity(cells.IF_curr_exp)


class IF_curr_alpha(_LIFMixin, cells.IF_curr_alpha):
    __doc__ = cells.IF_curr_alpha.__doc__
    translations = _identity(cells.IF_curr_alpha)
    _kinetics = staticmethod(bs.Alpha)


class IF_cond_exp(_LIFMixin, cells.IF_cond_exp):
    __doc__ = cells.IF_cond_exp.__doc__
    translations = _identity(cells.IF_cond_exp)
    _conductance = True


class IF_cond_alpha(_LIFMixin, cells.IF_cond_alpha):
    __doc__ = cells.IF_cond_alpha.__doc__
    translations = _identity(cells.IF_cond_alpha)
    _kinetics = staticmethod(bs.Alpha)
    _conductance = True


class _AdExMixin:
    """EIF_cond_{exp,alpha}_isfa_ista: brainsim AdEx (g_L = cm / tau_m; a in nS, b in nA -> pA)."""

    weight_scale = 1000.0
    record_map = {"v": ("v", 1.0), "w": ("w", 1e-3), **_GSYN}
    init_map = {"v": ("v", 1.0), "w": ("w", 1000.0)}
    _kinetics = staticmethod(bs.Exponential)

    def brainsim_model(self, p, size):
        cm = np.asarray(p["cm"], float) * 1000.0
        g_L = cm / np.asarray(p["tau_m"], float)
        model = bs.AdEx(size, a=_v(p, "a"), tau_w=_v(p, "tau_w"), b=_v(p, "b", 1000.0), C_m=_v({"c": cm}, "c"),
                        g_L=_v({"g": g_L}, "g"), E_L=_v(p, "v_rest"), V_T=_v(p, "v_thresh"),
                        delta_T=_v(p, "delta_T"), v_reset=_v(p, "v_reset"), v_peak=_v(p, "v_spike"),
                        t_ref=_v(p, "tau_refrac"), method="exp_euler")
        return model, _receptors(p, self._kinetics, True)


class EIF_cond_exp_isfa_ista(_AdExMixin, cells.EIF_cond_exp_isfa_ista):
    __doc__ = cells.EIF_cond_exp_isfa_ista.__doc__
    translations = _identity(cells.EIF_cond_exp_isfa_ista)


class EIF_cond_alpha_isfa_ista(_AdExMixin, cells.EIF_cond_alpha_isfa_ista):
    __doc__ = cells.EIF_cond_alpha_isfa_ista.__doc__
    translations = _identity(cells.EIF_cond_alpha_isfa_ista)
    _kinetics = staticmethod(bs.Alpha)


class HH_cond_exp(cells.HH_cond_exp):
    """HH_cond_exp as brainsim's Traub–Miles HH (NEST's hh_cond_exp_traub): V_T = v_offset; conductances uS -> nS,
    cm nF -> pF; a spike is the upward crossing of v_offset + 30 mV."""

    translations = _identity(cells.HH_cond_exp)
    weight_scale = 1000.0
    record_map = {"v": ("v", 1.0), **_GSYN}
    init_map = {"v": ("v", 1.0)}

    def brainsim_model(self, p, size):
        model = bs.TraubMilesHH(size, C_m=_v(p, "cm", 1000.0), g_Na=_v(p, "gbar_Na", 1000.0),
                                g_K=_v(p, "gbar_K", 1000.0), g_L=_v(p, "g_leak", 1000.0), E_Na=_v(p, "e_rev_Na"),
                                E_K=_v(p, "e_rev_K"), E_L=_v(p, "e_rev_leak"), V_T=_v(p, "v_offset"),
                                v_spike=np.asarray(p["v_offset"], np.float32) + 30.0, method="rk4")
        return model, _receptors(p, bs.Exponential, True)


class Izhikevich(cells.Izhikevich):
    """Izhikevich (2003) as brainsim's Izhikevich: i_offset (nA) x1000 is read in mV/ms (NEST's izhikevich with
    I_e in pA); synapses are delta jumps of v by the weight in mV (PyNN weight x1000 x1e-3)."""

    translations = _identity(cells.Izhikevich)
    weight_scale = 1.0
    record_map = {"v": ("v", 1.0), "u": ("u", 1.0)}
    init_map = {"v": ("v", 1.0), "u": ("u", 1.0)}

    def brainsim_model(self, p, size):
        model = bs.Izhikevich(size, a=_v(p, "a"), b=_v(p, "b"), c=_v(p, "c"), d=_v(p, "d"))
        delta = bs.synapses.Delta()
        return model, {"excitatory": bs.Receptor(delta, bs.CurrentOutput()),
                       "inhibitory": bs.Receptor(delta, bs.CurrentOutput())}


class SpikeSourcePoisson(cells.SpikeSourcePoisson):
    __doc__ = cells.SpikeSourcePoisson.__doc__
    translations = _identity(cells.SpikeSourcePoisson)

    def events(self, p, size, t0, t1, dt, rng):
        return poisson_events(p["rate"], p["start"], p["duration"], 0.0, size, t0, t1, dt, rng)


class SpikeSourcePoissonRefractory(cells.SpikeSourcePoissonRefractory):
    __doc__ = cells.SpikeSourcePoissonRefractory.__doc__
    translations = _identity(cells.SpikeSourcePoissonRefractory)

    def events(self, p, size, t0, t1, dt, rng):
        return poisson_events(p["rate"], p["start"], p["duration"], p["tau_refrac"], size, t0, t1, dt, rng)


class SpikeSourceGamma(cells.SpikeSourceGamma):
    __doc__ = cells.SpikeSourceGamma.__doc__
    translations = _identity(cells.SpikeSourceGamma)

    def events(self, p, size, t0, t1, dt, rng):
        return gamma_events(p["alpha"], p["beta"], p["start"], p["duration"], size, t0, t1, dt, rng)


class SpikeSourceArray(cells.SpikeSourceArray):
    __doc__ = cells.SpikeSourceArray.__doc__
    translations = _identity(cells.SpikeSourceArray)

    def events(self, p, size, t0, t1, dt, rng):
        return array_events(p["spike_times"], size, t0, t1, dt)


NEURON_TYPES = (IF_curr_exp, IF_curr_alpha, IF_cond_exp, IF_cond_alpha, EIF_cond_exp_isfa_ista,
                EIF_cond_alpha_isfa_ista, HH_cond_exp, Izhikevich)
SOURCE_TYPES = (SpikeSourcePoisson, SpikeSourcePoissonRefractory, SpikeSourceGamma, SpikeSourceArray)
