"""Reference for brainsim's tripartite synapse: release per spike without / with weak / with stronger
gliotransmission, the protocol of Stimberg et al. 2019, Fig. 3 (Brian2 example ``example_3_io_synapse``),
written independently here with the same equations and parameters.

Run with Brian2 (kept outside the project venv)::

    /work/peers-venv/bin/python tests/reference/generate_brian2_gliotransmission.py

Writes ``tests/reference/data/brian2_gliotransmission.json``: for the three synapses (0: no astrocyte,
1: astrocyte with I_bias = 0.8 µM, 2: I_bias = 1.25 µM) the released fraction r_S, u_S and x_S right after
each of the 16 presynaptic spikes, plus the astrocytes' Ca²⁺ and gliotransmitter every 100 ms. Two
G-ChI astrocytes (no glutamate input; exogenous IP3 drive) integrated with RK4 at dt = 1 ms.
"""
import json
import os

import numpy as np
from brian2 import (NeuronGroup, SpikeGeneratorGroup, StateMonitor, Synapses, defaultclock, mmolar, ms, prefs,
                    run, second, start_scope, umolar)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "brian2_gliotransmission.json")

P = dict(
    rho_c=0.005, Y_T=500 * mmolar, Omega_c=40 / second, U_0__star=0.6, Omega_f=3.33 / second,
    Omega_d=2.0 / second, O_G=1.5 / umolar / second, Omega_G=0.5 / (60 * second),
    O_P=0.9 * umolar / second, K_P=0.05 * umolar, C_T=2 * umolar, rho_A=0.18, Omega_C=6 / second,
    Omega_L=0.1 / second, d_1=0.13 * umolar, d_2=1.05 * umolar, O_2=0.2 / umolar / second, d_3=0.9434 * umolar,
    d_5=0.08 * umolar, O_delta=0.6 * umolar / second, kappa_delta=1.5 * umolar, K_delta=0.1 * umolar,
    Omega_5P=0.05 / second, K_D=0.7 * umolar, K_3K=1.0 * umolar, O_3K=4.5 * umolar / second,
    F_ex=2.0 * umolar / second, I_Theta=0.3 * umolar, omega_I=0.05 * umolar, C_Theta=0.5 * umolar,
    Omega_A=0.6 / second, U_A=0.6, G_T=200 * mmolar, rho_e=6.5e-4, Omega_e=60 / second, alpha=0.0,
)

SYN_EQS = """
dY_S/dt = -Omega_c * Y_S : mmolar (clock-driven)
dGamma_S/dt = O_G * G_A * (1 - Gamma_S) - Omega_G * Gamma_S : 1 (clock-driven)
du_S/dt = -Omega_f * u_S : 1 (clock-driven)
dx_S/dt = Omega_d * (1 - x_S) : 1 (clock-driven)
r_S : 1
G_A : mmolar
"""
SYN_ON_PRE = """
U_0 = (1 - Gamma_S) * U_0__star + alpha * Gamma_S
u_S += U_0 * (1 - u_S)
r_S = u_S * x_S
x_S -= r_S
Y_S += rho_c * Y_T * r_S
"""
ASTRO_EQS = """
dI/dt = J_delta - J_3K - J_5P + J_ex : mmolar
J_delta = O_delta / (1 + I / kappa_delta) * C**2 / (C**2 + K_delta**2) : mmolar/second
J_3K = O_3K * C**4 / (C**4 + K_D**4) * I / (I + K_3K) : mmolar/second
J_5P = Omega_5P * I : mmolar/second
delta_I_bias = I - I_bias : mmolar
J_ex = -F_ex / 2 * (1 + tanh((abs(delta_I_bias) - I_Theta) / omega_I)) * sign(delta_I_bias) : mmolar/second
I_bias : mmolar (constant)
dC/dt = (Omega_C * m_inf**3 * h**3 + Omega_L) * (C_T - (1 + rho_A) * C) - O_P * C**2 / (C**2 + K_P**2) : mmolar
dh/dt = (h_inf - h) / tau_h : 1
m_inf = I / (I + d_1) * C / (C + d_5) : 1
h_inf = Q_2 / (Q_2 + C) : 1
tau_h = 1 / (O_2 * (Q_2 + C)) : second
Q_2 = d_2 * (I + d_1) / (I + d_3) : mmolar
dx_A/dt = Omega_A * (1 - x_A) : 1
dG_A/dt = -Omega_e * G_A : mmolar
"""
RELEASE = """
G_A += rho_e * G_T * U_A * x_A
x_A -= U_A * x_A
"""


def main():
    prefs.codegen.target = "numpy"
    start_scope()
    dt = 1 * ms
    defaultclock.dt = dt
    transient = 16.5 * second
    spikes_ms = np.array([0, 50, 100, 150, 200, 300, 310, 320, 330, 340, 350, 360, 370, 380, 390, 400.0])
    spike_times = spikes_ms * ms + transient
    duration = transient + 600 * ms
    ns = dict(P)
    src = SpikeGeneratorGroup(1, np.zeros(len(spike_times), int), spike_times)
    tgt = NeuronGroup(1, "")
    syn = Synapses(src, tgt, model=SYN_EQS, on_pre=SYN_ON_PRE, method="exact", namespace=ns)
    syn.connect(True, n=3)
    astro = NeuronGroup(2, ASTRO_EQS, threshold="C>C_Theta", refractory="C>C_Theta", reset=RELEASE, method="rk4",
                        namespace=ns)
    astro.x_A = 1.0
    astro.h = 0.9
    astro.I = 0.4 * umolar
    astro.I_bias = np.asarray([0.8, 1.25]) * umolar
    link = Synapses(astro, syn, "G_A_post = G_A_pre : mmolar (summed)")
    link.connect(j="i+1")
    syn_mon = StateMonitor(syn, ["u_S", "x_S", "r_S", "Gamma_S"], record=[0, 1, 2])
    ast_mon = StateMonitor(astro, ["C", "G_A", "I", "h"], record=True, dt=100 * ms)
    run(duration)
    # StateMonitor records at the start of a step: the effect of a spike at step k is seen at k + 1
    rows = np.round(np.asarray(spike_times / dt)).astype(int) + 1
    out = {
        "brian2_protocol": "Stimberg et al. 2019 Fig. 3 (example_3_io_synapse), numpy target",
        "dt_ms": 1.0, "transient_ms": 16500.0, "spike_times_ms": (spikes_ms + 16500.0).tolist(),
        "I_bias_uM": [0.8, 1.25], "I0_uM": 0.4, "h0": 0.9, "C0_uM": 0.0,
        "labels": ["no gliotransmission", "weak gliotransmission", "stronger gliotransmission"],
        "r_S": np.asarray(syn_mon.r_S)[:, rows].tolist(),
        "u_S": np.asarray(syn_mon.u_S)[:, rows].tolist(),
        "x_S": np.asarray(syn_mon.x_S)[:, rows].tolist(),
        "Gamma_S_at_spikes": np.asarray(syn_mon.Gamma_S)[:, rows].tolist(),
        "astro_times_ms": np.round(np.asarray(ast_mon.t / ms), 3).tolist(),
        "astro_C_uM": np.round(np.asarray(ast_mon.C / umolar), 8).tolist(),
        "astro_G_A_uM": np.round(np.asarray(ast_mon.G_A / umolar), 6).tolist(),
    }
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
