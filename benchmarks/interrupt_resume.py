"""Interrupted and resumed runs give the spikes of the uninterrupted run (issue 17's acceptance).

`brainsim run coba --n N --duration D` runs once uninterrupted; then, for each signal (SIGINT, SIGTERM, SIGKILL)
and each of `--points` random moments of the run (uniform over its simulated part), a fresh run is stopped
by the signal and continued with `brainsim run --resume OUT`. Each resumed run's spikes (times and neuron
indices, from t = 0) are compared with the uninterrupted run's. Also measured: the wall time of the
uninterrupted run with its checkpoint (the CLI always keeps one) against `simulate` without a checkpoint, in
one process, alternating (the checkpoint's cost). Prints one JSON line.

    python benchmarks/interrupt_resume.py [--n 4000] [--duration 60000] [--points 5] [--seed 0]
"""
import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cli(*args):
    return [sys.executable, "-m", "brainsim", "run", *args, "--no-plot", "--json"]


def _spikes(out: Path, n: int):
    data = np.load(out / f"coba_n{n}.npz")
    return data["spikes/P/times_ms"], data["spikes/P/indices"]


def _checkpoint_overhead(n: int, directory: Path, rounds: int = 7, duration: float = 2000.0) -> dict:
    """Median run time of a COBA simulation with a checkpoint (every chunk) over that without, alternating."""
    import jax

    from brainsim.networks import build
    from brainsim.simulate import SpikeMonitor, simulate

    prepared = build("coba", n=n, dt=0.1, key=jax.random.key(1))
    times = {"with": [], "without": []}

    def once(checkpoint):
        kwargs = dict(checkpoint_dir=directory, overwrite=True) if checkpoint else {}
        return simulate(prepared.network, duration, 0.1, key=jax.random.key(2), state=prepared.state,
                        monitors=[SpikeMonitor("P")], progress=False, **kwargs).run_s

    once(True), once(False)  # compiled once, both
    for _ in range(rounds):
        times["with"].append(once(True))
        times["without"].append(once(False))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"duration_ms": duration, "with_s": round(med["with"], 4), "without_s": round(med["without"], 4),
            "ratio": round(med["with"] / med["without"], 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--duration", type=float, default=60000.0)
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="brainsim_resume_"))
    base = ["coba", "--n", str(args.n), "--duration", str(args.duration)]

    whole = root / "whole"
    t0 = time.perf_counter()
    done = subprocess.run(_cli(*base, "--out", str(whole)), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    reference = _spikes(whole, args.n)
    compile_s = summary["compile_s"]
    results = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        for k in range(args.points):
            out = root / f"{sig.name}_{k}"
            proc = subprocess.Popen(_cli(*base, "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            checkpoint = out / "checkpoint" / "checkpoint.npz"
            while not checkpoint.exists() and proc.poll() is None:
                time.sleep(0.005)
            delay = rng.uniform(0.0, 0.9 * summary["run_s"])  # a random moment of the simulation itself
            time.sleep(delay)
            proc.send_signal(sig)
            code = proc.wait()
            stderr = proc.stderr.read().strip().splitlines()
            resumed = subprocess.run(_cli("--resume", str(out)), capture_output=True, text=True)
            times, indices = _spikes(out, args.n) if resumed.returncode == 0 else (None, None)
            same = (times is not None and np.array_equal(times, reference[0])
                    and np.array_equal(indices, reference[1]))
            results.append({"signal": sig.name, "signal_after_s": round(delay, 3),  # after the first checkpoint
                            "exit_code": code, "message": stderr[-1] if stderr else "",
                            "resume_exit_code": resumed.returncode, "identical_spikes": bool(same),
                            "continuous_time_axis": bool(same and times[0] >= 0.0 and times[-1] < args.duration)})
            print(json.dumps(results[-1]), file=sys.stderr)
    overhead = _checkpoint_overhead(args.n, root / "overhead")
    print(json.dumps({"bench": "interrupt_resume", "n": args.n, "duration_ms": args.duration,
                      "uninterrupted_wall_s": round(wall, 2), "uninterrupted_run_s": summary["run_s"],
                      "compile_s": compile_s, "n_spikes": int(len(reference[0])),
                      "identical": sum(r["identical_spikes"] for r in results), "runs": len(results),
                      "checkpoint_overhead": overhead, "results": results}))


if __name__ == "__main__":
    main()
