"""Differentiable biophysics: fit a conductance-based E/I network's population rates by gradient descent.

Network: ``brainsim.networks.coba(n)`` (Brette et al. 2007 COBA, n = 1000: 800 E + 200 I conductance-based
LIF, fan-in 80), plus a constant bias current per group (at n = 1000 the network is not self-sustained).
Learned parameters (4): the two homogeneous projection weights w_E = 6 nS exp(u_0), w_I = 67 nS exp(u_1)
(gradients through ``EventOperator``'s custom VJP) and the bias currents I_E = 120 pA + 20 pA u_2,
I_I = 120 pA + 20 pA u_3. Loss: ``sum_g ((r_g - target_g) / target_g)^2`` with r_g the mean rate (Hz) of
group g over 50-250 ms of a 250 ms run (dt 0.1 ms), computed by ``brainsim.train.rates.spike_counts``
with surrogate-gradient spikes (``brainsim.spikes.spike``). Optax Adam.

The fitted network is then run by the ordinary simulator (``brainsim.simulate.simulate``, 1 s, exact
spikes) and its rates are reported next to the starting ones. Writes a before/after raster PNG.
Prints one JSON line.

    python benchmarks/fit_coba_rates.py [--n 1000] [--iters 60] [--png benchmarks/results/coba_fit.png]
"""
import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import brainsim.networks as nets
from brainsim.simulate import SpikeMonitor, simulate
from brainsim.train.rates import group_rates, spike_counts

TARGETS = {"E": 5.0, "I": 15.0}  # Hz


def apply(theta, prepared):
    """Network and per-neuron bias current (pA) for parameters ``theta`` (4,)."""
    net = prepared.network
    net = eqx.tree_at(lambda n: n.projections["exc"].operator.weights, net, 6.0 * jnp.exp(theta[0]))
    net = eqx.tree_at(lambda n: n.projections["inh"].operator.weights, net, 67.0 * jnp.exp(theta[1]))
    n = net.populations["P"].size
    n_exc = prepared.groups["E"][2]
    bias = jnp.where(jnp.arange(n) < n_exc, 120.0 + 20.0 * theta[2], 120.0 + 20.0 * theta[3])
    return net, bias


def make_loss(prepared, n_steps, record_from, targets=TARGETS, truncate=2):
    duration = (n_steps - record_from) * prepared.dt

    def loss(theta):
        net, bias = apply(theta, prepared)
        _, counts = spike_counts(net, prepared.state, n_steps, prepared.dt, key=jax.random.key(0),
                                 currents={"P": bias}, record_from=record_from, truncate=truncate)
        rates = group_rates(counts, prepared.groups, duration)
        return sum(((rates[g] - t) / t) ** 2 for g, t in targets.items()), rates

    return loss


def fit_rates(prepared, *, iters=80, lr=0.05, n_steps=2500, record_from=500, targets=TARGETS, log=None):
    loss = make_loss(prepared, n_steps, record_from, targets)
    step_fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
    opt = optax.adam(lr)
    theta = jnp.zeros((4,))
    state = opt.init(theta)
    history = []
    best = (np.inf, theta)
    for it in range(iters):
        (value, rates), g = step_fn(theta)
        value = float(value)
        history.append(dict(iter=it, loss=value, **{k: float(v) for k, v in rates.items()}))
        if log:
            log(history[-1])
        if not np.isfinite(value):
            raise FloatingPointError(f"fit_rates: loss became {value} at iteration {it}")
        if value < best[0]:
            best = (value, theta)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes its int32 step count with float arrays
            updates, state = opt.update(g, state)
        theta = optax.apply_updates(theta, updates)
    return best[1], history


def simulate_rates(prepared, theta, duration=1000.0, skip=100.0):
    net, bias = apply(theta, prepared)
    n_steps = int(round(duration / prepared.dt))
    res = simulate(net, duration, prepared.dt, key=jax.random.key(1), state=prepared.state,
                   monitors=[SpikeMonitor("P")], currents={"P": np.broadcast_to(np.asarray(bias), (n_steps, bias.shape[0]))})
    tr = res.spikes["P"]
    rates = {}
    for g, (_, lo, hi) in prepared.groups.items():
        m = (tr.times >= skip) & (tr.indices >= lo) & (tr.indices < hi)
        rates[g] = float(m.sum() / (hi - lo) / ((duration - skip) / 1000.0))
    return rates, tr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--png", default="benchmarks/results/coba_fit.png")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    prepared = nets.coba(args.n)
    before, tr_before = simulate_rates(prepared, jnp.zeros((4,)))
    t0 = time.perf_counter()
    theta, history = fit_rates(prepared, iters=args.iters, lr=args.lr, log=print if args.verbose else None)
    fit_s = time.perf_counter() - t0
    after, tr_after = simulate_rates(prepared, theta)
    net, bias = apply(theta, prepared)
    ok = all(abs(after[g] - t) <= 0.1 * t for g, t in TARGETS.items())
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, tr, rates, title in ((axes[0], tr_before, before, "before"), (axes[1], tr_after, after, "after fit")):
            m = tr.times < 500.0
            n_exc = prepared.groups["E"][2]
            colors = np.where(tr.indices[m] < n_exc, "tab:blue", "tab:red")
            ax.scatter(tr.times[m], tr.indices[m], s=0.3, c=colors)
            ax.set_title(f"{title}: E {rates['E']:.1f} Hz, I {rates['I']:.1f} Hz")
            ax.set_xlabel("time (ms)")
        axes[0].set_ylabel("neuron (blue E, red I)")
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
    print(json.dumps(dict(bench="fit_coba_rates", n=args.n, target_hz=TARGETS,
                          rates_before_hz={k: round(v, 2) for k, v in before.items()},
                          rates_after_hz={k: round(v, 2) for k, v in after.items()},
                          within_10pct=ok, iters=args.iters, fit_s=round(fit_s, 1),
                          w_exc_nS=round(float(net.projections["exc"].operator.weights), 3),
                          w_inh_nS=round(float(net.projections["inh"].operator.weights), 3),
                          bias_E_pA=round(120 + 20 * float(theta[2]), 2), bias_I_pA=round(120 + 20 * float(theta[3]), 2),
                          final_loss=round(history[-1]["loss"], 5), png=args.png)))


if __name__ == "__main__":
    main()
