"""CUBA benchmark (Brette et al. 2007, benchmark 2; Brian2's CUBA example) in Brian2.

usage: python cuba_brian2.py N DURATION_MS [runtime|cpp|numpy|cython]
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
taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
eqs = """
dv/dt  = (ge + gi - (v - El))/taum : volt (unless refractory)
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt
"""
P = NeuronGroup(N, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
NE = int(0.8 * N)
p = 0.02 * 4000 / N  # fixed mean fan-in of 80 as N grows
we = (60 * 0.27 / 10) * mV  # excitatory synaptic weight (voltage)
wi = (-20 * 4.5 / 10) * mV  # inhibitory synaptic weight
Ce = Synapses(P, P, on_pre="ge += we")
Ci = Synapses(P, P, on_pre="gi += wi")
Ce.connect(f"i<{NE}", p=p)
Ci.connect(f"i>={NE}", p=p)
P.v = "Vr + rand()*(Vt-Vr)"
P.ge = 0 * mV
P.gi = 0 * mV
sm = SpikeMonitor(P, record=False)
t1 = time.perf_counter()
run(dur * ms)
if mode == "cpp":
    device.build(run=True, compile=True)
t2 = time.perf_counter()
rate = sm.num_spikes / N / (dur / 1000.0)
print(json.dumps(dict(simulator=f"brian2-{mode}", n=N, duration_ms=dur, wall_s=round(t2 - t0, 3), run_s=round(t2 - t1, 3), rate_hz=round(float(rate), 2))))
