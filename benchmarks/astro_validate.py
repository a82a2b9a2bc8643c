"""Validate brainsim's astrocytes against NEST 3.10, Brian2 and SciPy; prints one JSON line per protocol.

    .venv/bin/python benchmarks/astro_validate.py [--quick]

* ``nest_single_spike``: LiRinzel with NEST defaults, IP3 = Ca = h = 1 at t = 0, one spike of weight 1
  at t = 10 ms, dt = 0.1 ms; values at t = 99.9 ms and the max relative deviation from the NEST trace
  stored in ``tests/reference/data/nest_astrocyte.json``.
* ``li_rinzel_cycle``: IP3 clamped at 0.5 µM; limit-cycle period (s) from brainsim (RK4, dt = 1 ms) and
  from SciPy's ``solve_ivp`` (DOP853, rtol 1e-10) on an independent right-hand side; NEST's period from the
  reference file.
* ``li_rinzel_onset``: IP3 range of the oscillations: Hopf points of the fixed point by SciPy (root +
  finite-difference Jacobian eigenvalues) vs. brainsim simulations (bisection on the sustained amplitude).
* ``gliotransmission``: released fraction per spike (no / weak / stronger gliotransmission) vs. Brian2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from brainsim.astrocytes import GChI, LiRinzel, TripartiteSynapse  # noqa: E402

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference", "data")
NEST_DEFAULTS = dict(Ca_tot=2.0, IP3_0=0.16, Kd_IP3_1=0.13, Kd_IP3_2=0.9434, Kd_act=0.08234, Kd_inh=1.049,
                     Km_SERCA=0.1, k_IP3R=0.0002, rate_IP3R=0.006, rate_L=0.00011, rate_SERCA=0.0009,
                     ratio_ER_cyt=0.185)


def nest_single_spike():
    model = LiRinzel(1)
    state = model.init(IP3=1.0, Ca=1.0, h=1.0)
    inputs = np.zeros((1000, 1))
    inputs[99] = 1.0  # the step ending at t = 10.0 ms

    def body(s, x):
        s, _ = model.step(s, x, 0.1)
        return s, (s.IP3[0], s.Ca[0], s.h[0])

    _, traces = jax.lax.scan(body, state, jnp.asarray(inputs))
    traces = [np.asarray(t) for t in traces]
    out = {"protocol": "nest_single_spike", "t_ms": 99.9, "IP3": float(traces[0][998]), "Ca": float(traces[1][998]),
           "h": float(traces[2][998])}
    path = os.path.join(REF, "nest_astrocyte.json")
    if os.path.exists(path):
        ref = json.load(open(path))["single_spike"]
        dev = max(float(np.max(np.abs(t[:999] - np.asarray(ref[k])) / np.abs(np.asarray(ref[k]))))
                  for t, k in zip(traces, ("IP3", "Ca", "h")))
        out["max_rel_dev_vs_nest"] = dev
        out["nest_IP3"], out["nest_Ca"], out["nest_h"] = ref["IP3"][-1], ref["Ca"][-1], ref["h"][-1]
    return out


def scipy_rhs(ip3, p=NEST_DEFAULTS):
    """Independent Li–Rinzel right-hand side (Ca, h) for clamped IP3 (µM, ms)."""
    def f(t, y):
        c, h = y
        m = ip3 / (ip3 + p["Kd_IP3_1"])
        n = c / (c + p["Kd_act"])
        er = (p["Ca_tot"] - c) / p["ratio_ER_cyt"]
        dc = (p["ratio_ER_cyt"] * (p["rate_IP3R"] * (m * n * h) ** 3 + p["rate_L"]) * (er - c)
              - p["rate_SERCA"] * c * c / (p["Km_SERCA"] ** 2 + c * c))
        q2 = p["Kd_inh"] * (ip3 + p["Kd_IP3_1"]) / (ip3 + p["Kd_IP3_2"])
        dh = p["k_IP3R"] * (q2 * (1 - h) - c * h)
        return np.array([dc, dh])
    return f


def period_from_trace(t, c):
    """Mean interval (same unit as t) between upward crossings of the trace's mid-level."""
    mid = 0.5 * (c.min() + c.max())
    up = np.nonzero((c[:-1] < mid) & (c[1:] >= mid))[0]
    tc = t[up] + (mid - c[up]) / (c[up + 1] - c[up]) * (t[up + 1] - t[up])
    return float(np.mean(np.diff(tc))) if len(tc) >= 2 else float("nan")


def brainsim_clamped(ip3_values, duration_ms, dt=1.0):
    ip3_values = np.atleast_1d(np.asarray(ip3_values, float))
    model = LiRinzel(len(ip3_values), IP3_0=ip3_values)
    state = model.init(IP3=ip3_values)
    n = int(duration_ms / dt)

    def body(s, _):
        s, _ = model.step(s, None, dt)
        return s, s.Ca

    _, ca = jax.lax.scan(body, state, None, length=n)
    return np.arange(1, n + 1) * dt, np.asarray(ca)


def li_rinzel_cycle(quick):
    duration = 40_000.0 if quick else 60_000.0  # ms; the period is measured after the first 20 s
    t, ca = brainsim_clamped([0.5], duration)
    keep = t > 20_000
    p_bs = period_from_trace(t[keep], ca[keep, 0]) / 1000.0
    sol = solve_ivp(scipy_rhs(0.5), (0, duration), [0.073, 0.793], method="DOP853", rtol=1e-10, atol=1e-12,
                    dense_output=True)
    tt = np.arange(20_000, duration, 1.0)
    p_sp = period_from_trace(tt, sol.sol(tt)[0]) / 1000.0
    out = {"protocol": "li_rinzel_cycle", "IP3_uM": 0.5, "period_s": p_bs, "period_s_scipy": p_sp,
           "rel_dev_scipy": abs(p_bs - p_sp) / p_sp}
    path = os.path.join(REF, "nest_astrocyte.json")
    if os.path.exists(path):
        ref = json.load(open(path))["clamped_ip3"]
        p_nest = period_from_trace(np.asarray(ref["times_ms"]), np.asarray(ref["Ca"])) / 1000.0
        out["period_s_nest"] = p_nest
        out["rel_dev_nest"] = abs(p_bs - p_nest) / p_nest
    return out


def hopf_points_scipy():
    """IP3 values where the fixed point's Jacobian has a pair of eigenvalues crossing the imaginary axis."""
    def max_re(ip3):
        f = scipy_rhs(ip3)
        c0 = brentq(lambda c: f(0, [c, _h_inf(ip3, c)])[0], 1e-9, NEST_DEFAULTS["Ca_tot"], xtol=1e-15)
        y0 = np.array([c0, _h_inf(ip3, c0)])
        J = np.zeros((2, 2))
        for k in range(2):
            e = np.zeros(2)
            e[k] = 1e-7
            J[:, k] = (f(0, y0 + e) - f(0, y0 - e)) / 2e-7
        return float(np.max(np.linalg.eigvals(J).real))
    grid = np.linspace(0.2, 1.2, 101)
    vals = np.array([max_re(x) for x in grid])
    roots = [brentq(max_re, grid[i], grid[i + 1], xtol=1e-8) for i in range(len(grid) - 1)
             if np.sign(vals[i]) != np.sign(vals[i + 1])]
    return roots


def _h_inf(ip3, c, p=NEST_DEFAULTS):
    q2 = p["Kd_inh"] * (ip3 + p["Kd_IP3_1"]) / (ip3 + p["Kd_IP3_2"])
    return q2 / (q2 + c)


def _oscillates_scipy(ip3, duration=120_000.0):
    sol = solve_ivp(scipy_rhs(ip3), (0, duration), [0.073, 0.793], method="LSODA", rtol=1e-9, atol=1e-12,
                    dense_output=True)
    c = sol.sol(np.arange(80_000.0, duration, 5.0))[0]
    return c.max() - c.min() > 0.01


def _bisect(pred, lo, hi, tol):
    """Boundary of a predicate between lo (pred(lo) != pred(hi)) and hi."""
    p_lo = pred(lo)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if pred(mid) == p_lo:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def li_rinzel_onset():
    """Oscillation range in IP3 from (0.073, 0.793): brainsim on a fine grid vs. SciPy bisection."""
    coarse = np.linspace(0.2, 1.2, 51)
    t, ca = brainsim_clamped(coarse, 120_000.0, dt=2.0)
    late = t > 80_000
    osc = (ca[late].max(0) - ca[late].min(0)) > 0.01
    idx = np.nonzero(osc)[0]
    step = 0.0025
    fine = np.concatenate([np.arange(coarse[idx[0] - 1], coarse[idx[0]] + 1e-9, step),
                           np.arange(coarse[idx[-1]], coarse[idx[-1] + 1] + 1e-9, step)])
    t, ca = brainsim_clamped(fine, 120_000.0, dt=2.0)
    osc_f = (ca[late].max(0) - ca[late].min(0)) > 0.01
    n_on = len(fine) // 2
    on_bs = float(fine[:n_on][np.argmax(osc_f[:n_on])] - step / 2)
    off_bs = float(fine[n_on:][np.nonzero(osc_f[n_on:])[0][-1]] + step / 2)
    tol = 2.5e-3
    on_sp = _bisect(_oscillates_scipy, coarse[idx[0] - 1], coarse[idx[0]], tol / 4)
    off_sp = _bisect(_oscillates_scipy, coarse[idx[-1]], coarse[idx[-1] + 1], tol / 4)
    return {"protocol": "li_rinzel_onset", "onset_IP3_uM": on_bs, "offset_IP3_uM": off_bs,
            "onset_IP3_uM_scipy": on_sp, "offset_IP3_uM_scipy": off_sp, "resolution_uM": step,
            "hopf_IP3_uM_scipy": [float(r) for r in hopf_points_scipy()],
            "note": "from Ca=0.073, h=0.793; the upper boundary is the fold of cycles (subcritical Hopf below it)"}


def gliotransmission():
    path = os.path.join(REF, "brian2_gliotransmission.json")
    ref = json.load(open(path))
    astro = GChI(2, F_ex=2e-3, I_bias=jnp.asarray(ref["I_bias_uM"]), O_beta=0.0)
    syn = TripartiteSynapse(3)
    n = 17100
    spikes = np.zeros(n)
    idx = np.round(np.asarray(ref["spike_times_ms"])).astype(int)
    spikes[idx] = 1.0

    def body(c, s):
        a, y = c
        y, r = syn.step(y, jnp.full(3, s), 1.0, jnp.concatenate([jnp.zeros(1), a.G_A]))
        a, _ = astro.step(a, None, 1.0)
        return (a, y), r

    _, r = jax.lax.scan(body, (astro.init(I=ref["I0_uM"], C=ref["C0_uM"], h=ref["h0"]), syn.init()),
                        jnp.asarray(spikes))
    mine = np.asarray(r)[idx].T
    b = np.asarray(ref["r_S"])
    return {"protocol": "gliotransmission", "labels": ref["labels"],
            "mean_r_S": [float(x) for x in mine.mean(1)], "mean_r_S_brian2": [float(x) for x in b.mean(1)],
            "max_abs_dev_brian2": float(np.abs(mine - b).max())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="shorter Ca2+ cycle run (40 s instead of 60 s) and no oscillation-onset search (the "
                         "slow part: fine IP3 grid and SciPy bisection)")
    args = ap.parse_args()
    if args.quick:
        print(json.dumps({"protocol": "li_rinzel_onset", "skipped": "--quick"}), flush=True)
    onset = [] if args.quick else [li_rinzel_onset]
    for fn in (nest_single_spike, lambda: li_rinzel_cycle(args.quick), *onset, gliotransmission):
        t0 = time.perf_counter()
        out = fn()
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
