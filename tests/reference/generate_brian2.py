"""Generate Brian2 reference data for brainsim model-validation tests.

Run with a separate virtualenv that has Brian2 (Brian2 is NOT a brainsim
dependency):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install brian2 scipy "numpy<2.4"
    /work/peers-venv/bin/python tests/reference/generate_brian2.py            # everything
    /work/peers-venv/bin/python tests/reference/generate_brian2.py --single   # single neurons only
    /work/peers-venv/bin/python tests/reference/generate_brian2.py --networks # network benchmarks only

Outputs go to tests/reference/data/*.json; see tests/reference/README.md.

Conventions shared by all single-neuron files
---------------------------------------------
* Units: ms, mV, pA, nS, pF.  Izhikevich is dimensionless (v in "mV", t in ms,
  I in "pA" = mV/ms added to dv/dt).
* Protocol: a current step of amplitude ``amplitude_pA`` for steps whose start
  time t_k = k*dt satisfies t_on <= t_k < t_off, zero otherwise.  Implemented by
  splitting the Brian2 run in three segments, so the current is constant over
  each integration step (including the intermediate RK4 stages).
* Spike time: Brian2's SpikeMonitor time, i.e. the start time t_k of the step
  whose update (t_k -> t_k + dt) made the threshold condition true.  Equivalently,
  the state at t_k + dt is above threshold.  For HH/Traub-Miles (refractory =
  threshold condition) a spike is an upward crossing: V(t_k) <= thr < V(t_k+dt).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import brian2 as b2
from brian2 import (NeuronGroup, Network, SpikeMonitor, StateMonitor, ms, mV, pA,
                    nS, pF, amp, volt, siemens, farad, second)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
REPO = os.path.dirname(os.path.dirname(HERE))
GENERATOR = f"brian2 {b2.__version__}"
TARGET = "cython"


def _set_target():
    global TARGET
    # Strict IEEE double arithmetic (Brian2's default adds -ffast-math and
    # -march=native, which makes results machine/compiler dependent).
    # Brian2's Cython cache key ignores compiler flags, so use a dedicated cache.
    b2.prefs.codegen.cpp.extra_compile_args_gcc = ["-w", "-O3", "-std=c++11"]
    b2.prefs.codegen.runtime.cython.cache_dir = os.path.expanduser(
        "~/.cache/brainsim-brian2-reference-strict")
    try:
        b2.prefs.codegen.target = "cython"
        g = NeuronGroup(1, "dv/dt = -v/(10*ms) : 1", method="exact")
        Network(g).run(0.1 * ms)
        TARGET = "cython"
    except Exception as exc:  # pragma: no cover - fallback path
        print(f"cython target failed ({exc!r}); using numpy", file=sys.stderr)
        b2.prefs.codegen.target = "numpy"
        TARGET = "numpy"


def r4(x):
    """Round to 1e-4 (ms or mV) and return plain floats."""
    return [round(float(v), 4) for v in np.asarray(x).ravel()]


def run_step_protocol(net, group, amps, t_on, t_off, duration, current_var="I", unit=pA):
    """Three-segment run: 0..t_on (I=0), t_on..t_off (I=amps), t_off..duration (I=0)."""
    setattr(group, current_var, 0 * unit if unit is not None else 0.0)
    net.run(t_on * ms)
    setattr(group, current_var, np.asarray(amps) * unit if unit is not None else np.asarray(amps))
    net.run((t_off - t_on) * ms)
    setattr(group, current_var, 0 * unit if unit is not None else 0.0)
    net.run((duration - t_off) * ms)


def spikes_by_neuron(spmon, n):
    trains = spmon.spike_trains()
    return [np.asarray(trains[i] / ms) for i in range(n)]


def check_upward_crossing(tr_ms, vmon, thr_mV, dt_ms):
    """Check the documented convention V(t_k) <= thr < V(t_k + dt) for every spike."""
    v = vmon.V / mV  # shape (n, steps), recorded at step start
    for i, ts in enumerate(tr_ms):
        k = np.rint(ts / dt_ms).astype(int)
        k = k[k + 1 < v.shape[1]]  # a spike in the very last step has no recorded successor
        assert np.all(v[i, k] <= thr_mV), "spike without preceding sub-threshold state"
        assert np.all(v[i, k + 1] > thr_mV), "spike without supra-threshold state after step"
        # and there is no upward crossing that was not reported
        up = np.nonzero((v[i, :-1] <= thr_mV) & (v[i, 1:] > thr_mV))[0]
        assert np.array_equal(up, k), "crossings and spikes disagree"


EPS_MV = 1e-6  # initial-V perturbation used to measure each case's sensitivity


def offsets(k):
    """Initial-V offsets (mV) for the 3 copies of k cases: unperturbed, +EPS, -EPS."""
    return np.repeat([0.0, EPS_MV, -EPS_MV], k)


def sensitivity(tr, k, i):
    """Compare case i with its two perturbed copies (neurons i+k and i+2k)."""
    ref = tr[i]
    shifts, counts, stable = [], [], len(ref)
    for j in (i + k, i + 2 * k):
        other = tr[j]
        counts.append(int(len(other)))
        m = min(len(ref), len(other))
        d = np.abs(ref[:m] - other[:m])
        if m:
            shifts.append(float(np.max(d)))
        bad = np.nonzero(d > 1e-6)[0]  # first spike that moved by >= 1 step
        stable = min(stable, int(bad[0]) if len(bad) else m)
    return dict(perturbation=f"initial V +/- {EPS_MV:g} mV (same Brian2 run)",
                n_spikes=counts,
                max_abs_shift_ms=round(max(shifts), 4) if shifts else 0.0,
                n_leading_identical=stable)


def write(name, payload):
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, name)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.1f} KB)")


def case_entry(name, params, protocol, initial, spikes, extra=None):
    d = dict(name=name, params=params, protocol=protocol, initial=initial,
             spike_times_ms=r4(spikes), n_spikes=int(len(spikes)))
    if extra:
        d.update(extra)
    return d


# ---------------------------------------------------------------------------
# 1. Classic Hodgkin-Huxley (squid axon, area 1e4 um^2)
# ---------------------------------------------------------------------------
def hh_rates(V):
    """Rates in 1/ms for V in mV (same formulas as the Brian2 equations)."""
    am = 0.1 * (V + 40) / (1 - np.exp(-(V + 40) / 10))
    bm = 4 * np.exp(-(V + 65) / 18)
    ah = 0.07 * np.exp(-(V + 65) / 20)
    bh = 1 / (1 + np.exp(-(V + 35) / 10))
    an = 0.01 * (V + 55) / (1 - np.exp(-(V + 55) / 10))
    bn = 0.125 * np.exp(-(V + 65) / 80)
    return am, bm, ah, bh, an, bn


HH_EQS = """
dV/dt = (g_Na*m**3*h*(E_Na-V) + g_K*n**4*(E_K-V) + g_L*(E_L-V) + I)/C_m : volt
dm/dt = alpha_m*(1-m) - beta_m*m : 1
dh/dt = alpha_h*(1-h) - beta_h*h : 1
dn/dt = alpha_n*(1-n) - beta_n*n : 1
alpha_m = 1.0/exprel(-(V/mV + 40)/10)/ms : Hz
beta_m  = 4*exp(-(V/mV + 65)/18)/ms : Hz
alpha_h = 0.07*exp(-(V/mV + 65)/20)/ms : Hz
beta_h  = 1/(1 + exp(-(V/mV + 35)/10))/ms : Hz
alpha_n = 0.1/exprel(-(V/mV + 55)/10)/ms : Hz
beta_n  = 0.125*exp(-(V/mV + 65)/80)/ms : Hz
I : amp
"""


def gen_hh():
    dt = 0.005
    params = dict(C_m=100.0, g_Na=12000.0, g_K=3600.0, g_L=30.0,
                  E_Na=50.0, E_K=-77.0, E_L=-54.387)
    amps = [250.0, 500.0, 1000.0, 1500.0, 2500.0]
    t_on, t_off, dur = 10.0, 160.0, 200.0
    V0 = -65.0
    am, bm, ah, bh, an, bn = hh_rates(V0)
    init = dict(V=V0, m=float(am / (am + bm)), h=float(ah / (ah + bh)), n=float(an / (an + bn)))

    b2.defaultclock.dt = dt * ms
    ns = dict(C_m=params["C_m"] * pF, g_Na=params["g_Na"] * nS, g_K=params["g_K"] * nS,
              g_L=params["g_L"] * nS, E_Na=params["E_Na"] * mV, E_K=params["E_K"] * mV,
              E_L=params["E_L"] * mV)
    K = len(amps)
    G = NeuronGroup(3 * K, HH_EQS, threshold="V > 0*mV", refractory="V > 0*mV",
                    method="rk4", namespace=ns)
    G.V = (init["V"] + offsets(K)) * mV
    G.m, G.h, G.n = init["m"], init["h"], init["n"]
    sp = SpikeMonitor(G)
    full = StateMonitor(G, "V", record=True)  # every step, for the self-check
    trace = StateMonitor(G, "V", record=[amps.index(1000.0)], dt=0.1 * ms)
    net = Network(G, sp, full, trace)
    run_step_protocol(net, G, np.tile(amps, 3), t_on, t_off, dur)
    tr = spikes_by_neuron(sp, 3 * K)
    check_upward_crossing(tr, full, 0.0, dt)

    protocol = lambda a: dict(duration_ms=dur, t_on_ms=t_on, t_off_ms=t_off, amplitude_pA=a)
    cases = []
    for i, a in enumerate(amps):
        extra = dict(sensitivity=sensitivity(tr, K, i))
        if a == 1000.0:
            extra.update(trace_dt_ms=0.1, v_trace_mV=r4(trace.V[0] / mV),
                         trace_note="V sampled at t = k*trace_dt_ms, k = 0..N-1 (state at that time)")
        cases.append(case_entry(f"I{int(a)}pA", params, protocol(a), init, tr[i], extra))
    write("hh.json", dict(
        generator=GENERATOR, model="hodgkin_huxley", dt_ms=dt, method="rk4",
        codegen_target=TARGET,
        equations=HH_EQS.strip(), threshold="V > 0*mV", refractory="V > 0*mV",
        spike_time_convention="t_k such that V(t_k) <= 0 mV < V(t_k + dt) (upward crossing)",
        cases=cases))
    return [(f"hh/{c['name']}", c) for c in cases]


# ---------------------------------------------------------------------------
# 2. Traub-Miles HH (Brette et al. 2007 COBAHH single cell, area 20000 um^2)
# ---------------------------------------------------------------------------
TM_EQS = """
dV/dt = (g_L*(E_L-V) - g_Na*m**3*h*(V-E_Na) - g_K*n**4*(V-E_K) + I)/C_m : volt
dm/dt = alpha_m*(1-m) - beta_m*m : 1
dh/dt = alpha_h*(1-h) - beta_h*h : 1
dn/dt = alpha_n*(1-n) - beta_n*n : 1
alpha_m = 1.28/exprel((13 - V/mV + V_T/mV)/4)/ms : Hz
beta_m  = 1.4/exprel((V/mV - V_T/mV - 40)/5)/ms : Hz
alpha_h = 0.128*exp((17 - V/mV + V_T/mV)/18)/ms : Hz
beta_h  = 4/(1 + exp((40 - V/mV + V_T/mV)/5))/ms : Hz
alpha_n = 0.16/exprel((15 - V/mV + V_T/mV)/5)/ms : Hz
beta_n  = 0.5*exp((10 - V/mV + V_T/mV)/40)/ms : Hz
I : amp
"""


def tm_rates(V, VT):
    x = 13 - V + VT
    am = 0.32 * x / (np.exp(x / 4) - 1)
    y = V - VT - 40
    bm = 0.28 * y / (np.exp(y / 5) - 1)
    ah = 0.128 * np.exp((17 - V + VT) / 18)
    bh = 4 / (1 + np.exp((40 - V + VT) / 5))
    z = 15 - V + VT
    an = 0.032 * z / (np.exp(z / 5) - 1)
    bn = 0.5 * np.exp((10 - V + VT) / 40)
    return am, bm, ah, bh, an, bn


def gen_traub_miles():
    dt = 0.005
    params = dict(C_m=200.0, g_L=10.0, E_L=-60.0, E_K=-90.0, E_Na=50.0,
                  g_Na=20000.0, g_K=6000.0, V_T=-63.0)
    # The 0 pA case documents that this cell fires spontaneously (~14 Hz) at rest
    # with these parameters (E_L = -60 mV lies above V_T = -63 mV).
    amps = [100.0, 200.0, 500.0, 1000.0, 0.0]
    t_on, t_off, dur = 10.0, 160.0, 200.0
    V0 = -60.0
    am, bm, ah, bh, an, bn = tm_rates(V0, params["V_T"])
    init = dict(V=V0, m=float(am / (am + bm)), h=float(ah / (ah + bh)), n=float(an / (an + bn)))

    b2.defaultclock.dt = dt * ms
    ns = dict(C_m=params["C_m"] * pF, g_L=params["g_L"] * nS, E_L=params["E_L"] * mV,
              E_K=params["E_K"] * mV, E_Na=params["E_Na"] * mV, g_Na=params["g_Na"] * nS,
              g_K=params["g_K"] * nS, V_T=params["V_T"] * mV)
    K = len(amps)
    G = NeuronGroup(3 * K, TM_EQS, threshold="V > -20*mV", refractory="V > -20*mV",
                    method="rk4", namespace=ns)
    G.V = (init["V"] + offsets(K)) * mV
    G.m, G.h, G.n = init["m"], init["h"], init["n"]
    sp = SpikeMonitor(G)
    full = StateMonitor(G, "V", record=True)
    net = Network(G, sp, full)
    run_step_protocol(net, G, np.tile(amps, 3), t_on, t_off, dur)
    tr = spikes_by_neuron(sp, 3 * K)
    check_upward_crossing(tr, full, -20.0, dt)
    cases = [case_entry(f"I{int(a)}pA", params,
                        dict(duration_ms=dur, t_on_ms=t_on, t_off_ms=t_off, amplitude_pA=a),
                        init, tr[i], dict(sensitivity=sensitivity(tr, K, i)))
             for i, a in enumerate(amps)]
    write("traub_miles.json", dict(
        generator=GENERATOR, model="traub_miles", dt_ms=dt, method="rk4", codegen_target=TARGET,
        equations=TM_EQS.strip(), threshold="V > -20*mV", refractory="V > -20*mV",
        spike_time_convention="t_k such that V(t_k) <= -20 mV < V(t_k + dt) (upward crossing)",
        cases=cases))
    return [(f"traub_miles/{c['name']}", c) for c in cases]


# ---------------------------------------------------------------------------
# 3. AdEx firing patterns (Naud et al. 2008)
# ---------------------------------------------------------------------------
# Values: Naud et al. 2008 Table 1 as given in the Brian2 example
# examples/frompapers/Naud_et_al_2008_adex_firing_patterns.py ("parameters adapted
# by P. Mueller to match figures").  These coincide with the commonly quoted
# Table 1 for patterns a-e and h; for f (delayed regular bursting) and g
# (transient) the literally printed table values are known not to reproduce the
# figure, and the figure-matching values are used.  See README.md.
#            C_m  g_L  E_L  V_T delta_T   a  tau_w    b v_reset   I
ADEX = {
    "tonic":                    (200, 10, -70, -50, 2.0,   2.0,  30.0,   0.0, -58.0, 500.0),
    "adapting":                 (200, 12, -70, -50, 2.0,   2.0, 300.0,  60.0, -58.0, 500.0),
    "initial_burst":            (130, 18, -58, -50, 2.0,   4.0, 150.0, 120.0, -50.0, 400.0),
    "regular_bursting":         (200, 10, -58, -50, 2.0,   2.0, 120.0, 100.0, -46.0, 210.0),
    "delayed_accelerating":     (200, 12, -70, -50, 2.0, -10.0, 300.0,   0.0, -58.0, 300.0),
    "delayed_regular_bursting": (100, 10, -65, -50, 2.0, -10.0,  90.0,  30.0, -47.0, 110.0),
    "transient":                (100, 10, -65, -50, 2.0,  10.0,  90.0, 100.0, -47.0, 180.0),
    "irregular":                (100, 12, -60, -50, 2.0, -11.0, 130.0,  30.0, -48.0, 160.0),
}

ADEX_EQS = """
dV/dt = (-g_L*(V - E_L) + g_L*delta_T*exp((V - V_T)/delta_T) - w + I)/C_m : volt
dw/dt = (a*(V - E_L) - w)/tau_w : amp
I : amp
C_m : farad (constant)
g_L : siemens (constant)
E_L : volt (constant)
V_T : volt (constant)
delta_T : volt (constant)
a : siemens (constant)
tau_w : second (constant)
b : amp (constant)
v_reset : volt (constant)
v_peak : volt (constant)
"""


def gen_adex():
    dt = 0.005
    t_on, t_off, dur = 20.0, 520.0, 600.0
    names = list(ADEX)
    K = len(names)
    P = np.tile(np.array([ADEX[k] for k in names], dtype=float), (3, 1))
    b2.defaultclock.dt = dt * ms
    G = NeuronGroup(3 * K, ADEX_EQS, threshold="V > v_peak",
                    reset="V = v_reset; w += b", method="euler")
    G.C_m = P[:, 0] * pF
    G.g_L = P[:, 1] * nS
    G.E_L = P[:, 2] * mV
    G.V_T = P[:, 3] * mV
    G.delta_T = P[:, 4] * mV
    G.a = P[:, 5] * nS
    G.tau_w = P[:, 6] * ms
    G.b = P[:, 7] * pA
    G.v_reset = P[:, 8] * mV
    G.v_peak = 0.0 * mV
    G.V = (P[:, 2] + offsets(K)) * mV
    G.w = 0 * pA
    sp = SpikeMonitor(G)
    net = Network(G, sp)
    run_step_protocol(net, G, P[:, 9], t_on, t_off, dur)
    tr = spikes_by_neuron(sp, 3 * K)
    cases = []
    for i, k in enumerate(names):
        C, gL, EL, VT, dT, a, tw, b, vr, I = ADEX[k]
        params = dict(C_m=float(C), g_L=float(gL), E_L=float(EL), V_T=float(VT),
                      delta_T=float(dT), a=float(a), tau_w=float(tw), b=float(b),
                      v_reset=float(vr), v_peak=0.0)
        assert len(tr[i]) > 0, f"AdEx {k}: no spikes"
        cases.append(case_entry(k, params,
                                dict(duration_ms=dur, t_on_ms=t_on, t_off_ms=t_off, amplitude_pA=I),
                                dict(V=float(EL), w=0.0), tr[i],
                                dict(sensitivity=sensitivity(tr, K, i))))
    write("adex.json", dict(
        generator=GENERATOR, model="adex", dt_ms=dt, method="euler", codegen_target=TARGET,
        equations=ADEX_EQS.strip(), threshold="V > v_peak", reset="V = v_reset; w += b",
        refractory=None,
        parameter_source=("Naud et al. 2008 Table 1 via Brian2 example "
                          "examples/frompapers/Naud_et_al_2008_adex_firing_patterns.py "
                          "(figure-matching values; transient uses I=180 pA)"),
        spike_time_convention="t_k such that V(t_k + dt) > v_peak after the Euler update from t_k",
        cases=cases))
    return [(f"adex/{c['name']}", c) for c in cases]


# ---------------------------------------------------------------------------
# 4. Izhikevich 2003
# ---------------------------------------------------------------------------
IZH = {  # a, b, c, d
    "RS": (0.02, 0.2, -65.0, 8.0),
    "IB": (0.02, 0.2, -55.0, 4.0),
    "CH": (0.02, 0.2, -50.0, 2.0),
    "FS": (0.1, 0.2, -65.0, 2.0),
    "LTS": (0.02, 0.25, -65.0, 2.0),
    "TC": (0.02, 0.25, -65.0, 0.05),
    "RZ": (0.1, 0.26, -65.0, 2.0),
}

IZH_EQS = """
dv/dt = (0.04*v**2 + 5*v + 140 - u + I)/ms : 1
du/dt = a*(b*v - u)/ms : 1
I : 1
a : 1 (constant)
b : 1 (constant)
c : 1 (constant)
d : 1 (constant)
v_peak : 1 (constant)
"""


def gen_izhikevich():
    dt = 0.01
    t_on, t_off, dur, I = 10.0, 310.0, 350.0, 10.0
    names = list(IZH)
    K = len(names)
    P = np.tile(np.array([IZH[k] for k in names]), (3, 1))
    b2.defaultclock.dt = dt * ms
    G = NeuronGroup(3 * K, IZH_EQS, threshold="v >= v_peak", reset="v = c; u += d",
                    method="euler")
    G.a, G.b, G.c, G.d = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    G.v_peak = 30.0
    G.v = -65.0 + offsets(K)
    G.u = P[:, 1] * -65.0  # u0 = b * (-65) for all copies
    sp = SpikeMonitor(G)
    net = Network(G, sp)
    run_step_protocol(net, G, np.full(3 * K, I), t_on, t_off, dur, unit=None)
    tr = spikes_by_neuron(sp, 3 * K)
    cases = []
    for i, k in enumerate(names):
        a, b, c, d = IZH[k]
        assert len(tr[i]) > 0, f"Izhikevich {k}: no spikes"
        cases.append(case_entry(k, dict(a=a, b=b, c=c, d=d, v_peak=30.0),
                                dict(duration_ms=dur, t_on_ms=t_on, t_off_ms=t_off, amplitude_pA=I),
                                dict(v=-65.0, u=b * -65.0), tr[i],
                                dict(sensitivity=sensitivity(tr, K, i))))
    write("izhikevich.json", dict(
        generator=GENERATOR, model="izhikevich", dt_ms=dt, method="euler", codegen_target=TARGET,
        equations=IZH_EQS.strip(), threshold="v >= v_peak", reset="v = c; u += d",
        refractory=None,
        units_note="dimensionless: v in mV, t in ms, I added directly to dv/dt (mV/ms)",
        spike_time_convention="t_k such that v(t_k + dt) >= v_peak after the Euler update from t_k "
                              "(v and u updated simultaneously, standard explicit Euler)",
        cases=cases))
    return [(f"izhikevich/{c['name']}", c) for c in cases]


# ---------------------------------------------------------------------------
# 5./6. Network benchmarks (run the peer scripts as subprocesses, sequentially)
# ---------------------------------------------------------------------------
def _peer_script(name):
    for p in (os.path.join(REPO, "benchmarks", "peers", name),
              os.path.join("/work/shared/peers", name)):
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name)


def _run_peer(script, n, dur, mode):
    cmd = [sys.executable, script, str(n), str(dur), mode]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    line = [l for l in out.stdout.splitlines() if l.strip().startswith("{")][-1]
    res = json.loads(line)
    print("   ", os.path.basename(script), res, flush=True)
    return res


def _mode():
    return "cython" if TARGET == "cython" else "numpy"


def gen_coba(repeats=5):
    script = _peer_script("coba_brian2.py")
    mode = _mode()
    runs = [_run_peer(script, 4000, 1000, mode) for _ in range(repeats)]
    # N=1000 is repeated too: there, self-sustained activity sometimes dies out
    small = [_run_peer(script, 1000, 1000, mode) for _ in range(repeats)]
    rates = np.array([r["rate_hz"] for r in runs])
    write("coba_brian2.json", dict(
        generator=GENERATOR, model="coba", script="coba_brian2.py", mode=mode,
        description=("Brette et al. 2007 benchmark 1 (COBA, Vogels & Abbott 2005): 80/20 E/I, "
                     "p = 0.02*4000/N (mean fan-in 80), dt 0.1 ms, euler, unseeded RNG"),
        dt_ms=0.1, method="euler", duration_ms=1000.0,
        runs_N4000=runs, runs_N1000=small,
        mean_rate_hz_N4000=round(float(rates.mean()), 3),
        std_rate_hz_N4000=round(float(rates.std(ddof=1)), 3) if len(rates) > 1 else 0.0,
        note=("independent runs (new random network each run); the first N=4000 run may include "
              "Cython compilation in run_s/wall_s. At N=1000 (p=0.08) the self-sustained "
              "activity is not robust: some runs die out (rate < 1 Hz), so N=1000 rates are "
              "bimodal and unsuitable as a tight reference")))
    return rates


def gen_peer(script_name, out_name, model, description, dt_ms, method, repeats=3):
    script = _peer_script(script_name)
    mode = _mode()
    runs = [_run_peer(script, 4000, 1000, mode) for _ in range(repeats)]
    rates = np.array([r["rate_hz"] for r in runs])
    write(out_name, dict(
        generator=GENERATOR, model=model, script=script_name, mode=mode,
        description=description, dt_ms=dt_ms, method=method, duration_ms=1000.0,
        runs_N4000=runs, mean_rate_hz_N4000=round(float(rates.mean()), 3),
        std_rate_hz_N4000=round(float(rates.std(ddof=1)), 3) if len(rates) > 1 else 0.0,
        note=("independent runs, unseeded RNG (new network each run); the first run_s may "
              "include Cython compilation if not cached")))
    return rates


def gen_brunel(states=("AI", "SR"), seeds=(0, 1, 2), duration=1000.0):
    """Brunel (2000) model A (``brunel_brian2.py``): rate and CV of ISIs after 100 ms, per state and seed."""
    script = _peer_script("brunel_brian2.py")
    mode = _mode()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = {}
    for state in states:
        runs = []
        for seed in seeds:
            proc = subprocess.run([sys.executable, script, state, str(duration), mode, str(seed)], check=True,
                                  capture_output=True, text=True, env=env)
            runs.append(json.loads([l for l in proc.stdout.splitlines() if l.strip().startswith("{")][-1]))
            print("   ", runs[-1], flush=True)
        rates, cvs = np.array([r["rate_hz"] for r in runs]), np.array([r["cv_isi"] for r in runs])
        out[state] = dict(runs=runs, mean_rate_hz=round(float(rates.mean()), 3),
                          std_rate_hz=round(float(rates.std(ddof=1)), 3), mean_cv_isi=round(float(cvs.mean()), 4),
                          std_cv_isi=round(float(cvs.std(ddof=1)), 4))
    write("brunel_brian2.json", dict(
        generator=GENERATOR, model="brunel2000_A", script="brunel_brian2.py", mode=mode, duration_ms=duration,
        description=("Brunel (2000) model A: 10 000 LIF, fixed in-degree C_E = 800 / C_I = 200, J = 0.1 mV jumps, "
                     "delay 1.5 ms, PoissonInput C_E sources at eta nu_thr; rate and CV after 100 ms"),
        states=out))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", action="store_true", help="single-neuron files only")
    ap.add_argument("--networks", action="store_true", help="network benchmark files only")
    ap.add_argument("--brunel", action="store_true", help="the Brunel (2000) file only")
    args = ap.parse_args()
    _set_target()
    if args.brunel:
        gen_brunel()
        return
    do_single = args.single or not args.networks
    do_net = args.networks or not args.single
    summary = []
    if do_single:
        for gen in (gen_hh, gen_traub_miles, gen_adex, gen_izhikevich):
            t0 = time.perf_counter()
            summary += gen()
            print(f"  {gen.__name__}: {time.perf_counter() - t0:.1f} s", flush=True)
        print(f"\n{'case':36s} {'n_spikes':>8s} {'first_ms':>10s} {'last_ms':>10s}"
              f" {'pert_n':>8s} {'pert_shift':>10s}")
        for name, c in summary:
            st = c["spike_times_ms"]
            first, last = (st[0], st[-1]) if st else (float("nan"), float("nan"))
            sens = c["sensitivity"]
            print(f"{name:36s} {c['n_spikes']:8d} {first:10.4f} {last:10.4f}"
                  f" {str(sens['n_spikes']):>8s} {sens['max_abs_shift_ms']:10.4f}")
    if do_net:
        gen_coba()
        gen_peer("cuba_brian2.py", "cuba_brian2.json", "cuba",
                      "Brette et al. 2007 benchmark 2 (CUBA), Brian2 CUBA example; p = 0.02*4000/N",
                      0.1, "exact")
        gen_peer("cobahh_brian2.py", "cobahh_brian2.json", "cobahh",
                      "Brette et al. 2007 benchmark 3 (COBAHH, Traub-Miles), Brian2 COBAHH example; "
                      "p = 0.02*4000/N; refractory 'v > -20*mV'",
                      0.1, "exponential_euler")
        gen_brunel()


if __name__ == "__main__":
    main()
