"""Potjans & Diesmann (2014) microcircuit benchmark (brainsim.networks.microcircuit), the NEST 3.10 example's model and
parameters; the peer is ../shared/peers/pd14_nest/run_nest.sh (bench_nest.py: same fields).

usage: python benchmarks/microcircuit.py [--scale S] [--duration MS] [--presim MS] [--seed K]
prints one JSON line: bench, simulator, scale, n_neurons, n_synapses, build_s (connectivity, delays, drives, initial
state; JAX's runtime started before), compile_s, presim_s, run_s (the --duration ms after the --presim transient,
compile excluded, after block_until_ready), s_per_bio_s, rates_hz and cv_isi per population (after the transient;
CV over neurons with >= 3 spikes), peak_rss_mb (whole process).
"""
import argparse
import json
import resource
import time

import jax

from brainsim.monitors import SpikeTrains
from brainsim.networks import microcircuit
from brainsim.simulate import SpikeMonitor, simulate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--duration", type=float, default=1000.0)
    parser.add_argument("--presim", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=55)
    args = parser.parse_args()
    jax.devices()  # JAX's runtime, started before the build is timed
    t0 = time.perf_counter()
    k_build, k_run = jax.random.split(jax.random.key(args.seed))
    prepared = microcircuit(args.scale, key=k_build)
    jax.block_until_ready(prepared.state)
    build_s = time.perf_counter() - t0
    monitors = [SpikeMonitor("P")]
    warm = simulate(prepared.network, args.presim, prepared.dt, key=k_run, state=prepared.state, monitors=monitors,
                    progress=False)
    result = simulate(prepared.network, args.duration, prepared.dt, key=k_run, state=warm.state, monitors=monitors,
                      progress=False)
    trains = result.spikes["P"]
    rates, cvs = {}, {}
    for name, (_, start, stop) in prepared.groups.items():
        mine = (trains.indices >= start) & (trains.indices < stop)
        group = SpikeTrains(trains.times[mine], trains.indices[mine] - start, stop - start, trains.duration)
        rates[name], cvs[name] = round(group.mean_rate(), 4), round(group.cv_isi(), 4)
    print(json.dumps(dict(bench="microcircuit", simulator="brainsim", scale=args.scale, seed=args.seed,
                          n_neurons=prepared.network.n_neurons, n_synapses=prepared.network.n_synapses,
                          build_s=round(build_s, 3), compile_s=round(warm.compile_s, 3), presim_s=round(warm.run_s, 3),
                          run_s=round(result.run_s, 3), s_per_bio_s=round(result.run_s / (args.duration / 1000), 3),
                          rates_hz=rates, cv_isi=cvs,
                          peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))))


if __name__ == "__main__":
    main()
