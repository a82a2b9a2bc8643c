"""COBAHH benchmark (Brette et al. 2007, benchmark 3; Brian2's COBAHH example) in Brian2.

Traub-Miles HH neurons (area 20000 um^2), conductance-based exponential synapses.
usage: python cobahh_brian2.py N DURATION_MS [runtime|cpp|numpy|cython]
prints one JSON line: simulator, n, duration, wall (build+run), run_wall, rate_hz
"""
import json, sys, time, os, tempfile
from brian2 import *

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
dur = float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0
mode = sys.argv[3] if len(sys.argv) > 3 else "cpp"
t0 = time.perf_counter()
if mode == "cpp":
    set_device("cpp_standalone", directory=tempfile.mkdtemp(), build_on_run=False)
    prefs.devices.cpp_standalone.openmp_threads = 1
else:
    prefs.codegen.target = "numpy" if mode == "numpy" else "cython"
defaultclock.dt = 0.1 * ms
Cm = 200 * pF
gl = 10 * nS
El, EK, ENa = -60 * mV, -90 * mV, 50 * mV
g_na, g_kd = 20 * usiemens, 6 * usiemens
VT = -63 * mV
taue, taui = 5 * ms, 10 * ms
Ee, Ei = 0 * mV, -80 * mV
we, wi = 6 * nS, 67 * nS
eqs = """
dv/dt = (gl*(El-v) + ge*(Ee-v) + gi*(Ei-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK))/Cm : volt
dm/dt = alpha_m*(1-m) - beta_m*m : 1
dn/dt = alpha_n*(1-n) - beta_n*n : 1
dh/dt = alpha_h*(1-h) - beta_h*h : 1
dge/dt = -ge/taue : siemens
dgi/dt = -gi/taui : siemens
alpha_m = 1.28/exprel((13*mV - v + VT)/(4*mV))/ms : Hz
beta_m  = 1.4/exprel((v - VT - 40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV - v + VT)/(18*mV))/ms : Hz
beta_h  = 4./(1 + exp((40*mV - v + VT)/(5*mV)))/ms : Hz
alpha_n = 0.16/exprel((15*mV - v + VT)/(5*mV))/ms : Hz
beta_n  = 0.5*exp((10*mV - v + VT)/(40*mV))/ms : Hz
"""
P = NeuronGroup(N, eqs, threshold="v > -20*mV", refractory="v > -20*mV", method="exponential_euler")
NE = int(0.8 * N)
p = 0.02 * 4000 / N  # fixed mean fan-in of 80 as N grows
Ce = Synapses(P, P, on_pre="ge += we")
Ci = Synapses(P, P, on_pre="gi += wi")
Ce.connect(f"i<{NE}", p=p)
Ci.connect(f"i>={NE}", p=p)
P.v = "El + (randn()*5 - 5)*mV"
P.ge = "(randn()*1.5 + 4)*10*nS"
P.gi = "(randn()*12 + 20)*10*nS"
sm = SpikeMonitor(P, record=False)
t1 = time.perf_counter()
run(dur * ms)
if mode == "cpp":
    device.build(run=True, compile=True)
t2 = time.perf_counter()
rate = sm.num_spikes / N / (dur / 1000.0)
print(json.dumps(dict(simulator=f"brian2-{mode}", n=N, duration_ms=dur, wall_s=round(t2 - t0, 3), run_s=round(t2 - t1, 3), rate_hz=round(float(rate), 2))))
