"""Brunel (2000) model A: sparsely connected excitatory and inhibitory LIF neurons with voltage-jump synapses and
Poisson background drive (J Comput Neurosci 8:183), as ``../shared/peers/brunel_brian2.py`` and NEST's
``brunel_delta_nest`` example.

N_E = 0.8 N excitatory and N_I = 0.2 N inhibitory neurons (N = 10 000 in the paper); every neuron receives
C_E = 0.1 N_E synapses from distinct excitatory and C_I = 0.1 N_I from distinct inhibitory neurons (fixed
in-degree, autapses allowed as in the peer), each a jump of J = 0.1 mV (excitatory) or -g J (inhibitory) after a
delay D = 1.5 ms, plus C_E independent Poisson sources per neuron at eta × nu_thr, nu_thr = theta / (J C_E tau)
(the rate that brings the mean input to threshold), each also a jump of J. Neurons: tau = 20 ms, theta = 20 mV,
V_r = 10 mV, refractory 2 ms (inputs arriving while refractory are lost, as in both peers), v(0) ~ U(0, theta).

A jump is a ``Delta`` receptor on an LIF with C_m = 1 pF, so a weight of J pA·ms is a jump of J mV: the charge
arrives within the step after the spike (or Poisson event) is delivered, and the membrane has moved by
J (tau/dt)(1 - exp(-dt/tau)) = 0.9975 J at its end (Brian2: J at the arrival, J exp(-dt/tau) = 0.995 J one step
later).

The four states of the paper's Figure 8: ``"SR"`` (g 3, eta 2: synchronous regular), ``"AI"`` (g 5, eta 2:
asynchronous irregular), ``"SI-fast"`` (g 6, eta 4) and ``"SI-slow"`` (g 4.5, eta 0.9).
"""
from __future__ import annotations

import jax
import numpy as np

from .._checks import check_choice, check_dt, check_size
from ..connectivity import _host_rng, fixed_in_degree
from ..inputs import PoissonInput
from ..network import Network, Population, Projection
from ..neurons import LIF
from ..propagation import EventOperator
from ..synapses import CurrentOutput, Delta, Receptor
from .base import Prepared

STATES = {"SR": (3.0, 2.0), "AI": (5.0, 2.0), "SI-fast": (6.0, 4.0), "SI-slow": (4.5, 0.9)}  # (g, eta)
J, DELAY, TAU, THETA, V_RESET, T_REF = 0.1, 1.5, 20.0, 20.0, 10.0, 2.0  # mV, ms, ms, mV, mV, ms


def brunel(n: int = 10000, *, state: str = "AI", dt: float = 0.1, key=None) -> Prepared:
    """Brunel (2000) model A with ``n`` neurons (module docstring) in ``state`` ("AI", "SR", "SI-fast", "SI-slow").

    Returns a ``Prepared`` network: one population ``"P"`` (excitatory neurons first), projections ``"E"`` and
    ``"I"`` into its ``Delta`` receptor ``"jump"``, and the Poisson background as a ``PoissonInput`` drive.
    """
    owner = "brunel"
    n = check_size(n, owner, "n")
    if n < 50:
        raise ValueError(f"{owner}: n must be at least 50 neurons (10 % in-degree from 20 % inhibitory), got {n}")
    state = check_choice(state, tuple(STATES), "state", owner)
    dt = check_dt(dt, owner)
    g, eta = STATES[state]
    n_exc = int(round(0.8 * n))
    c_exc, c_inh = int(round(0.1 * n_exc)), int(round(0.1 * (n - n_exc)))
    nu_thr = THETA / (J * c_exc * TAU) * 1000.0  # Hz
    key = jax.random.key(0) if key is None else key
    k_connect, k_v = jax.random.split(key)  # (splits in two: the program a caller's own split already compiled)
    k_exc, k_inh = jax.random.split(k_connect)
    neurons = LIF(n, tau_m=TAU, C_m=1.0, v_rest=0.0, v_th=THETA, v_reset=V_RESET, t_ref=T_REF)
    w_exc = EventOperator.from_sparse(fixed_in_degree(k_exc, n_exc, n, c_exc, J), homogeneous=True)
    w_inh = EventOperator.from_sparse(fixed_in_degree(k_inh, n - n_exc, n, c_inh, -g * J), homogeneous=True)
    projections = {"E": Projection("P", "P", "jump", w_exc, delay=DELAY, pre_range=(0, n_exc)),
                   "I": Projection("P", "P", "jump", w_inh, delay=DELAY, pre_range=(n_exc, n))}
    background = PoissonInput("P", "jump", c_exc, eta * nu_thr, J)
    net = Network({"P": Population(neurons, {"jump": Receptor(Delta(), CurrentOutput())})}, projections, [background])
    v0 = _host_rng(k_v).uniform(0.0, THETA, n).astype(np.float32)  # on the host: nothing to compile per size
    initial = net.init(dt)._replace(neurons={"P": neurons.init(v=v0)})
    return Prepared(net, initial, dt, {"E": ("P", 0, n_exc), "I": ("P", n_exc, n)},
                    f"Brunel (2000) model A, state {state} (g = {g:g}, eta = {eta:g}): {n} LIF neurons, "
                    f"C_E = {c_exc}, C_I = {c_inh}")
