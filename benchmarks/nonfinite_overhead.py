"""Cost of ``simulate``'s per-chunk finiteness check on COBA.

1. The check itself (one reduction over the network state, its own small program): median of 200 calls on the
   state of COBA N.
2. COBA N for 1 s with the check (``nonfinite="raise"``) and without (``"ignore"``), interleaved in one process
   after a warm-up: median run seconds of each.

    python benchmarks/nonfinite_overhead.py [--n 4000] [--pairs 15]
"""
import argparse
import json
import statistics
import time

import jax

from brainsim.networks import build
from brainsim.simulate import SpikeMonitor, _finite_flags, simulate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    prepared = build("coba", n=args.n, dt=0.1, key=jax.random.key(1))

    jax.block_until_ready(_finite_flags(prepared.state))
    calls = []
    for _ in range(200):
        t0 = time.perf_counter()
        jax.block_until_ready(_finite_flags(prepared.state))
        calls.append(time.perf_counter() - t0)

    def run_s(mode):
        return simulate(prepared.network, 1000.0, 0.1, key=jax.random.key(2), state=prepared.state,
                        monitors=[SpikeMonitor("P")], progress=False, nonfinite=mode).run_s

    run_s("raise"), run_s("ignore")  # compile and warm up
    runs = {"raise": [], "ignore": []}
    for i in range(args.pairs):
        for mode in (("raise", "ignore") if i % 2 == 0 else ("ignore", "raise")):
            runs[mode].append(run_s(mode))
    median = {mode: statistics.median(v) for mode, v in runs.items()}
    print(json.dumps({"bench": "nonfinite_overhead", "n": args.n, "check_us": round(statistics.median(calls) * 1e6, 1),
                      "median_run_s_checked": round(median["raise"], 4),
                      "median_run_s_unchecked": round(median["ignore"], 4),
                      "ratio": round(median["raise"] / median["ignore"], 3), "pairs": args.pairs}))


if __name__ == "__main__":
    main()
