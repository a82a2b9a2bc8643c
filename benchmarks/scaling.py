"""Side-by-side scaling benchmark: brainsim vs Brian2 / BrainPy / NEST on COBA (and COBAHH), back to back.

Each simulator runs in its own subprocess (peers in their own virtualenvs, never project dependencies),
sequentially, on the same machine, in one invocation of this script. Every line printed is one JSON
result; the collected results go to benchmarks/results/scaling.json and a log-log plot of run time
against synaptic events to benchmarks/results/scaling.png.

usage:
  python benchmarks/scaling.py --sizes 4000 40000 400000 --duration 1000 \
      --brian2-python /work/peers-venv/bin/python --brainpy-python /work/brainpy-venv/bin/python

Brian2 runs once as a warm-up (code generation cache) before each timed run (`coba_brian2.py N MS cython`);
BrainPy's own script separates compile from run (run-only figure is compared). Peak RSS of every
subprocess is measured with /usr/bin/time when available.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "peers"
LOCAL_PEERS = HERE / "peers"


def _run(cmd: list[str], timeout: float) -> dict | None:
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = [timer, "-f", "MAXRSS_KB %M", *cmd] if timer else cmd
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s", "cmd": " ".join(cmd)}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300], "cmd": " ".join(cmd)}
    result = json.loads(lines[-1])
    for line in proc.stderr.splitlines():
        if line.startswith("MAXRSS_KB"):
            result["peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    return result


def _peer_script(name: str) -> Path:
    local = LOCAL_PEERS / name
    return local if local.exists() else PEERS / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 40000])
    parser.add_argument("--duration", type=float, default=1000.0)
    parser.add_argument("--model", default="coba", choices=["coba", "cobahh", "cuba"])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per simulator and size (best kept)")
    parser.add_argument("--brian2-python", default=None)
    parser.add_argument("--brainpy-python", default=None)
    parser.add_argument("--nest-python", default=None)
    parser.add_argument("--nest-max-n", type=int, default=4000, help="NEST is slow: skip it above this size")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()

    results = []

    def record(result):
        if result is not None:
            result.setdefault("model", args.model)
            print(json.dumps(result), flush=True)
            results.append(result)

    def best(cmd, label, n):
        runs = [_run(cmd, args.timeout) for _ in range(args.repeats)]
        ok = [r for r in runs if r and "error" not in r]
        chosen = min(ok, key=lambda r: r["run_s"]) if ok else runs[-1]
        chosen.update(simulator=chosen.get("simulator", label), n=n)
        return chosen

    for n in args.sizes:
        dur = str(args.duration)
        record(best([sys.executable, str(HERE / "coba.py"), "--network", args.model, "--n", str(n),
                     "--duration", dur, "--seed", "1"], "brainsim", n))
        if args.brian2_python:
            script = str(_peer_script(f"{args.model}_brian2.py"))
            _run([args.brian2_python, script, str(n), "10", "cython"], args.timeout)  # warm-up: codegen cache
            record(best([args.brian2_python, script, str(n), dur, "cython"], "brian2-cython", n))
        if args.brainpy_python and args.model == "coba":
            record(best([args.brainpy_python, str(_peer_script("coba_brainpy.py")), str(n), dur, "csr"], "brainpy-csr", n))
        if args.nest_python and args.model == "coba" and n <= args.nest_max_n:
            record(best([args.nest_python, str(_peer_script("coba_nest.py")), str(n), dur], "nest", n))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scaling_{args.model}.json").write_text(json.dumps(results, indent=1))
    _plot(results, out / f"scaling_{args.model}.png", args.model)
    _table(results)


def _table(results) -> None:
    by_n: dict = {}
    for r in results:
        if "error" not in r:
            by_n.setdefault(r["n"], {})[r["simulator"]] = r
    print("\n| N | simulator | run_s | compile_s | rate_hz | peak RSS MB | brainsim / peer |")
    print("|---|---|---|---|---|---|---|")
    for n, sims in sorted(by_n.items()):
        ours = sims.get("brainsim")
        for name, r in sims.items():
            ratio = "" if name == "brainsim" or ours is None else f"{ours['run_s'] / r['run_s']:.2f}"
            print(f"| {n} | {name} | {r['run_s']} | {r.get('compile_s', '')} | {r.get('rate_hz', '')} | "
                  f"{r.get('peak_rss_mb', '')} | {ratio} |")


def _plot(results, path, model) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    sims = sorted({r["simulator"] for r in results if "error" not in r})
    for sim in sims:
        rows = sorted((r for r in results if r.get("simulator") == sim and "error" not in r), key=lambda r: r["n"])
        # synaptic events per simulated second = N × rate × mean fan-out (80)
        events = [r["n"] * max(r.get("rate_hz", 0.0), 1e-3) * 80 * r.get("duration_ms", 1000) / 1000 for r in rows]
        ax.loglog(events, [r["run_s"] for r in rows], "o-", label=sim)
        for e, r in zip(events, rows):
            ax.annotate(f"{r['n']:,}", (e, r["run_s"]), fontsize=7, textcoords="offset points", xytext=(3, -8))
    ax.set_xlabel("synaptic events simulated")
    ax.set_ylabel("run time (s, compile excluded)")
    ax.set_title(f"{model.upper()}: run time vs synaptic events")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
