"""Command-line entry point: ``brainsim run {coba,cuba,cobahh,brunel,microcircuit} [--n N | --scale S] [--duration MS]
[--state S] ...``.

Prints a summary (neurons, synapses, E/I rates, CV of ISIs, compile and run time), writes a raster +
population-rate PNG and the recorded spikes (.npz). Mistakes in the arguments give a one-line error
and exit code 2.

The run keeps a checkpoint in ``OUT/checkpoint`` (``brainsim.checkpoint``: the spikes of every chunk as they are
made, the state after it). Ctrl-C (SIGINT) or SIGTERM stops it after the current chunk with one line saying
what was saved (exit code 130 / 143); ``brainsim run --resume OUT`` continues it exactly, with the arguments it
was started with, also after a SIGKILL (from the last chunk saved).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .networks import BRUNEL_STATES, BUILTINS, DEFAULT_N, WITH_SCALE, WITH_STATE, expected_synapses


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


SEED_MAX = 2**63 - 1


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in [0, {SEED_MAX}], got {text}")
    return value


# Peak memory of building and running a built-in network: the process itself, then per synapse (fan-in 80:
# connectivity construction, sorted event operators) and per recorded spike (times float64 + indices int32,
# collected and sorted). Measured (peak RSS, /usr/bin/time) on `brainsim run coba --duration 100`: 0.24 GB to
# import, 0.49 GB at n = 50 000 (4.0 M synapses), 1.15 GB at n = 200 000 (16.0 M): ~55 bytes per synapse.
# A run is refused when the estimate exceeds 80 % of the available memory.
BASE_BYTES = 256 << 20
BYTES_PER_SYNAPSE = 64
BYTES_PER_SPIKE = 24


def _available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable), or 0 if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _check_memory(network: str, n: int, duration_ms: float, scale: float = 1.0) -> None:
    """Refuse, before building anything, a run that cannot fit in memory (an estimate: synapses and spikes)."""
    synapses = expected_synapses(network, n=n, scale=scale)
    needed = BASE_BYTES + synapses * BYTES_PER_SYNAPSE + n * 50.0 * duration_ms / 1000.0 * BYTES_PER_SPIKE
    available = _available_memory()
    if available and needed > 0.8 * available:
        raise ValueError(f"{network} ({n} neurons) with --duration {duration_ms:g} ms needs about {needed / 2**30:.1f} GiB of memory, "
                         f"more than 80 % of the {available / 2**30:.1f} GiB available; use a smaller --n or --duration")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="brainsim", description="brainsim: a differentiable brain simulator on JAX")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    run = sub.add_parser("run", help="simulate a built-in network and plot it")
    run.add_argument("network", nargs="?", choices=sorted(BUILTINS), help="built-in network (not with --resume)")
    run.add_argument("--n", type=_neuron_count, default=None,
                     help="number of neurons (default 4000; brunel 10000)")
    run.add_argument("--scale", type=_positive_float("--scale"), default=None,
                     help="microcircuit only: N_scaling = K_scaling of Potjans & Diesmann (2014), in (0, 1] (default 0.1)")
    run.add_argument("--state", choices=sorted(BRUNEL_STATES), default=None,
                     help="brunel only: the dynamical state of Brunel (2000) Fig. 8 (default AI)")
    run.add_argument("--duration", type=_positive_float("--duration"), default=1000.0, help="simulated time, ms")
    run.add_argument("--dt", type=_positive_float("--dt"), default=0.1, help="time step, ms")
    run.add_argument("--seed", type=_seed, default=1, help="random seed (connectivity, initial state, noise)")
    run.add_argument("--out", default="brainsim_out", help="output directory for the PNG and .npz")
    run.add_argument("--no-plot", action="store_true", help="skip the PNG")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    run.add_argument("--resume", metavar="OUT", default=None,
                     help="continue the interrupted run whose output directory is OUT (with its own arguments)")
    return parser


_RUN_ARGS = ("network", "n", "duration", "dt", "seed", "state", "scale")


def _resumed_args(args):
    """The arguments of the run kept in ``args.resume`` (its ``checkpoint/run.json``), with this call's output flags."""
    saved = Path(args.resume) / "checkpoint" / "run.json"
    if not saved.exists():
        raise ValueError(f"--resume {args.resume}: no interrupted run there (no {saved})")
    try:
        stored = json.loads(saved.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--resume {args.resume}: {saved} is unreadable ({err})") from None
    for name in _RUN_ARGS:
        setattr(args, name, stored.get(name))  # (runs saved before --state existed have none)
    args.out = args.resume
    return args


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


def _prepare_out(out: Path) -> None:
    """Create the output directory and check it is writable, before anything is built or run."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    probe = out / ".brainsim_write_test"
    probe.write_text("")
    probe.unlink()


def _run(args) -> int:
    if args.resume is not None:
        args = _resumed_args(args)
    if args.state is not None and args.network not in WITH_STATE:
        raise ValueError(f"--state applies to {', '.join(WITH_STATE)} only, not {args.network}")
    if args.network in WITH_SCALE:
        if args.n is not None:
            raise ValueError(f"--n does not apply to {args.network}: give its --scale")
        args.scale = 0.1 if args.scale is None else args.scale
        if args.scale > 1:
            raise ValueError(f"--scale must be in (0, 1], got {args.scale:g}")
        n_neurons = int(round(77169 * args.scale))
    elif args.scale is not None:
        raise ValueError(f"--scale applies to {', '.join(WITH_SCALE)} only, not {args.network}")
    else:
        args.n = DEFAULT_N[args.network] if args.n is None else args.n
        n_neurons = args.n
    out = Path(args.out)
    _prepare_out(out)
    _check_memory(args.network, n_neurons, args.duration, args.scale or 1.0)
    import jax

    from .networks import build
    from .plotting import raster_and_rate, rate_distributions
    from .simulate import SimulationInterrupted, SpikeMonitor, _n_steps, simulate

    _n_steps(args.duration, args.dt)  # a duration dt does not divide fails here, before the network is built

    key = jax.random.key(args.seed)
    k_build, k_run = jax.random.split(key)
    options = {"state": args.state} if args.state is not None else {}
    options.update({"scale": args.scale} if args.network in WITH_SCALE else {"n": args.n})
    prepared = build(args.network, dt=args.dt, key=k_build, **options)
    checkpoint = out / "checkpoint"
    resume = args.resume is not None
    if not resume:  # a new run replaces an earlier run's checkpoint in the same directory
        checkpoint.mkdir(exist_ok=True)
        (checkpoint / "run.json").write_text(json.dumps({name: getattr(args, name) for name in _RUN_ARGS}))
    try:
        result = simulate(prepared.network, args.duration, args.dt, key=k_run, state=prepared.state,
                          monitors=[SpikeMonitor("P")], progress=None, checkpoint_dir=checkpoint, resume=resume,
                          overwrite=not resume)
    except SimulationInterrupted as stop:
        print(f"brainsim: interrupted by {stop.signal_name} at t = {stop.time_ms:g} ms of {args.duration:g} ms; "
              f"spikes and state saved in {checkpoint}; continue with: brainsim run --resume {out}", file=sys.stderr)
        return 143 if stop.signal_name == "SIGTERM" else 130
    summary = _summarise(args.network, prepared, result)
    label = f"{args.network}_scale{args.scale:g}" if args.network in WITH_SCALE else f"{args.network}_n{args.n}"
    data_path = out / f"{label}.npz"
    result.save(data_path)
    summary["data"] = str(data_path)
    if not args.no_plot:
        png = out / f"{label}.png"
        groups = {g: (start, stop) for g, (_, start, stop) in prepared.groups.items()}
        raster_and_rate(result.spikes["P"], groups, title=prepared.description, path=png)
        summary["plot"] = str(png)
        if len(groups) > 2:  # (the microcircuit's layers: their rate distributions too)
            boxes = out / f"{label}_rates.png"
            rate_distributions(result.spikes["P"], groups, title=prepared.description, path=boxes)
            summary["rates_plot"] = str(boxes)
    if args.json:
        print(json.dumps(summary))
    else:
        print(prepared.description)
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"  {k:<{width}}  {v}")
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run" and (args.network is None) == (args.resume is None):
        parser.error(f"give a network ({', '.join(BUILTINS)}) or --resume OUT, not both" if args.network else
                     "the following arguments are required: network (or --resume OUT)")
    try:
        if args.command == "run":
            return _run(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"brainsim: error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        print(f"brainsim: error: out of memory ({err or 'allocation failed'}); use a smaller --n or --duration",
              file=sys.stderr)
        return 2
    except Exception as err:  # anything else still ends in one line, not a traceback
        print(f"brainsim: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
