"""Command-line entry point: ``brainsim run {coba,cuba,cobahh} [--n N] [--duration MS] ...``.

Prints a summary (neurons, synapses, E/I rates, CV of ISIs, compile and run time), writes a raster +
population-rate PNG and the recorded spikes (.npz). Mistakes in the arguments give a one-line error
and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .networks import BUILTINS


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage dump
        self.exit(2, f"brainsim: error: {message}\n")


def _positive_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not np.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        return value
    return parse


def _neuron_count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n must be an integer, got {text!r}") from None
    if value < 10:
        raise argparse.ArgumentTypeError(f"--n must be at least 10, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="brainsim", description="brainsim: a differentiable brain simulator on JAX")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    run = sub.add_parser("run", help="simulate a built-in network and plot it")
    run.add_argument("network", choices=sorted(BUILTINS), help="built-in network")
    run.add_argument("--n", type=_neuron_count, default=4000, help="number of neurons (default 4000)")
    run.add_argument("--duration", type=_positive_float("--duration"), default=1000.0, help="simulated time, ms")
    run.add_argument("--dt", type=_positive_float("--dt"), default=0.1, help="time step, ms")
    run.add_argument("--seed", type=int, default=1, help="random seed (connectivity, initial state, noise)")
    run.add_argument("--out", default="brainsim_out", help="output directory for the PNG and .npz")
    run.add_argument("--no-plot", action="store_true", help="skip the PNG")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    return parser


def _summarise(name, prepared, result) -> dict:
    trains = result.spikes["P"]
    counts = trains.counts()
    summary = {"network": name, "neurons": prepared.network.n_neurons, "synapses": prepared.network.n_synapses,
               "duration_ms": result.duration, "dt_ms": result.dt}
    for group, (_, start, stop) in prepared.groups.items():
        summary[f"rate_{group}_hz"] = round(float(counts[start:stop].sum() / (stop - start) / (result.duration / 1000)), 3)
    summary["rate_hz"] = round(trains.mean_rate(), 3)
    summary["cv_isi"] = round(trains.cv_isi(), 3)
    summary["compile_s"] = round(result.compile_s, 3)
    summary["run_s"] = round(result.run_s, 3)
    return summary


def _run(args) -> int:
    import jax

    from .networks import build
    from .plotting import raster_and_rate
    from .simulate import SpikeMonitor, simulate

    key = jax.random.key(args.seed)
    k_build, k_run = jax.random.split(key)
    prepared = build(args.network, n=args.n, dt=args.dt, key=k_build)
    result = simulate(prepared.network, args.duration, args.dt, key=k_run, state=prepared.state,
                      monitors=[SpikeMonitor("P")], progress=None)
    summary = _summarise(args.network, prepared, result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / f"{args.network}_n{args.n}.npz"
    result.save(data_path)
    summary["data"] = str(data_path)
    if not args.no_plot:
        png = out / f"{args.network}_n{args.n}.png"
        groups = {g: (start, stop) for g, (_, start, stop) in prepared.groups.items()}
        raster_and_rate(result.spikes["P"], groups, title=prepared.description, path=png)
        summary["plot"] = str(png)
    if args.json:
        print(json.dumps(summary))
    else:
        print(prepared.description)
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"  {k:<{width}}  {v}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"brainsim: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
