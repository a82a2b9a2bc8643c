"""The one place that owns time: ``run`` (pure, vmappable) and ``simulate`` (chunked, with monitors).

``run(network, state, n_steps, dt, key=..., monitors=...)`` is a pure function built on ``lax.scan``:
use it inside ``jax.jit``, ``jax.vmap`` (trials, parameter sweeps) and ``jax.grad``.

``simulate(network, duration, dt, key=..., monitors=...)`` is the user entry point for long runs: it
compiles one chunk of steps once (compile time reported separately), runs the chunks back to back with a
progress bar, moves each chunk's records to the host (so device memory stays bounded by one chunk) and
returns a ``SimulationResult`` with spike trains, traces and population rates as NumPy arrays.

Per-step randomness uses ``fold_in(key, step)``, so results do not depend on the chunk size.

``simulate`` checks after every chunk that the network state is finite (one reduction over the state per
chunk). When it is not, it re-runs that chunk step by step from its start to find the first step whose state
holds a NaN or infinity, and raises ``NonFiniteError`` naming the variable, the step and the time, with the last
finite state and the records up to it (``nonfinite="warn"`` warns and goes on instead).
"""
from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._checks import check_dt, check_key, check_steps
from ._types import Array
from .adjoints import AbstractAdjoint, Direct
from .checkpoint import CheckpointError, SimulationCheckpoint, run_meta  # noqa: F401  (CheckpointError re-exported)
from .evaluation import AbstractOrder, LayerByLayer, StepByStep  # noqa: F401  (LayerByLayer re-exported)
from .interrupts import StopOnSignal
from .monitors import (AbstractMonitor, CountMonitor, MeanMonitor, Monitor, RateMonitor,  # noqa: F401  (re-exported)
                       SpikeMonitor, SpikeTrains, StateMonitor, check_monitors, decode_spikes)
from .network import Network, NetworkState


def run(network: Network, state: NetworkState, n_steps: int, dt: float, *, key,
        monitors: Sequence[Monitor] = (), currents: Optional[Mapping[str, Any]] = None, unroll: int = 1,
        adjoint: AbstractAdjoint = Direct(), order: AbstractOrder = StepByStep()):
    """Advance ``network`` by ``n_steps`` steps of ``dt`` ms. Pure: jit-, vmap- and grad-compatible.

    The one time loop of brainsim, for simulation and training alike; ``adjoint`` chooses how it is
    differentiated (``brainsim.adjoints``: ``Direct``, ``Checkpointed``, ``Truncated``) and never changes the
    forward result.

    Args:
        network, state: the network and its state (from ``network.init(dt)``).
        n_steps: number of steps (Python int).
        dt: time step, ms.
        key: PRNG key; step i uses ``fold_in(key, state.step + i)``.
        monitors: what to record (``brainsim.monitors``: ``SpikeMonitor``, ``StateMonitor``, ``RateMonitor``,
            ``CountMonitor``, ``MeanMonitor``, or an ``AbstractMonitor`` of your own).
        currents: optional population name -> current array (pA) of shape ``(n_steps, size)`` or
            ``(n_steps,)``, injected step by step.
        unroll: steps unrolled per iteration of the scan.
        adjoint: how gradients flow through the loop (default ``Direct()``, full BPTT).
        order: in which order the steps are computed (``brainsim.evaluation``: ``StepByStep()``, default, or
            ``LayerByLayer()`` for feed-forward networks of layers, with fused sequence operations); the result
            is the same.

    Returns:
        ``(final_state, records)``: records is a tuple aligned with ``monitors``: spikes ``(n_steps, size)``
        bool, state traces ``(ceil(n_steps / every), n_recorded)``, rates ``(n_steps,)`` Hz, counts and means
        ``(size,)``.
    """
    dt = check_dt(dt, "run")
    n_steps = check_steps(n_steps, "run")
    key = check_key(key, "run")
    if not isinstance(adjoint, AbstractAdjoint):
        raise TypeError(f"run: adjoint must be an AbstractAdjoint (Direct(), Checkpointed(), Truncated(window)), "
                        f"got {type(adjoint).__name__}")
    if not isinstance(order, AbstractOrder):
        raise TypeError(f"run: order must be an AbstractOrder (StepByStep(), LayerByLayer()), got {type(order).__name__}")
    monitors = check_monitors(network, state, monitors)
    currents = dict(currents or {})
    return order.run(network, state, n_steps, dt, key, monitors, currents, unroll, adjoint)


@dataclass
class SimulationResult:
    """What ``simulate`` returns. ``traces[name]`` is ``(times ms, values (n_records, n_recorded))``."""

    state: NetworkState
    dt: float
    duration: float
    spikes: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)
    rates: dict = field(default_factory=dict)
    compile_s: float = 0.0
    run_s: float = 0.0
    params: dict = field(default_factory=dict)  # the parameters a sweep set (path -> value)

    def summary(self) -> dict:
        return {name: {"rate_hz": round(tr.mean_rate(), 3), "cv_isi": round(tr.cv_isi(), 3), "n_spikes": len(tr.times)}
                for name, tr in self.spikes.items()}

    def table(self, section: str = "spikes") -> dict:
        """A long-format view of one section, as equal-length NumPy columns (``pandas.DataFrame(result.table())``):
        ``"spikes"``: population, neuron, time_ms (sorted by time); ``"traces"``: trace, element (index among the
        recorded), time_ms, value; ``"rates"``: population, time_ms, rate_hz."""
        if section == "spikes":
            parts = [(np.full(len(tr.times), name), tr.indices, tr.times) for name, tr in self.spikes.items()]
            columns = ("population", "neuron", "time_ms")
        elif section == "traces":
            parts = [(np.full(v.size, name), np.tile(np.arange(v.shape[1]), v.shape[0]), np.repeat(t, v.shape[1]),
                      v.reshape(-1)) for name, (t, v) in self.traces.items()]
            columns = ("trace", "element", "time_ms", "value")
        elif section == "rates":
            parts = [(np.full(len(t), name), t, r) for name, (t, r) in self.rates.items()]
            columns = ("population", "time_ms", "rate_hz")
        else:
            raise ValueError(f"SimulationResult.table: section must be 'spikes', 'traces' or 'rates', got {section!r}")
        if not parts:
            return {c: np.zeros((0,)) for c in columns}
        table = {c: np.concatenate([p[i] for p in parts]) for i, c in enumerate(columns)}
        if section == "spikes":
            order = np.argsort(table["time_ms"], kind="stable")
            table = {c: v[order] for c, v in table.items()}
        return table

    def to_pandas(self, section: str = "spikes"):
        """``table(section)`` as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas

        return pandas.DataFrame(self.table(section))

    def to_neo(self, units=None):
        """The records as a ``neo.Block`` (spike trains and analog signals with units) for Elephant and the
        EBRAINS tools; see ``brainsim.neo_export``."""
        from .neo_export import to_neo

        return to_neo(self, units)

    def save(self, path) -> None:
        """Save spikes, traces and rates to a NumPy ``.npz`` file."""
        arrays = {"dt_ms": np.asarray(self.dt), "duration_ms": np.asarray(self.duration)}
        for name, tr in self.spikes.items():
            arrays[f"spikes/{name}/times_ms"] = tr.times
            arrays[f"spikes/{name}/indices"] = tr.indices
        for name, (t, v) in self.traces.items():
            arrays[f"traces/{name}/times_ms"], arrays[f"traces/{name}/values"] = t, v
        for name, (t, r) in self.rates.items():
            arrays[f"rates/{name}/times_ms"], arrays[f"rates/{name}/rate_hz"] = t, r
        np.savez_compressed(path, **arrays)


COARSE_DT = 0.1  # dt above this fraction of the fastest time constant is warned about


def _fastest_time_constant(network: Network):
    """``(tau ms, what it is)`` of the shortest declared time constant of the network's models and receptors."""
    fastest = None
    for name, pop in network.populations.items():
        owners = [(f"{type(pop.model).__name__} {name!r}", pop.model.time_constants())]
        if pop.model.input_filter() is None:  # (a model that integrates its input exactly is not limited by it)
            owners += [(f"receptor {r!r} of {name!r}", rec.kinetics.time_constants())
                       for r, rec in pop.receptors.items()]
        for label, taus in owners:
            for tau in taus:
                if not isinstance(tau, (np.ndarray, jax.Array, float)) or isinstance(tau, jax.core.Tracer):
                    continue  # a constrained or traced value: not checked
                value = float(np.min(np.asarray(tau)))
                if fastest is None or value < fastest[0]:
                    fastest = (value, label)
    return fastest


def _warn_coarse_dt(network: Network, dt: float) -> None:
    """Warn when dt exceeds ``COARSE_DT`` times the fastest time constant (COBA at dt = 1 ms fires at ~100 Hz
    instead of ~20 Hz: threshold crossings and synaptic kicks are resolved too coarsely)."""
    fastest = _fastest_time_constant(network)
    if fastest is not None and dt > COARSE_DT * fastest[0] * (1 + 1e-9):
        tau, label = fastest
        warnings.warn(f"simulate: dt = {dt:g} ms is coarse for the fastest time constant of the network ({tau:g} ms, "
                      f"{label}); spike times and rates can be far off: use dt <= {COARSE_DT * tau:g} ms",
                      RuntimeWarning, stacklevel=3)


def _n_steps(duration, dt) -> int:
    try:
        duration = float(duration)
    except (TypeError, ValueError):
        raise ValueError(f"simulate: duration must be a number in ms, got {duration!r}") from None
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"simulate: duration must be > 0 ms, got {duration}")
    n = int(round(duration / dt))
    if n < 1:
        raise ValueError(f"simulate: duration {duration} ms is shorter than one step of dt = {dt} ms")
    if abs(duration / dt - n) > 1e-6 * n:
        lower, upper = math.floor(duration / dt), math.ceil(duration / dt)
        raise ValueError(f"simulate: duration {duration} ms is not a whole number of steps of dt = {dt} ms "
                         f"({duration / dt:.4g} steps); use {lower * dt:g} or {upper * dt:g} ms")
    return n


def _check_currents(network: Network, currents, n_steps: int) -> dict:
    checked = {}
    for name, arr in (currents or {}).items():
        if name not in network.populations:
            raise ValueError(f"simulate: currents given for unknown population {name!r}")
        arr = np.asarray(arr, dtype=np.float32)
        size = network.populations[name].size
        if arr.shape not in ((n_steps,), (n_steps, size)):
            raise ValueError(f"simulate: currents[{name!r}] has shape {arr.shape}; expected ({n_steps},) or "
                             f"({n_steps}, {size}) for {n_steps} steps")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"simulate: currents[{name!r}] contains NaN or infinite values")
        checked[name] = arr if arr.ndim == 2 else np.broadcast_to(arr[:, None], (n_steps, size))
    return checked


def _chunk_steps(network: Network, state, monitors: tuple, n_steps: int, chunk_steps: Optional[int]) -> int:
    if chunk_steps is not None and (isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer))
                                    or chunk_steps < 1):
        raise ValueError(f"simulate: chunk_steps must be a positive integer number of steps, got {chunk_steps!r}")
    unit = math.lcm(*[m.period for m in monitors] or [1])
    if chunk_steps is None:
        # bound the per-chunk records: ~64 MB of spike rasters, and at most 10 000 steps per chunk
        bytes_per_step = sum(m.bytes_per_step(m.size(network, state)) for m in monitors)
        chunk_steps = min(10_000, max(100, (64 << 20) // max(bytes_per_step, 1)))
    chunk = max(unit, (min(chunk_steps, n_steps) // unit) * unit)
    return chunk


# Compiled chunk functions of recent simulate() calls, keyed by everything the compiled program depends on
# (the network's non-array part, the shapes and dtypes of its arrays, of the state and of the injected
# currents, chunk length, dt, monitors), so that repeated simulations of the same network structure (a
# parameter sweep, re-running a notebook cell) skip compilation. A cache only: results never depend on it.
_COMPILED_CHUNKS: "OrderedDict[Any, Any]" = OrderedDict()
_MAX_COMPILED_CHUNKS = 16


def _chunk_cache_key(static, args, n: int, dt: float, recorded: tuple):
    """Hashable key of a compiled chunk, or None if part of the network's static structure is unhashable."""
    static_leaves, static_def = jax.tree_util.tree_flatten(static)  # the network's dicts are pytree nodes
    leaves, treedef = jax.tree_util.tree_flatten(args)
    key = (static_def, tuple(static_leaves), treedef, tuple(jax.typeof(leaf) for leaf in leaves), n, dt, recorded)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class NonFiniteError(FloatingPointError):
    """A simulation's state became NaN or infinite. ``where`` names the state variable (e.g. ``neurons['E'].v``),
    ``step``/``time_ms`` the first step that produced it; ``state`` is the last finite state (at the start of that
    step) and ``result`` the ``SimulationResult`` recorded up to it."""

    def __init__(self, message: str, *, where: str, step: int, time_ms: float, state, result):
        super().__init__(message)
        self.where, self.step, self.time_ms, self.state, self.result = where, step, time_ms, state, result


@jax.jit
def _finite_flags(state) -> Array:
    """One bool per floating-point leaf of ``state``: whether all its entries are finite."""
    leaves = [x for x in jax.tree_util.tree_leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]) if leaves else jnp.ones((0,), bool)


def _float_names(state) -> list:
    """Readable names of the floating-point leaves of ``state``, in ``_finite_flags`` order."""
    paths = jax.tree_util.tree_flatten_with_path(state)[0]
    return [jax.tree_util.keystr(path).lstrip(".") for path, x in paths if jnp.issubdtype(x.dtype, jnp.floating)]


class SimulationInterrupted(KeyboardInterrupt):
    """``simulate`` stopped on SIGINT (Ctrl-C) or SIGTERM after finishing its current chunk. ``state`` is the state at
    ``step`` (``time_ms``), ``result`` the records up to it; with ``checkpoint_dir`` both are on disk there too, and
    ``simulate(..., checkpoint_dir=..., resume=True)`` continues the run exactly."""

    def __init__(self, message: str, *, signal_name: str, step: int, time_ms: float, state, result,
                 checkpoint_dir: Optional[str]):
        super().__init__(message)
        self.signal_name, self.step, self.time_ms = signal_name, step, time_ms
        self.state, self.result, self.checkpoint_dir = state, result, checkpoint_dir


def simulate(network: Network, duration: float, dt: float, *, key, state: Optional[NetworkState] = None,
             monitors: Sequence[Monitor] = (), currents: Optional[Mapping[str, Any]] = None,
             chunk_steps: Optional[int] = None, progress: Optional[bool] = None,
             nonfinite: str = "raise", checkpoint_dir=None, checkpoint_every: int = 1, resume: bool = False,
             overwrite: bool = False) -> SimulationResult:
    """Simulate ``network`` for ``duration`` ms with step ``dt`` ms.

    Args:
        network: a ``Network``.
        duration: simulated time, ms (> 0).
        dt: time step, ms (> 0).
        key: PRNG key (explicit, keyword-only): the run is deterministic given it.
        state: initial state (default ``network.init(dt)``).
        monitors: ``SpikeMonitor`` / ``StateMonitor`` / ``RateMonitor`` objects.
        currents: population name -> injected current (pA), shape ``(n_steps,)`` or ``(n_steps, size)``.
        chunk_steps: steps per compiled chunk (default: bounded by record memory).
        progress: show a tqdm progress bar (default: when there is more than one chunk).
        nonfinite: what to do when the state becomes NaN or infinite: ``"raise"`` a ``NonFiniteError`` (with the
            last finite state and the records up to it), ``"warn"`` once and go on, or ``"ignore"``.
        checkpoint_dir: directory for a checkpoint of the run (``brainsim.checkpoint``): every chunk's records as
            they are made, and the state every ``checkpoint_every`` chunks, on SIGINT/SIGTERM and at the end.
        resume: continue the run whose checkpoint is in ``checkpoint_dir`` (same network, duration, dt, key,
            initial state and monitors; an error names what differs); without one, start it.
        overwrite: replace a checkpoint found in ``checkpoint_dir`` (otherwise an error: nothing is overwritten).

    SIGINT (Ctrl-C) or SIGTERM stops the run after its current chunk with ``SimulationInterrupted`` (a
    ``KeyboardInterrupt``) holding the state and records so far, saved to ``checkpoint_dir`` when given.

    Times in the result continue from the state's own step: a run continued from ``previous.state`` has spike and
    trace times after those of the previous run.
    """
    dt = check_dt(dt, "simulate")
    key = check_key(key, "simulate")
    n_steps = _n_steps(duration, dt)
    if nonfinite not in ("raise", "warn", "ignore"):
        raise ValueError(f"simulate: nonfinite must be 'raise', 'warn' or 'ignore', got {nonfinite!r}")
    _warn_coarse_dt(network, dt)
    if state is None:
        state = network.init(dt)
    monitors = check_monitors(network, state, monitors)
    recorded = tuple(m.for_simulate() for m in monitors)
    currents = _check_currents(network, currents, n_steps)
    chunk = _chunk_steps(network, state, monitors, n_steps, chunk_steps)

    dynamic, static = eqx.partition(network, eqx.is_array)

    def chunk_fn(dynamic, state, key, chunk_currents, n):
        return run(eqx.combine(dynamic, static), state, n, dt, key=key, monitors=recorded, currents=chunk_currents)

    compiled, compile_s = {}, 0.0

    def get_compiled(n, args):
        nonlocal compile_s
        if n not in compiled:
            cache_key = _chunk_cache_key(static, args, n, dt, recorded)
            if cache_key is not None and cache_key in _COMPILED_CHUNKS:
                _COMPILED_CHUNKS.move_to_end(cache_key)
                compiled[n] = _COMPILED_CHUNKS[cache_key]
                return compiled[n]
            t0 = time.perf_counter()
            compiled[n] = jax.jit(chunk_fn, static_argnums=4).lower(*args, n).compile()
            jax.block_until_ready(_finite_flags(args[1]))  # compiles the finiteness check too (cached by jit)
            compile_s += time.perf_counter() - t0
            if cache_key is not None:
                _COMPILED_CHUNKS[cache_key] = compiled[n]
                while len(_COMPILED_CHUNKS) > _MAX_COMPILED_CHUNKS:
                    _COMPILED_CHUNKS.popitem(last=False)
        return compiled[n]

    def run_chunk(state, first, n):
        """Dispatch ``n`` steps from ``state`` (steps ``first ...`` of this call); compilation is timed apart."""
        nonlocal run_s, t0
        args = (dynamic, state, key, {k: jnp.asarray(v[first:first + n]) for k, v in currents.items()})
        if n not in compiled:
            jax.block_until_ready(state)
            run_s += time.perf_counter() - t0
            get_compiled(n, args)
            t0 = time.perf_counter()
        state, records = compiled[n](*args)  # dispatched asynchronously
        return state, records, _finite_flags(state)  # a program of its own: the chunk's stays as it was

    offset = int(state.step)  # steps before this call: times continue from them
    collected = [[] for _ in monitors]
    done, checkpoint = 0, None
    if not isinstance(checkpoint_every, int) or isinstance(checkpoint_every, bool) or checkpoint_every < 1:
        raise ValueError(f"simulate: checkpoint_every must be a positive number of chunks, got {checkpoint_every!r}")
    if checkpoint_dir is not None:
        meta = run_meta(dt, n_steps, offset, key, monitors, state, {"currents": sorted(currents)})
        checkpoint = SimulationCheckpoint(checkpoint_dir, meta)
        checkpoint.prepare(resume=resume, overwrite=overwrite)
        if resume and checkpoint.exists():
            state, done, collected = checkpoint.load(state, len(monitors))
    elif resume:
        raise ValueError("simulate: resume=True needs the checkpoint_dir of the run to continue")

    def finish(pending, last: bool) -> None:
        """Check, collect and (with a checkpoint) save a chunk that has been dispatched."""
        nonlocal warned
        records, first, n, flags, start, end = pending
        warned = _check_finite((records, first, n, flags, start), nonfinite, warned, collected, recorded, run_chunk,
                               network, monitors, offset, dt)
        parts = _collect(collected, recorded, records, first, n, dt, offset)
        if checkpoint is not None:
            checkpoint.save_part(parts)
            if last or checkpoint.parts % checkpoint_every == 0:
                checkpoint.save(end, first + n)
        bar.update(n)

    run_s, pending, warned = 0.0, None, False
    show = progress if progress is not None else n_steps - done > chunk
    with tqdm(total=n_steps, initial=done, disable=not show, unit="step", desc="simulate", leave=False) as bar, \
            StopOnSignal() as stop:
        t0 = time.perf_counter()
        while done < n_steps and stop.received is None:
            n = min(chunk, n_steps - done)
            new_state, records, flags = run_chunk(state, done, n)
            if pending is not None:  # decode the previous chunk on the host while this one runs
                finish(pending, last=False)
            pending = (records, done, n, flags, state, new_state)
            state = new_state
            done += n
        if pending is not None:
            finish(pending, last=True)
        jax.block_until_ready(state)
        run_s += time.perf_counter() - t0
    result = _result(network, monitors, collected, state, dt, offset, done, compile_s, run_s)
    if stop.received is not None and done < n_steps:
        name = stop.name
        step = offset + done
        where = (f"state and records up to it saved in {str(checkpoint_dir)!r}: continue with simulate(..., "
                 f"checkpoint_dir={str(checkpoint_dir)!r}, resume=True)" if checkpoint is not None else
                 "state and records up to it are in this exception's .state and .result (give checkpoint_dir= to "
                 "keep them on disk)")
        raise SimulationInterrupted(f"simulate: interrupted by {name} at t = {step * dt:g} ms (step {done} of "
                                    f"{n_steps}); {where}", signal_name=name, step=step,
                                    time_ms=round(step * dt, 9), state=state, result=result,
                                    checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir))
    return result


def _check_finite(pending, nonfinite, warned, collected, recorded, run_chunk, network, monitors, offset, dt) -> bool:
    """After a chunk: if its final state is not finite, find the first step whose state is not (re-running the
    chunk one step at a time from its start) and raise ``NonFiniteError`` or warn. Returns whether it warned."""
    records, first, n, flags, start = pending
    flags = np.asarray(flags)
    if nonfinite == "ignore" or warned or flags.all():
        return warned
    state = start
    for i in range(n):
        stepped, _, step_flags = run_chunk(state, first + i, 1)
        step_flags = np.asarray(step_flags)
        if not step_flags.all():
            break
        state = stepped
    else:  # only the whole chunk's rounding differs from single steps: report its end
        i, step_flags = n - 1, flags
    where = _float_names(start)[int(np.argmin(step_flags))]
    step = offset + first + i
    message = (f"simulate: {where} became non-finite in step {step} (from t = {step * dt:g} ms); "
               f"the last finite state is the one at t = {step * dt:g} ms")
    if nonfinite == "warn":
        warnings.warn(message + "; simulating on (nonfinite='warn')", RuntimeWarning, stacklevel=4)
        return True
    if i > 0:  # the records of this chunk up to the last finite state
        _, partial, _ = run_chunk(start, first, i)
        _collect(collected, recorded, partial, first, i, dt, offset)
    result = _result(network, monitors, collected, state, dt, offset, first + i, 0.0, 0.0)
    raise NonFiniteError(message + "; it and the records up to it are in this error's .state and .result "
                         "(simulate(..., nonfinite='warn') goes on instead)",
                         where=where, step=step, time_ms=round(step * dt, 9), state=state, result=result)


def _result(network, monitors, collected, state, dt, offset, n_steps, compile_s, run_s) -> SimulationResult:
    result = SimulationResult(state=state, dt=dt, duration=n_steps * dt, compile_s=compile_s, run_s=run_s)
    for m, parts in zip(monitors, collected):
        size = network.populations[m.population].size if m.population in network.populations else 0
        getattr(result, m.section)[m.name] = m.join(parts, size, offset * dt, n_steps * dt)
    return result


def _collect(collected, monitors, records, first_step, n, dt, offset=0) -> list:
    """Append each monitor's host record of a chunk to ``collected``; returns them."""
    parts = [m.to_host(rec, offset + first_step, dt) for m, rec in zip(monitors, records)]
    for j, part in enumerate(parts):
        collected[j].append(part)
    return parts


