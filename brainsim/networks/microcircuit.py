"""The cortical microcircuit of Potjans & Diesmann (2014, Cereb Cortex 24:785) with the parameters of NEST 3.10's
PyNEST example (``../shared/peers/pd14_nest/network_params.py``), at ``scale`` = N_scaling = K_scaling.

Eight populations (L23E, L23I, L4E, L4I, L5E, L5I, L6E, L6I; 77 169 neurons at scale 1) of LIF neurons with
exponential current synapses (tau_syn 0.5 ms), integrated exactly with NEST's refractory counting
(``LIF(method="exact", refractory_convention="nest")``: NEST's ``iaf_psc_exp``). Between every pair of populations a
fixed total number of synapses (multapses and autapses allowed, NEST's ``fixed_total_number``), the number derived
from the connection probability; weights normal (10 % relative sd, redrawn to keep their sign), the PSC that gives a
0.15 mV PSP (L4E -> L23E doubled; inhibitory -4 times); delays normal (1.5 ms excitatory, 0.75 ms inhibitory, 50 %
relative sd, redrawn below dt/2) rounded to the nearest step (so >= 1 step). Background: per neuron K_ext
independent Poisson sources at 8 Hz (``PoissonInput``). Below scale 1, in-degrees shrink by K_scaling, weights grow
by 1/sqrt(K_scaling) and a DC current restores the mean input, as the example does. Initial membrane potentials
normal with the example's "optimized" per-population mean and sd.
"""
from __future__ import annotations

import warnings

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse
from tqdm.auto import tqdm

from .._checks import check_dt
from ..connectivity import fixed_total_number
from ..delays import DelayedEventOperator
from ..distributions import Normal
from ..inputs import CurrentStep, PoissonInput
from ..network import Network, Population
from ..neurons import LIF
from ..projections import DelayedProjection
from ..synapses import CurrentOutput, Exponential, Receptor
from .base import Prepared
from .brette2007 import _shared_parameters  # (one scalar per parameter: the native exact step)

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
FULL_SIZES = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
FULL_MEAN_RATES = np.array([0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829])  # Hz, for the DC compensation
CONN_PROBS = np.array([  # [target, source]
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443],
])
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
BG_RATE = 8.0  # Hz per external source
PSP_EXC, G, WEIGHT_REL_SD = 0.15, -4.0, 0.1  # mV, inhibitory/excitatory, relative sd
DELAY_EXC, DELAY_INH, DELAY_REL_SD = 1.5, 0.75, 0.5  # ms
V0_MEAN = np.array([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43])  # mV ("optimized")
V0_SD = np.array([5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])
NEURON = dict(C_m=250.0, tau_m=10.0, v_rest=-65.0, v_th=-50.0, v_reset=-65.0, t_ref=2.0)  # pF, ms, mV
TAU_SYN = 0.5  # ms


def psc_over_psp(C_m: float, tau_m: float, tau_syn: float) -> float:
    """The PSC amplitude (pA) per mV of PSP peak for an exponential current on a LIF membrane."""
    sub = 1.0 / (tau_syn - tau_m)
    pre = tau_m * tau_syn / C_m * sub
    frac = (tau_m / tau_syn) ** sub
    return 1.0 / (pre * (frac ** tau_m - frac ** tau_syn))


def derived_parameters(scale: float):
    """What the example derives at ``scale``: neurons per population, synapse numbers [target, source], external
    in-degrees, mean weight matrix (pA), external weight (pA) and the DC compensation (pA)."""
    full_synapses = np.log(1.0 - CONN_PROBS) / np.log((np.outer(FULL_SIZES, FULL_SIZES) - 1.0)
                                                      / np.outer(FULL_SIZES, FULL_SIZES))
    sizes = np.round(FULL_SIZES * scale).astype(int)
    synapses = np.round(full_synapses * scale * scale).astype(int)
    k_ext = np.round(K_EXT * scale).astype(int)
    psp = np.tile(np.where(np.arange(8) % 2 == 0, PSP_EXC, PSP_EXC * G), (8, 1))
    psp[0, 2] = 2.0 * PSP_EXC
    factor = psc_over_psp(NEURON["C_m"], NEURON["tau_m"], TAU_SYN)
    weights, w_ext = psp * factor, PSP_EXC * factor
    dc = np.zeros(8)
    if scale != 1:
        in_degrees = full_synapses / FULL_SIZES[:, None]
        input_rec = np.sum(weights * in_degrees * FULL_MEAN_RATES, axis=1)
        dc = 0.001 * TAU_SYN * (1.0 - np.sqrt(scale)) * (input_rec + w_ext * K_EXT * BG_RATE)
        weights, w_ext = weights / np.sqrt(scale), w_ext / np.sqrt(scale)
    return sizes, synapses, k_ext, weights, w_ext, dc


def microcircuit(scale: float = 0.1, *, dt: float = 0.1, key=None, progress: Optional[bool] = None) -> Prepared:
    """The Potjans–Diesmann microcircuit at ``scale`` (module docstring).

    The eight populations share one neuron model, so they are built as one population ``"P"`` whose neuron ranges
    are the populations (``groups``: name -> ("P", start, stop), in the order of ``POPULATIONS``), with one projection
    ``"recurrent"`` holding all 64 blocks of synapses and their per-synapse delays: one delivery per step instead of
    64, and a compile time that does not grow with the number of blocks. ``progress``: a progress bar over the
    blocks (default: from scale 0.5, where building takes tens of seconds).
    """
    owner = "microcircuit"
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: scale must be a number in (0, 1], got {scale!r}") from None
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"{owner}: scale must be in (0, 1], got {scale}")
    dt = check_dt(dt, owner)
    sizes, synapses, k_ext, weights, w_ext, dc = derived_parameters(scale)
    if sizes.min() < 1:
        raise ValueError(f"{owner}: scale {scale} leaves a population without neurons")
    n = int(sizes.sum())
    start = np.concatenate([[0], np.cumsum(sizes)])
    key = jax.random.key(0) if key is None else key
    k_blocks, k_v = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_v)).tolist())
    pre, post, w, d = [], [], [], []
    blocks = tqdm(list(zip(np.ndindex(8, 8), jax.random.split(k_blocks, 64))), desc="microcircuit synapses",
                  unit="block", leave=False, disable=not (scale >= 0.5 if progress is None else progress))
    for (target, source), block_key in blocks:
        count = int(synapses[target, source])
        if count == 0:
            continue
        mean = float(weights[target, source])
        sign = dict(low=0.0) if mean > 0 else dict(high=0.0)  # redrawn to keep the sign
        block = fixed_total_number(block_key, int(sizes[source]), int(sizes[target]), count,
                                   Normal(mean, abs(mean) * WEIGHT_REL_SD, **sign))
        indices = np.asarray(block.indices)
        pre.append(indices[:, 0] + start[source])
        post.append(indices[:, 1] + start[target])
        w.append(np.asarray(block.data))
        delay = DELAY_EXC if source % 2 == 0 else DELAY_INH
        d.append(Normal(delay, delay * DELAY_REL_SD, low=0.5 * dt)(rng, count))
    pre, post, w, d = (np.concatenate(x) for x in (pre, post, w, d))
    order = np.argsort(pre, kind="stable")  # rows in order (a row's blocks one after the other)
    pre, post, w, d = pre[order], post[order], w[order], d[order]
    indices = np.stack([pre, post], axis=1).astype(np.int32)
    matrix = sparse.BCOO((jnp.asarray(w), jnp.asarray(indices)), shape=(n, n))
    delays = sparse.BCOO((d, indices), shape=(n, n))  # the same synapses, in the same order
    with warnings.catch_warnings():  # delays are drawn off the grid: rounded to the nearest step, halves up
        warnings.simplefilter("ignore", UserWarning)
        operator = DelayedEventOperator.from_sparse(matrix, delays, dt=dt)
    per_neuron = lambda values: np.repeat(np.asarray(values, np.float64), sizes).astype(np.float32)  # noqa: E731
    model = _shared_parameters(LIF(n, method="exact", refractory_convention="nest", **NEURON))
    receptor = {"syn": Receptor(Exponential(TAU_SYN), CurrentOutput())}
    drives = [PoissonInput("P", "syn", per_neuron(k_ext), BG_RATE, float(w_ext))]
    if np.any(dc != 0):
        drives.append(CurrentStep("P", per_neuron(dc)))
    net = Network({"P": Population(model, receptor)}, {"recurrent": DelayedProjection("P", "P", "syn", operator)},
                  drives)
    v0 = per_neuron(V0_MEAN) + per_neuron(V0_SD) * rng.standard_normal(n).astype(np.float32)
    state = net.init(dt)._replace(neurons={"P": model.init(v=v0)})
    groups = {name: ("P", int(start[i]), int(start[i + 1])) for i, name in enumerate(POPULATIONS)}
    return Prepared(net, state, dt, groups, f"Potjans-Diesmann (2014) microcircuit at scale {scale:g}: "
                                            f"{n} neurons, {net.n_synapses} synapses")
