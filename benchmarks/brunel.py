"""Brunel (2000) model A benchmark, the same model as ../shared/peers/brunel_brian2.py (brainsim.networks.brunel).

usage: python benchmarks/brunel.py [--state AI|SR|SI-fast|SI-slow] [--duration MS] [--seed S] [--n N]
prints one JSON line: bench, simulator, state, n, synapses, duration_ms, build_s (connectivity, drive, initial
state; JAX's runtime is started before), compile_s, run_s (compile excluded, after block_until_ready), rate_hz and cv_isi measured as the peer does
(spikes after 100 ms; CV over neurons with >= 3 spikes there), peak_rss_mb (whole process).
"""
import argparse
import json
import resource
import time

import jax

from brainsim.monitors import SpikeTrains
from brainsim.networks import BRUNEL_STATES, brunel
from brainsim.simulate import SpikeMonitor, simulate

SETTLE_MS = 100.0  # the peer's transient, left out of rate and CV


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", default="AI", choices=sorted(BRUNEL_STATES))
    parser.add_argument("--duration", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    if args.duration <= SETTLE_MS:
        parser.error(f"--duration must exceed the {SETTLE_MS:g} ms left out as the transient")
    jax.devices()  # start JAX's runtime first (as importing Brian2 sets up its own): not part of the build
    t0 = time.perf_counter()
    k_build, k_run = jax.random.split(jax.random.key(args.seed))
    prepared = brunel(args.n, state=args.state, key=k_build)
    jax.block_until_ready(prepared.state)
    build_s = time.perf_counter() - t0
    result = simulate(prepared.network, args.duration, prepared.dt, key=k_run, state=prepared.state,
                      monitors=[SpikeMonitor("P")], progress=False)
    trains = result.spikes["P"]
    late = trains.times >= SETTLE_MS
    settled = SpikeTrains(trains.times[late], trains.indices[late], trains.size, args.duration - SETTLE_MS)
    print(json.dumps(dict(bench="brunel", simulator="brainsim", state=args.state, n=args.n,
                          synapses=prepared.network.n_synapses, duration_ms=args.duration,
                          build_s=round(build_s, 3), compile_s=round(result.compile_s, 3),
                          run_s=round(result.run_s, 3), rate_hz=round(settled.mean_rate(), 3),
                          cv_isi=round(settled.cv_isi(), 3),
                          peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))))


if __name__ == "__main__":
    main()
