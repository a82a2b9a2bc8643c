"""Song, Miller & Abbott (2000): additive STDP makes the weights of 1 000 Poisson inputs bimodal.

Model (as Brian2's ``examples/synapses/STDP.py``, in brainsim units): one conductance-based LIF neuron,
C_m dv/dt = g_L (E_L - v) + g_e (E_e - v) with tau_m = C_m / g_L = 10 ms (C_m 100 pF, g_L 10 nS),
E_L = -74 mV, threshold -54 mV, reset -60 mV, no refractory period; g_e exponential, tau 5 ms,
E_e = 0 mV. 1 000 Poisson inputs at 15 Hz, initial weights uniform in [0, g_max], g_max = 0.1 nS
(0.01 g_L). Additive all-to-all STDP, tau_plus = tau_minus = 20 ms, A_plus = 0.01 g_max (``--a-plus``),
A_minus = 1.05 A_plus, hard bounds [0, g_max]. dt = 0.1 ms.

usage: python benchmarks/stdp_song2000.py [--duration MS] [--png PATH] [--seed S]
prints one JSON line: frac_weights_near_bounds (weights in the lowest or highest 10 % of [0, g_max]),
post_rate_hz (last 10 % of the run), post_rate_first_hz / post_rate_second_to_last_hz (first and
second-to-last 10 % windows), frac_near_bounds_initial, run_s, compile_s; writes the weight histogram PNG.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from brainsim.connectivity import all_to_all
from brainsim.inputs import PoissonSource
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF
from brainsim.plasticity import STDP
from brainsim.simulate import SpikeMonitor, simulate
from brainsim.synapses import ConductanceOutput, Exponential, Receptor

N_INPUTS = 1000
G_MAX = 0.1  # nS


def build(key, *, n_inputs: int = N_INPUTS, rate_hz: float = 15.0, g_max: float = G_MAX, a_plus: float = 0.01):
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    w0 = rng.uniform(0.0, g_max, n_inputs)
    neuron = LIF(1, tau_m=10.0, C_m=100.0, v_rest=-74.0, v_th=-54.0, v_reset=-60.0, t_ref=0.0)
    rule = STDP(tau_plus=20.0, tau_minus=20.0, A_plus=a_plus * g_max, A_minus=1.05 * a_plus * g_max,
                w_min=0.0, w_max=g_max, weight_dependence="additive", bounds="hard")
    net = Network(
        {"inputs": Population(PoissonSource(n_inputs, rate_hz)),
         "neuron": Population(neuron, {"ge": Receptor(Exponential(5.0), ConductanceOutput(0.0))})},
        {"stdp": Projection("inputs", "neuron", "ge", all_to_all(n_inputs, 1, w0), plasticity=rule)})
    return net, w0


def frac_near_bounds(w, g_max=G_MAX):
    return float(np.mean((w <= 0.1 * g_max) | (w >= 0.9 * g_max)))


def run(duration: float = 100_000.0, *, seed: int = 0, png: str | None = "song2000_weights.png", dt: float = 0.1,
        a_plus: float = 0.01):
    k_build, k_run = jax.random.split(jax.random.key(seed))
    net, w0 = build(k_build, a_plus=a_plus)
    result = simulate(net, duration, dt, key=k_run, monitors=[SpikeMonitor("neuron")], progress=False)
    w = np.asarray(result.state.plasticity["stdp"].weights).ravel()
    times = result.spikes["neuron"].times
    window = duration / 10.0

    def rate(t0, t1):
        return float(np.sum((times >= t0) & (times < t1)) / ((t1 - t0) / 1000.0))

    out = dict(bench="stdp_song2000", n_inputs=N_INPUTS, duration_ms=duration, a_plus_over_gmax=a_plus,
               frac_weights_near_bounds=round(frac_near_bounds(w), 4),
               frac_near_bounds_initial=round(frac_near_bounds(w0), 4),
               post_rate_hz=round(rate(duration - window, duration), 2),
               post_rate_second_to_last_hz=round(rate(duration - 2 * window, duration - window), 2),
               post_rate_first_hz=round(rate(0.0, window), 2),
               mean_weight_over_gmax=round(float(w.mean() / G_MAX), 4),
               run_s=round(result.run_s, 3), compile_s=round(result.compile_s, 3))
    if png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        axes[0].hist(w / G_MAX, bins=40, range=(0, 1), color="k")
        axes[0].set(xlabel="w / g_max", ylabel="synapses", title=f"after {duration / 1000:.0f} s of STDP")
        counts, edges = np.histogram(times, bins=np.arange(0.0, duration + window, window))
        axes[1].plot(edges[:-1] / 1000.0, counts / (window / 1000.0), "o-k")
        axes[1].set(xlabel="time (s)", ylabel="output rate (Hz)")
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)
        out["png"] = png
    return out, w


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=100_000.0, help="ms (default 100 s, as Brian2's example)")
    parser.add_argument("--png", default="song2000_weights.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--a-plus", type=float, default=0.01, help="A_plus / g_max (A_minus = 1.05 A_plus)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    out, _ = run(args.duration, seed=args.seed, png=args.png, a_plus=args.a_plus)
    out["total_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
