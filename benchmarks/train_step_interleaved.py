"""The SHD-shaped train step of brainsim, Spyx and snnTorch measured in alternation, a few steps at a time.

``train_step.py`` and the peers' ``train_spyx.py`` / ``train_snntorch.py`` each time 10 steps in a process of
their own; run back to back they are minutes apart, and this machine's speed drifts by up to 2x within
minutes (not for all three libraries alike). Here each library runs in a worker process of its own (its own
interpreter: the peers live in their own virtualenvs), and the driver asks them in turn for ``--steps`` timed
steps, for ``--rounds`` rounds: each round's three medians are seconds apart. The steps are the scripts'
own: brainsim's from ``train_step.make_step``, the peers' by running their scripts' set-up code (everything
before their warm-up loop) and calling their ``step``.

Before its timed steps each library runs untimed ones for ``--warmup-s`` seconds (at least one step), so
that a process that sat idle while the others ran is up to speed (a count of steps would give snnTorch's
150 ms step 15 times the warm-up time of brainsim's 10 ms one). brainsim's cost depends on how many of its
neurons spike, which grows as the one batch is learnt, while the peers' dense steps cost the same whatever
the parameters: so brainsim's worker then goes back to the initial parameters and times steps 4 to 13 from
there, the steps its own script (and the peers' scripts) time.

``--model ralif``: the recurrent adaptive-threshold LIF step instead (``train_step.py --model ralif`` against the
peers' ``train_alif_spyx.py`` and ``train_alif_snntorch.py``; goals <= 0.5 x Spyx, <= 1/10 x snnTorch).

    python benchmarks/train_step_interleaved.py --spyx-python PY --snntorch-python PY [--peers DIR]
        [--model lif|ralif] [--rounds 20] [--steps 10] [--warmup-s 1.0]

Prints one JSON line per round (the three median step times, brainsim's ratios) and a summary line: the
median of the rounds' ratios and how many rounds meet the goals (lif: <= 0.8 x Spyx, <= 1/15 x snnTorch).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# per model and peer: its script and where its set-up code ends (its compile / warm-up loop)
SCRIPT = {("lif", "spyx"): ("train_spyx.py", "for _ in range(3): step("),
          ("lif", "snntorch"): ("train_snntorch.py", "for _ in range(3): step()"),
          ("ralif", "spyx"): ("train_alif_spyx.py", "t0 = time.perf_counter(); step("),
          ("ralif", "snntorch"): ("train_alif_snntorch.py", "for _ in range(3): step()")}
GOALS = {"lif": (0.8, 15), "ralif": (0.5, 10)}  # at most this x Spyx, at most 1/this x snnTorch


def _peer_step(lib: str, peers: Path, model: str):
    """The peer script's own step (its set-up code run, its warm-up and timing loop left out)."""
    script, marker = SCRIPT[(model, lib)]
    source = (peers / script).read_text()
    cut = source.find(marker)
    if cut < 0:
        raise SystemExit(f"{script}: could not find its warm-up loop ({marker!r})")
    env = {"__name__": "peer"}
    exec(compile(source[:cut], str(peers / script), "exec"), env)
    if lib == "spyx":
        return lambda: env["step"](env["model"], env["opt"], env["x"], env["y"]).block_until_ready()
    return env["step"]


def worker(lib: str, peers: Path, model: str) -> None:
    """Answers each line ``W N`` on stdin with a JSON list of the times (s) of N steps after W seconds of
    untimed ones (at least one); ``quit`` ends."""
    if lib == "brainsim":
        sys.path.insert(0, str(HERE))
        from train_step import make_step

        run_once, _, reset = make_step(model_name=model)
        untimed_after_reset = 3  # the script's steps 1-3 (compile and two warm-up steps) before its timed ones
    else:
        run_once, reset, untimed_after_reset = _peer_step(lib, peers, model), (lambda: None), 0
    run_once()  # compiles; each request warms up on its own
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            return
        warmup_s, n = float(line.split()[0]), int(line.split()[1])
        start = time.perf_counter()
        run_once()
        while time.perf_counter() - start < warmup_s:
            run_once()
        reset()
        for _ in range(untimed_after_reset):
            run_once()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            run_once()
            ts.append(time.perf_counter() - t)
        print(json.dumps(ts), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["brainsim", "spyx", "snntorch"])
    ap.add_argument("--peers", type=Path, default=HERE.parent.parent / "shared" / "peers")
    ap.add_argument("--spyx-python", help="interpreter of the virtualenv with Spyx")
    ap.add_argument("--snntorch-python", help="interpreter of the virtualenv with snnTorch")
    ap.add_argument("--model", default="lif", choices=["lif", "ralif"])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup-s", type=float, default=1.0)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.peers, args.model)
        return
    if not (args.spyx_python and args.snntorch_python):
        ap.error("--spyx-python and --snntorch-python are required (the peers' virtualenvs)")
    pythons = {"brainsim": sys.executable, "spyx": args.spyx_python, "snntorch": args.snntorch_python}
    procs = {}
    for lib, py in pythons.items():  # started one after another: their warm-ups do not overlap
        procs[lib] = subprocess.Popen([py, __file__, "--worker", lib, "--peers", str(args.peers), "--model", args.model],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=dict(os.environ, PYTHONWARNINGS="ignore"))
        line = procs[lib].stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"{lib} worker did not start (said {line!r})")
    ratios = []
    try:
        for r in range(args.rounds):
            med = {}
            for lib, proc in procs.items():
                proc.stdin.write(f"{args.warmup_s} {args.steps}\n")
                proc.stdin.flush()
                med[lib] = statistics.median(json.loads(proc.stdout.readline()))
            ratio = dict(vs_spyx=med["brainsim"] / med["spyx"], snntorch_over=med["snntorch"] / med["brainsim"])
            ratios.append(ratio)
            print(json.dumps(dict(round=r + 1, **{f"{k}_s": round(v, 4) for k, v in med.items()},
                                  vs_spyx=round(ratio["vs_spyx"], 3),
                                  vs_snntorch=f"1/{ratio['snntorch_over']:.1f}")), flush=True)
    finally:
        for proc in procs.values():
            try:
                proc.stdin.write("quit\n")
                proc.stdin.close()
            except BrokenPipeError:  # the worker has already ended (its error is on stderr)
                pass
            proc.wait()
    spyx_ratio = statistics.median(r["vs_spyx"] for r in ratios)
    torch_over = statistics.median(r["snntorch_over"] for r in ratios)
    spyx_goal, torch_goal = GOALS[args.model]
    print(json.dumps(dict(bench="train_step_interleaved", model=args.model, rounds=len(ratios), steps=args.steps,
                          warmup_s=args.warmup_s, median_vs_spyx=round(spyx_ratio, 3),
                          median_vs_snntorch=f"1/{torch_over:.1f}",
                          rounds_spyx_goal=sum(r["vs_spyx"] <= spyx_goal for r in ratios),
                          rounds_snntorch_goal=sum(r["snntorch_over"] >= torch_goal for r in ratios))))


if __name__ == "__main__":
    main()
