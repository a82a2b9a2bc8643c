"""COBA benchmark (Brette et al. 2007 benchmark 1), same model as ../shared/peers/coba_brian2.py.

usage: python benchmarks/coba.py [--n N] [--duration MS] [--seed S] [--network coba|cuba|cobahh]
prints one JSON line: bench, simulator, n, synapses, duration_ms, compile_s, run_s, build_s, rate_hz,
bytes_per_synapse (synapse storage), peak_rss_mb (whole process)
(compile time excluded from run_s; the run is timed after block_until_ready)
"""
import argparse
import json
import resource
import time

import jax

from brainsim.networks import build
from brainsim.simulate import SpikeMonitor, simulate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--network", default="coba", choices=["coba", "cuba", "cobahh"])
    args = parser.parse_args()
    t0 = time.perf_counter()
    k_build, k_run = jax.random.split(jax.random.key(args.seed))
    prepared = build(args.network, n=args.n, key=k_build)
    jax.block_until_ready(prepared.state)
    build_s = time.perf_counter() - t0
    result = simulate(prepared.network, args.duration, prepared.dt, key=k_run, state=prepared.state,
                      monitors=[SpikeMonitor("P")], progress=False)
    print(json.dumps(dict(bench=args.network, simulator="brainsim", n=args.n, synapses=prepared.network.n_synapses,
                          duration_ms=args.duration, compile_s=round(result.compile_s, 3),
                          run_s=round(result.run_s, 3), build_s=round(build_s, 3),
                          rate_hz=round(result.spikes["P"].mean_rate(), 2),
                          bytes_per_synapse=round(_operator_bytes(prepared.network) / prepared.network.n_synapses, 2),
                          peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))))


def _operator_bytes(network) -> int:
    """Device bytes held by the synapse storage (targets + weights of every projection)."""
    return sum(p.operator.targets.nbytes + p.operator.weights.nbytes for p in network.projections.values())


if __name__ == "__main__":
    main()
