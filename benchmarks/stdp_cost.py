"""Cost of STDP: the COBA network (Brette et al. 2007) with STDP on all excitatory synapses vs without.

Three variants of the same N-neuron COBA network, same initial state and key, timed in the same process
(compile time excluded, each run ``--repeats`` times, best run reported, variants interleaved):

- ``homogeneous``: the built-in network, one shared excitatory weight (fastest storage);
- ``static``: one weight per excitatory synapse (what plasticity needs), no learning;
- ``stdp``: the same with additive pair STDP (hard bounds [0, 2 w0]) on every excitatory synapse.

usage: python benchmarks/stdp_cost.py [--n 10000] [--duration 1000] [--repeats 3]
prints one JSON line: bench, n, exc_synapses, duration_ms, run_s_{homogeneous,static,stdp},
ratio_stdp_vs_static, ratio_stdp_vs_homogeneous, rate_hz_{static,stdp}, compile_s_stdp, native
"""
import argparse
import json

import jax
import jax.numpy as jnp

from brainsim.network import Network, Projection
from brainsim.networks import build
from brainsim.plasticity import STDP
from brainsim.plasticity import _native
from brainsim.propagation import EventOperator
from brainsim.simulate import SpikeMonitor, simulate


def variants(n: int, key):
    prepared = build("coba", n=n, key=key)
    net, state = prepared.network, prepared.state
    exc = net.projections["exc"]
    op = exc.operator
    w0 = float(op.weights)
    full = EventOperator(jnp.where(op.targets < op.n_post, w0, 0.0).astype(jnp.float32), op.targets, op.n_post,
                         n_synapses=op.n_synapses, capacity=op.capacity)
    static_proj = Projection(exc.pre, exc.post, exc.receptor, full, pre_range=exc.pre_range)
    rule = STDP(tau_plus=20.0, tau_minus=20.0, A_plus=0.01 * w0, A_minus=0.0105 * w0, w_min=0.0, w_max=2 * w0)
    stdp_proj = Projection(exc.pre, exc.post, exc.receptor, full, pre_range=exc.pre_range, plasticity=rule)
    out = {"homogeneous": (net, state)}
    for name, proj in (("static", static_proj), ("stdp", stdp_proj)):
        v_net = Network(net.populations, {**net.projections, "exc": proj}, net.drives)
        fresh = v_net.init(prepared.dt)
        out[name] = (v_net, state._replace(projections=fresh.projections))
    return out, prepared.dt, op.n_synapses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k_build, k_run = jax.random.split(jax.random.key(args.seed))
    nets, dt, n_exc_syn = variants(args.n, k_build)
    best = {name: float("inf") for name in nets}
    rates, compile_s = {}, {}
    for _ in range(args.repeats):
        for name, (net, state) in nets.items():
            res = simulate(net, args.duration, dt, key=k_run, state=state, monitors=[SpikeMonitor("P")],
                           progress=False)
            best[name] = min(best[name], res.run_s)
            rates[name] = res.spikes["P"].mean_rate()
            compile_s[name] = max(compile_s.get(name, 0.0), res.compile_s)  # the first run compiles; later
            # runs of the same network structure reuse the compiled chunk (simulate's cache)
    print(json.dumps(dict(
        bench="stdp_cost", n=args.n, exc_synapses=n_exc_syn, duration_ms=args.duration,
        run_s_homogeneous=round(best["homogeneous"], 4), run_s_static=round(best["static"], 4),
        run_s_stdp=round(best["stdp"], 4),
        ratio_stdp_vs_static=round(best["stdp"] / best["static"], 3),
        ratio_stdp_vs_homogeneous=round(best["stdp"] / best["homogeneous"], 3),
        rate_hz_static=round(rates["static"], 2), rate_hz_stdp=round(rates["stdp"], 2),
        compile_s_stdp=round(compile_s["stdp"], 3), native=_native.native_available())))


if __name__ == "__main__":
    main()
