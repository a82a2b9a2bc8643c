"""NEST 3.10 reference for the Potjans-Diesmann microcircuit (brainsim.networks.microcircuit): the unmodified PyNEST
example (../shared/peers/pd14_nest/bench_nest.py) at scale 0.1, 100 ms transient + 1 s, seeds 1-3, 2 threads.

Writes tests/reference/data/nest_microcircuit.json (rates and CVs per population and seed, their mean and sd).
Run with NEST's python: /work/nest-venv/bin/python tests/reference/generate_nest_microcircuit.py
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "..", "shared", "peers", "pd14_nest", "bench_nest.py")
SCALE, SEEDS = 0.1, (1, 2, 3)


def main():
    runs = []
    for seed in SEEDS:
        out = subprocess.run([sys.executable, BENCH, "--scale", str(SCALE), "--threads", "2", "--t-presim", "100",
                              "--t-sim", "1000", "--seed", str(seed)], check=True, capture_output=True, text=True)
        runs.append(json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1]))
        print(runs[-1]["rates_hz"], flush=True)
    pops = list(runs[0]["rates_hz"])
    summary = {key: {p: [r[key][p] for r in runs] for p in pops} for key in ("rates_hz", "cv_isi")}
    stats = {key: {p: dict(mean=round(float(np.mean(v)), 4), sd=round(float(np.std(v, ddof=1)), 4))
                   for p, v in values.items()} for key, values in summary.items()}
    with open(os.path.join(HERE, "data", "nest_microcircuit.json"), "w") as f:
        json.dump(dict(generator=f"NEST {runs[0]['version']}", scale=SCALE, t_presim_ms=100.0, t_sim_ms=1000.0,
                       seeds=list(SEEDS), runs=runs, **stats), f, indent=1)


if __name__ == "__main__":
    main()
