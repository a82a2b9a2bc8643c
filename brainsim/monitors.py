"""What a run records: the monitor contract and its kinds.

A monitor watches one population. ``run`` drives it in one of two ways, and both give the same record:

- step by step (``run``'s default order): ``acc = init(size, n_steps)``, then for every step i
  ``acc, y_i = update(acc, i, before, after, spikes, dt)`` with the population's state at the start
  (``before``) and the end (``after``) of the step and the step's output ``spikes``; finally
  ``record = finish(acc, ys, n_steps)`` with ``ys`` the stacked ``y_i``;
- for the whole run of the population at once (``run(order=LayerByLayer())``):
  ``record = record_sequence(steps, before, after, spikes, dt)`` with every argument stacked over the steps.

``reads`` names the state variables a monitor reads (so that an evaluation that keeps only some of them, like
the fused LIF sequence that keeps only ``v``, knows whether it can serve the monitor). ``simulate`` moves each
chunk's record to the host with ``to_host`` and joins the chunks with ``join`` into the ``section`` of its
result (``"spikes"``, ``"traces"``, ``"rates"``); monitors with ``section = None`` (differentiable counts and
means) are for ``run`` only.

Monitors are frozen dataclasses: hashable, so that compiled programs can be cached by them.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .propagation import pack_spikes


class AbstractMonitor(abc.ABC):
    """One population's record of a run (see the module docstring for the protocol)."""

    population: str
    section: ClassVar[Optional[str]] = None  # where simulate puts the record; None: run only

    @property
    def reads(self) -> tuple:
        """State variables read from the population's state."""
        return ()

    @property
    def name(self) -> str:
        return self.population

    @property
    def period(self) -> int:
        """Steps between records (a simulate chunk is a multiple of it)."""
        return 1

    def bytes_per_step(self, size: int) -> int:
        """Device memory one step's record takes in ``simulate`` (bounds its chunk length)."""
        return 0

    def size(self, network, state) -> int:
        """The width ``init`` is given (``state``: the ``NetworkState`` the run starts from): by default the size
        of the population watched."""
        return network.populations[self.population].size

    def select(self, network, state, dt: float):
        """What ``update``'s ``before``/``after`` are, from a ``NetworkState``: by default the population's model
        state. A monitor that reads more of the network (receptors, projections) says so in
        ``reads_beyond_population``."""
        return state.neurons[self.population]

    def reads_beyond_population(self, network) -> bool:
        """Whether ``select`` reads anything but the population's model state (then only ``StepByStep`` runs it)."""
        return False

    def check(self, network, state) -> None:
        """Raise a one-line error if the population or a variable read does not exist."""
        if self.population not in network.populations:
            raise ValueError(f"{type(self).__name__}: unknown population {self.population!r}; "
                             f"known: {', '.join(network.populations)}")
        pop_state = state.neurons[self.population]
        for variable in self.reads:
            try:
                getattr(pop_state, variable)  # a field, or a variable a wrapper's state passes through
            except AttributeError:
                known = ", ".join(getattr(pop_state, "_fields", ()))
                raise ValueError(f"{type(self).__name__}: population {self.population!r} has no variable "
                                 f"{variable!r}; known: {known}") from None

    def for_simulate(self) -> "AbstractMonitor":
        """The monitor ``simulate`` records with (raises for run-only monitors)."""
        raise ValueError(f"simulate: {type(self).__name__} is for run() (a differentiable record); with simulate "
                         f"use SpikeMonitor({self.population!r}) or StateMonitor")

    @abc.abstractmethod
    def init(self, size: int, n_steps: int) -> Any:
        """The accumulator before the first step (``None`` when the record is the stacked per-step outputs)."""

    @abc.abstractmethod
    def update(self, acc, i, before, after, spikes, dt: float):
        """``(acc, y_i)`` for step ``i`` (index within the run)."""

    @abc.abstractmethod
    def finish(self, acc, ys, n_steps: int):
        """The record from the final accumulator and the stacked per-step outputs."""

    @abc.abstractmethod
    def record_sequence(self, steps, before, after, spikes, dt: float):
        """The record from the whole run at once: ``steps`` ``(T,)`` and states/spikes stacked over T."""

    def to_host(self, record, first_step: int, dt: float):
        """A chunk's record as NumPy arrays (``simulate``)."""
        record = np.asarray(record)
        return (first_step + np.arange(record.shape[0]) * self.period) * dt, record

    def join(self, parts, size: int, start_ms: float, duration_ms: float):
        """The chunks' host records joined (``simulate``): ``(times ms, values)``."""
        if not parts:
            return np.zeros((0,)), np.zeros((0, 0))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass
class SpikeTrains:
    """Spikes of one population: ``times`` (ms) and ``indices`` (neuron), sorted by time.

    ``neurons``: the neurons recorded (``None``: all ``size`` of them); counts and rates are over these."""

    times: np.ndarray
    indices: np.ndarray
    size: int
    duration: float  # ms
    start: float = 0.0  # ms: the recording covers [start, start + duration)
    neurons: Optional[np.ndarray] = None

    @property
    def recorded(self) -> np.ndarray:
        """Indices of the neurons recorded."""
        return np.arange(self.size) if self.neurons is None else np.asarray(self.neurons)

    def counts(self) -> np.ndarray:
        """Spike count of every recorded neuron (in the order of ``recorded``)."""
        full = np.bincount(self.indices, minlength=self.size)
        return full if self.neurons is None else full[self.recorded]

    def mean_rate(self) -> float:
        """Mean firing rate over the recorded neurons and time, Hz."""
        return float(len(self.times) / max(len(self.recorded), 1) / (self.duration / 1000.0))

    def binned(self, bin_ms: float) -> np.ndarray:
        """Spike counts ``(n_recorded, n_bins)`` in bins of ``bin_ms`` from ``start`` (the last partial bin dropped)."""
        n_bins = int(np.floor(self.duration / bin_ms + 1e-9))
        column = np.floor((self.times - self.start) / bin_ms + 1e-9).astype(np.int64)
        row = np.searchsorted(self.recorded, self.indices)
        keep = (column < n_bins) & (row < len(self.recorded))
        keep &= self.recorded[np.minimum(row, len(self.recorded) - 1)] == self.indices
        counts = np.zeros((len(self.recorded), n_bins), np.int64)
        np.add.at(counts, (row[keep], column[keep]), 1)
        return counts

    def correlation(self, bin_ms: float) -> np.ndarray:
        """Pearson correlation coefficients ``(n_recorded, n_recorded)`` of the binned spike counts."""
        return np.corrcoef(self.binned(bin_ms))

    def trains(self) -> dict:
        """Neuron index -> its spike times (ms, sorted), for every recorded neuron."""
        order = np.lexsort((self.times, self.indices))
        t, i = self.times[order], self.indices[order]
        bounds = np.searchsorted(i, self.recorded), np.searchsorted(i, self.recorded, side="right")
        return {int(n): t[a:b] for n, a, b in zip(self.recorded, *bounds)}

    def cv_isi(self, min_spikes: int = 3) -> float:
        """Mean coefficient of variation of inter-spike intervals over neurons with >= ``min_spikes`` spikes
        (NaN if there are none)."""
        order = np.lexsort((self.times, self.indices))
        t, i = self.times[order], self.indices[order]
        same = i[1:] == i[:-1]
        isi, owner = np.diff(t)[same], i[1:][same]
        n_isi = np.bincount(owner, minlength=self.size)
        ok = n_isi >= max(min_spikes - 1, 2)
        if not ok.any():
            return float("nan")
        s1 = np.bincount(owner, weights=isi, minlength=self.size)
        s2 = np.bincount(owner, weights=isi**2, minlength=self.size)
        mean = s1[ok] / n_isi[ok]
        var = np.maximum(s2[ok] / n_isi[ok] - mean**2, 0.0)
        return float(np.mean(np.sqrt(var) / mean))


def decode_spikes(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(step, neuron) of every set bit of a ``packbits`` raster, in step-then-neuron order.

    Only the nonzero bytes are expanded, so the cost follows the number of spikes, not steps × neurons.
    """
    from .propagation import decode_spikes_native

    native = decode_spikes_native(packed)
    if native is not None:
        return native
    packed = np.ascontiguousarray(packed)
    n_steps, n_bytes = packed.shape
    if n_bytes % 8:  # pad rows to whole 64-bit words (zeros decode to nothing)
        packed = np.concatenate([packed, np.zeros((n_steps, 8 - n_bytes % 8), np.uint8)], axis=1)
    words = packed.view(np.uint64)  # scanning 8 bytes at a time: spikes are rare, most words are zero
    per_row = words.shape[1]
    hit = np.flatnonzero(words)  # nonzero words
    hit_bytes = words.reshape(-1)[hit].view(np.uint8).reshape(-1, 8)
    w, b = np.nonzero(hit_bytes)  # nonzero bytes within them
    bits = np.unpackbits(hit_bytes[w, b][:, None], axis=1)  # (m, 8), most significant bit first
    which, bit = np.nonzero(bits)
    word = hit[w[which]]
    return word // per_row, (word % per_row) * 64 + b[which] * 8 + bit


@dataclass(frozen=True)
class SpikeMonitor(AbstractMonitor):
    """Record every spike of population ``population`` as (time ms, neuron index) pairs.

    In ``run`` the record is a ``(n_steps, size)`` bool raster, or with ``packed=True`` the same raster
    bit-packed along neurons (``jnp.packbits``: ``(n_steps, ceil(size / 8))`` uint8, 8× less memory;
    ``simulate`` always packs and decodes on the host), or with ``differentiable=True`` the float spikes
    themselves (surrogate gradients flow through them; for training on the spikes of a run).
    """

    population: str
    packed: bool = False
    differentiable: bool = False
    indices: Optional[tuple] = None
    section: ClassVar[Optional[str]] = "spikes"

    def __post_init__(self):
        if self.packed and self.differentiable:
            raise ValueError("SpikeMonitor: packed and differentiable exclude each other")
        _set_indices(self, "SpikeMonitor")

    def check(self, network, state) -> None:
        super().check(network, state)
        _check_indices(self, network)

    def size(self, network, state) -> int:
        return len(self.indices) if self.indices is not None else super().size(network, state)

    def bytes_per_step(self, size: int) -> int:
        return len(self.indices) if self.indices is not None else size

    def for_simulate(self) -> "SpikeMonitor":
        return replace(self, packed=True, differentiable=False)

    def _raster(self, spikes):
        if self.indices is not None:
            spikes = spikes[..., jnp.asarray(self.indices)]
        if self.differentiable:
            return spikes
        return pack_spikes(spikes.astype(jnp.float32)) if self.packed else spikes > 0

    def init(self, size, n_steps):
        return None

    def update(self, acc, i, before, after, spikes, dt):
        return acc, self._raster(spikes)

    def finish(self, acc, ys, n_steps):
        return ys

    def record_sequence(self, steps, before, after, spikes, dt):
        return jax.vmap(self._raster)(spikes) if self.packed else self._raster(spikes)

    def to_host(self, record, first_step, dt):
        record = np.asarray(record)
        steps, indices = decode_spikes(record) if self.packed else np.nonzero(record)
        if self.indices is not None:
            indices = np.asarray(self.indices)[indices]
        return ((steps + first_step) * dt).astype(np.float64), indices.astype(np.int32)

    def join(self, parts, size, start_ms, duration_ms):
        times = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0,))
        indices = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0,), np.int32)
        neurons = None if self.indices is None else np.asarray(self.indices)
        return SpikeTrains(times, indices, size, duration_ms, start=start_ms, neurons=neurons)


_WHEN = ("start", "end")


def _write_every(acc, i, value, every: int, phase: int):
    """``acc`` with row ``i // every`` set to ``value`` at the steps ``i`` with ``i % every == phase``."""
    row = i // every
    keep = jax.lax.dynamic_index_in_dim(acc, row, keepdims=False)
    value = jnp.where(i % every == phase, value.astype(acc.dtype), keep)
    return jax.lax.dynamic_update_index_in_dim(acc, value, row, 0)


def _set_indices(monitor, owner: str) -> None:
    """Normalise a monitor's ``indices`` (neurons or elements to record) to a tuple of ints."""
    if monitor.indices is None:
        return
    indices = np.atleast_1d(np.asarray(monitor.indices))
    if indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{owner}: indices must be neuron indices (integers), got {monitor.indices!r}")
    object.__setattr__(monitor, "indices", tuple(int(i) for i in indices))


def _check_indices(monitor, network) -> None:
    size = network.populations[monitor.population].size
    if monitor.indices is not None and (min(monitor.indices) < 0 or max(monitor.indices) >= size):
        raise ValueError(f"{type(monitor).__name__}: indices out of range for population {monitor.population!r} "
                         f"of size {size}")


class AbstractVariableMonitor(AbstractMonitor):
    """A monitor of one state variable ``variable``, read at the start of a step or at its end (``when``)."""

    variable: str
    when: str

    def _check_when(self) -> None:
        if self.when not in _WHEN:
            raise ValueError(f"{type(self).__name__}: when must be 'start' or 'end', got {self.when!r}")

    @property
    def name(self) -> str:
        return f"{self.population}.{self.variable}"

    @property
    def reads(self) -> tuple:
        return (self.variable,)

    def _read(self, before, after):
        return getattr(before if self.when == "start" else after, self.variable)


@dataclass(frozen=True)
class StateMonitor(AbstractVariableMonitor):
    """Record state variable ``variable`` of ``population`` every ``every`` steps.

    ``indices``: neurons to record (default all). ``when``: ``"start"`` (default, as Brian2's ``StateMonitor``)
    records the state at the start of the step, ``"end"`` the state after it (the value the step produced).
    The record is ``(ceil(n_steps / every), n_recorded)``.
    """

    population: str
    variable: str
    every: int = 1
    indices: Optional[tuple] = None
    when: str = "start"
    section: ClassVar[Optional[str]] = "traces"

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"StateMonitor: every must be a positive integer number of steps, got {self.every!r}")
        self._check_when()
        _set_indices(self, "StateMonitor")

    @property
    def period(self) -> int:
        return self.every

    def _is_receptor(self, network) -> bool:
        pop = network.populations[self.population]
        return self.variable in pop.receptors and self.variable not in getattr(pop.model.init(), "_fields", ())

    def reads_beyond_population(self, network) -> bool:
        return self._is_receptor(network)

    def select(self, network, state, dt: float):
        if not self._is_receptor(network):
            return state.neurons[self.population]
        kinetics = network.populations[self.population].receptors[self.variable].kinetics
        return _Reading(self.variable, kinetics.value(state.receptors[self.population][self.variable], dt))

    def check(self, network, state) -> None:
        if self.population in network.populations and self._is_receptor(network):
            pass  # a receptor's conductance (nS) or current (pA), as Brian2 records a synaptic variable
        else:
            super().check(network, state)
        _check_indices(self, network)

    def for_simulate(self) -> "StateMonitor":
        return self

    def _value(self, before, after):
        value = self._read(before, after)
        return value if self.indices is None else value[..., jnp.asarray(self.indices)]

    def init(self, size, n_steps):
        width = len(self.indices) if self.indices is not None else size
        return jnp.zeros((-(-n_steps // self.every), width))

    def update(self, acc, i, before, after, spikes, dt):
        return _write_every(acc, i, self._value(before, after), self.every, 0), None

    def finish(self, acc, ys, n_steps):
        return acc

    def record_sequence(self, steps, before, after, spikes, dt):
        return self._value(before, after)[::self.every].astype(jnp.result_type(float))


class _Reading:
    """One named value read from a network state, for a monitor's ``update``."""

    def __init__(self, name, value):
        setattr(self, name, value)


@dataclass(frozen=True)
class ProjectionMonitor(AbstractMonitor):
    """Record a variable of projection ``projection``'s state every ``every`` steps, after the step.

    ``variable`` is a dotted path into the state: ``"rule.weights"`` (the learned weights of a
    ``PlasticProjection``, ``(n_pre, K)``), ``"stp.u"`` / ``"stp.x"`` (Tsodyks–Markram utilisation and resources
    per presynaptic neuron of a ``Projection``; ``"presynaptic.stp.u"`` in delayed and plastic ones), ... ``synapses``: ``(pre, post)`` pairs to record from a
    per-synapse leaf (the first of repeated pairs); ``indices``: flat indices into the leaf; default the whole
    leaf, flattened. The record is ``(ceil(n_steps / every), n_recorded)``, in ``result.traces["<projection>.<variable>"]``.
    """

    projection: str
    variable: str
    every: int = 1
    synapses: Optional[tuple] = None
    indices: Optional[tuple] = None
    section: ClassVar[Optional[str]] = "traces"

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"ProjectionMonitor: every must be a positive integer number of steps, got {self.every!r}")
        if self.synapses is not None and self.indices is not None:
            raise ValueError("ProjectionMonitor: give synapses or indices, not both")
        object.__setattr__(self, "indices", self.indices)
        if self.synapses is not None:
            pairs = np.asarray(self.synapses)
            if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
                raise ValueError(f"ProjectionMonitor: synapses must be (pre, post) pairs of integers, got {self.synapses!r}")
            object.__setattr__(self, "synapses", tuple((int(a), int(b)) for a, b in pairs))
        _set_indices(self, "ProjectionMonitor")

    @property
    def population(self) -> None:  # watches no population
        return None

    @property
    def name(self) -> str:
        return f"{self.projection}.{self.variable}"

    @property
    def period(self) -> int:
        return self.every

    def reads_beyond_population(self, network) -> bool:
        return True

    def _leaf(self, proj_state):
        value = proj_state
        for part in self.variable.split("."):
            value = getattr(value, part)
        return value

    def _slots(self, network):
        return None if self.indices is None else np.asarray(self.indices)

    def check(self, network, state) -> None:
        if self.projection not in network.projections:
            raise ValueError(f"ProjectionMonitor: unknown projection {self.projection!r}; known: "
                             f"{', '.join(network.projections) or 'none'}")
        try:
            leaf = self._leaf(state.projections[self.projection])
        except AttributeError:
            top = state.projections[self.projection]
            raise ValueError(f"ProjectionMonitor: the state of projection {self.projection!r} has no "
                             f"{self.variable!r}; its fields: {', '.join(getattr(top, '_fields', ())) or 'none'}"
                             ) from None
        if leaf is None or not hasattr(leaf, "shape"):
            raise ValueError(f"ProjectionMonitor: {self.projection}.{self.variable} is not an array")
        if self.synapses is not None and self.indices is None:  # resolved on first use (a concrete network)
            slots = network.projections[self.projection].synapse_slots(self.synapses)
            object.__setattr__(self, "indices", tuple(int(i) for i in slots))
        slots = self._slots(network)
        if slots is not None and (slots.min() < 0 or slots.max() >= np.size(leaf)):
            raise ValueError(f"ProjectionMonitor: indices out of range for {self.name} of {np.size(leaf)} elements")

    def size(self, network, state) -> int:
        slots = self._slots(network)
        return len(slots) if slots is not None else int(np.size(self._leaf(state.projections[self.projection])))

    def select(self, network, state, dt: float):
        flat = jnp.ravel(self._leaf(state.projections[self.projection]))
        slots = self._slots(network)
        return _Reading("value", flat if slots is None else flat[jnp.asarray(slots)])

    def bytes_per_step(self, size: int) -> int:
        return 4 * size // self.every

    def for_simulate(self) -> "ProjectionMonitor":
        return self

    def init(self, size, n_steps):
        return jnp.zeros((-(-n_steps // self.every), size))

    def update(self, acc, i, before, after, spikes, dt):
        return _write_every(acc, i, after.value, self.every, self.every - 1), None

    def finish(self, acc, ys, n_steps):
        return acc

    def record_sequence(self, steps, before, after, spikes, dt):
        raise ValueError("ProjectionMonitor runs with order=StepByStep()")

    def to_host(self, record, first_step, dt):
        record = np.asarray(record)
        times = (first_step + self.every * np.arange(record.shape[0]) + self.every) * dt
        return times.astype(np.float64), record


@dataclass(frozen=True)
class RateMonitor(AbstractMonitor):
    """Record the instantaneous population rate (Hz) of ``population`` at every step."""

    population: str
    section: ClassVar[Optional[str]] = "rates"

    def for_simulate(self) -> "RateMonitor":
        return self

    def init(self, size, n_steps):
        return None

    def update(self, acc, i, before, after, spikes, dt):
        return acc, jnp.mean(spikes) * (1000.0 / dt)

    def finish(self, acc, ys, n_steps):
        return ys

    def record_sequence(self, steps, before, after, spikes, dt):
        return jnp.mean(spikes, axis=-1) * (1000.0 / dt)


def _check_start(owner: str, start) -> None:
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"{owner}: start must be a non-negative integer number of steps, got {start!r}")


@dataclass(frozen=True)
class CountMonitor(AbstractMonitor):
    """Count every neuron's spikes of ``population`` over the steps ``i >= start`` of the run (``start`` counted
    from the run's first step): a float ``(size,)`` array, differentiable (surrogate gradients), O(size) memory
    whatever the run's length."""

    population: str
    start: int = 0

    def __post_init__(self):
        _check_start("CountMonitor", self.start)

    def init(self, size, n_steps):
        return jnp.zeros((size,))

    def update(self, acc, i, before, after, spikes, dt):
        counted = spikes if self.start == 0 else jnp.where(i >= self.start, spikes, 0.0)
        return acc + counted, None

    def finish(self, acc, ys, n_steps):
        return acc

    def record_sequence(self, steps, before, after, spikes, dt):
        return jnp.sum(spikes[self.start:], axis=0, dtype=jnp.result_type(float))


@dataclass(frozen=True)
class MeanMonitor(AbstractVariableMonitor):
    """Time average of ``variable ** power`` of every neuron of ``population`` over the run, taken after every
    step (``when="end"``, default) or at its start: a ``(size,)`` array, differentiable, O(size) memory. For
    regularisers of the membrane distribution (``power=1`` and ``power=2`` give mean and mean square)."""

    population: str
    variable: str
    power: int = 1
    when: str = "end"

    def __post_init__(self):
        if isinstance(self.power, bool) or not isinstance(self.power, int) or self.power < 1:
            raise ValueError(f"MeanMonitor: power must be a positive integer, got {self.power!r}")
        self._check_when()

    def _value(self, before, after):
        value = self._read(before, after)
        return value if self.power == 1 else value ** self.power

    def init(self, size, n_steps):
        return jnp.zeros((size,))

    def update(self, acc, i, before, after, spikes, dt):
        return acc + self._value(before, after), None

    def finish(self, acc, ys, n_steps):
        return acc / n_steps

    def record_sequence(self, steps, before, after, spikes, dt):
        return jnp.mean(self._value(before, after), axis=0)


Monitor = AbstractMonitor


def check_monitors(network, state, monitors) -> tuple:
    """The monitors as a tuple, each checked against the network and its state."""
    monitors = tuple(monitors)
    for m in monitors:
        if not isinstance(m, AbstractMonitor):
            raise TypeError(f"unknown monitor {m!r}; use SpikeMonitor, StateMonitor, RateMonitor, CountMonitor, "
                            "MeanMonitor or an AbstractMonitor of your own")
        m.check(network, state)
    return monitors
