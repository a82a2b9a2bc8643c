"""The three benchmark networks of Brette et al. 2007 (J Comput Neurosci 23:349), as in Brian2's examples.

All three: N neurons, 80 % excitatory / 20 % inhibitory, random connectivity with probability
``p = 80 / N`` (mean fan-in 80 at every N, autapses allowed, as ``coba_brian2.py``), dt 0.1 ms.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_dt, check_size
from ..connectivity import fixed_probability
from ..network import Network, Population, Projection
from ..propagation import EventOperator
from ..neurons import LIF
from ..synapses import ConductanceOutput, CurrentOutput, Exponential, Receptor
from .base import Prepared

FAN_IN = 80


def _connect(key, n: int, weights_e: float, weights_i: float, receptors=("ge", "gi")):
    n_exc = int(0.8 * n)
    p = min(1.0, FAN_IN / n)
    k_e, k_i = jax.random.split(key)
    # one weight per projection: stored once (homogeneous), not once per synapse
    w_exc = EventOperator.from_sparse(fixed_probability(k_e, n_exc, n, p, weights_e), homogeneous=True)
    w_inh = EventOperator.from_sparse(fixed_probability(k_i, n - n_exc, n, p, weights_i), homogeneous=True)
    exc = Projection("P", "P", receptors[0], w_exc, pre_range=(0, n_exc))
    inh = Projection("P", "P", receptors[1], w_inh, pre_range=(n_exc, n))
    return {"exc": exc, "inh": inh}, n_exc


def _shared_parameters(model):
    """Store parameters that are equal for every neuron once, as scalars (identical dynamics).

    The update then reads 2 arrays per neuron instead of 8, which matters once the state no longer fits
    in cache (40 000+ neurons). Broadcast them back with ``jnp.broadcast_to`` to train per-neuron values.
    """
    names = [f for f in ("tau_m", "C_m", "v_rest", "v_th", "v_reset", "t_ref") if hasattr(model, f)]
    values = [getattr(model, f) for f in names]
    shared = [v[0] if v.ndim == 1 and bool(jnp.all(v == v[0])) else v for v in values]
    return eqx.tree_at(lambda m: [getattr(m, f) for f in names], model, shared)


def _check(n, dt, owner):
    n = check_size(n, owner)
    if n < 10:
        raise ValueError(f"{owner}: n must be at least 10 neurons, got {n}")
    return n, check_dt(dt, owner)


def coba(n: int = 4000, *, dt: float = 0.1, key=None) -> Prepared:
    """COBA (benchmark 1, Vogels & Abbott 2005): conductance-based LIF, exactly ``coba_brian2.py``.

    ``C_m dv/dt = g_L (E_L - v) + g_e (E_e - v) + g_i (E_i - v)`` with C_m = 200 pF, g_L = 10 nS
    (tau_m 20 ms), E_L = -60 mV, threshold -50 mV, reset -60 mV, refractory 5 ms, forward Euler as
    Brian2's ``method="euler"``. Synapses: g_e += 6 nS (0.6 g_L), tau 5 ms, E_e = 0 mV;
    g_i += 67 nS (6.7 g_L), tau 10 ms, E_i = -80 mV. Initial v ~ U(-60, -50) mV,
    g_e ~ N(4, 1.5) nS, g_i ~ N(20, 12) nS.
    """
    n, dt = _check(n, dt, "coba")
    key = jax.random.key(0) if key is None else key
    k_conn, k_v, k_e, k_i = jax.random.split(key, 4)
    neurons = _shared_parameters(
        LIF(n, tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, method="euler"))
    receptors = {"ge": Receptor(Exponential(5.0), ConductanceOutput(0.0)),
                 "gi": Receptor(Exponential(10.0), ConductanceOutput(-80.0))}
    projections, n_exc = _connect(k_conn, n, 6.0, 67.0)
    net = Network({"P": Population(neurons, receptors)}, projections)
    state = net.init(dt)
    v0 = jax.random.uniform(k_v, (n,), minval=-60.0, maxval=-50.0)
    state = state._replace(
        neurons={"P": neurons.init(v=v0)},
        receptors={"P": {"ge": 4.0 + 1.5 * jax.random.normal(k_e, (n,)),
                         "gi": 20.0 + 12.0 * jax.random.normal(k_i, (n,))}},
    )
    return Prepared(net, state, dt, {"E": ("P", 0, n_exc), "I": ("P", n_exc, n)},
                    f"COBA (Brette et al. 2007 benchmark 1): {n} conductance-based LIF neurons")


def cuba(n: int = 4000, *, dt: float = 0.1, key=None) -> Prepared:
    """CUBA (benchmark 2): current-based LIF as Brian2's CUBA example.

    ``tau_m dv/dt = (E_L - v) + (I_e + I_i) / g_L`` with tau_m 20 ms, C_m 200 pF (g_L 10 nS),
    E_L = -49 mV, threshold -50 mV, reset -60 mV, refractory 5 ms. Exponential currents: excitatory
    +16.2 pA (1.62 mV × g_L), tau 5 ms; inhibitory -90 pA (-9 mV × g_L), tau 10 ms.
    Initial v ~ U(-60, -50) mV.
    """
    n, dt = _check(n, dt, "cuba")
    key = jax.random.key(0) if key is None else key
    k_conn, k_v = jax.random.split(key)
    neurons = _shared_parameters(
        LIF(n, tau_m=20.0, C_m=200.0, v_rest=-49.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, method="euler"))
    receptors = {"Ie": Receptor(Exponential(5.0), CurrentOutput()),
                 "Ii": Receptor(Exponential(10.0), CurrentOutput())}
    projections, n_exc = _connect(k_conn, n, 16.2, -90.0, receptors=("Ie", "Ii"))
    net = Network({"P": Population(neurons, receptors)}, projections)
    state = net.init(dt)
    v0 = jax.random.uniform(k_v, (n,), minval=-60.0, maxval=-50.0)
    state = state._replace(neurons={"P": neurons.init(v=v0)})
    return Prepared(net, state, dt, {"E": ("P", 0, n_exc), "I": ("P", n_exc, n)},
                    f"CUBA (Brette et al. 2007 benchmark 2): {n} current-based LIF neurons")


def cobahh(n: int = 4000, *, dt: float = 0.1, key=None) -> Prepared:
    """COBAHH (benchmark 3): Traub–Miles Hodgkin–Huxley neurons with exponential conductances.

    Neuron: ``TraubMilesHH`` defaults (C_m 200 pF, g_L 10 nS, E_L -60 mV, g_Na 20 µS, g_K 6 µS,
    V_T -63 mV), exponential Euler, spike = upward crossing of -20 mV. Synapses: g_e += 6 nS, tau 5 ms,
    E_e 0 mV; g_i += 67 nS, tau 10 ms, E_i -80 mV. Initial v = E_L + N(-5, 5) mV,
    g_e ~ N(40, 15) nS, g_i ~ N(200, 120) nS, as Brian2's COBAHH example.
    """
    from ..neurons import TraubMilesHH

    n, dt = _check(n, dt, "cobahh")
    key = jax.random.key(0) if key is None else key
    k_conn, k_v, k_e, k_i = jax.random.split(key, 4)
    neurons = TraubMilesHH(n, method="exp_euler")
    receptors = {"ge": Receptor(Exponential(5.0), ConductanceOutput(0.0)),
                 "gi": Receptor(Exponential(10.0), ConductanceOutput(-80.0))}
    projections, n_exc = _connect(k_conn, n, 6.0, 67.0)
    net = Network({"P": Population(neurons, receptors)}, projections)
    state = net.init(dt)
    v0 = -60.0 + 5.0 * jax.random.normal(k_v, (n,)) - 5.0
    state = state._replace(
        neurons={"P": neurons.init(v=v0)},
        receptors={"P": {"ge": 10.0 * (4.0 + 1.5 * jax.random.normal(k_e, (n,))),
                         "gi": 10.0 * (20.0 + 12.0 * jax.random.normal(k_i, (n,)))}},
    )
    return Prepared(net, state, dt, {"E": ("P", 0, n_exc), "I": ("P", n_exc, n)},
                    f"COBAHH (Brette et al. 2007 benchmark 3): {n} Traub-Miles HH neurons")
