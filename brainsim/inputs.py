"""External inputs: spike sources (Poisson, given spike times) and drives (Poisson input, current steps).

Spike sources are populations without a membrane: they follow the population contract
(``init`` / ``step``) and emit spikes that projections deliver like any other. Drives act directly on a
target population every step: ``PoissonInput`` adds Poisson-distributed arrivals to a receptor (like
Brian2's ``PoissonInput``), ``CurrentStep`` injects a current. Arbitrary current arrays are passed to
``simulate(..., currents={pop: array})``.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import counts
from ._checks import as_param, check_finite, check_positive, check_size, numbers, to_steps
from ._units import magnitude
from ._types import Array, ArrayLike
from .core.contracts import AbstractDrive, AbstractSource


class SourceState(NamedTuple):
    t: Array  # time of the next step, ms (scalar)


class PoissonSource(AbstractSource):
    """``size`` independent Poisson spike trains with rates ``rate`` (Hz, scalar or per neuron).

    In each step of ``dt`` ms a source spikes with probability ``rate * dt / 1000`` (clipped to [0, 1]), drawn
    with the counter-based sampler of ``brainsim.counts``: reproducible from the step's key, one hash per source.
    """

    rate: Array  # Hz
    size: int = eqx.field(static=True)

    def __init__(self, size: int, rate: ArrayLike):
        self.size = check_size(size, "PoissonSource")
        check_positive(rate, "rate (Hz)", "PoissonSource", allow_zero=True)
        self.rate = as_param(rate, size, "rate", "PoissonSource")

    def init(self, *, key=None) -> SourceState:
        return SourceState(t=jnp.zeros(()))

    def step(self, state: SourceState, inputs, dt: float, *, key=None) -> tuple[SourceState, Array]:
        if key is None:
            raise ValueError("PoissonSource.step: needs a PRNG key (key=jax.random.key(seed))")
        spikes = counts.binomial(key, 1.0, self.rate * (dt / 1000.0), self.size)
        return SourceState(t=state.t + dt), spikes.astype(self.rate.dtype)


class SpikeTimesState(NamedTuple):
    step: Array  # index of the next time step (int32 scalar)
    cursor: Array  # position of the next unemitted event in the sorted event list (int32 scalar)


class SpikeTimes(AbstractSource):
    """Emits given spikes: neuron ``indices[k]`` spikes at ``times[k]`` ms (Brian2's SpikeGeneratorGroup).

    Times are rounded to the step grid of ``dt`` (given at construction, ms; stepping with another dt is an
    error): the spike is emitted in the step nearest to ``t`` (halves up, the rule of delays too). Several spikes of one neuron in the same step are rejected. Each step emits
    the events at the cursor of a sorted event list: cost O(max events per step), no spike is dropped.
    """

    event_steps: Array  # int32, sorted
    event_indices: Array  # int32
    size: int = eqx.field(static=True)
    max_per_step: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, size: int, times, indices, dt: float):
        self.size = check_size(size, "SpikeTimes")
        check_positive(dt, "dt (ms)", "SpikeTimes")
        times, indices = numbers(times, "times", "SpikeTimes"), np.asarray(indices)
        whole = np.issubdtype(indices.dtype, np.integer) or (
            np.issubdtype(indices.dtype, np.floating) and np.all(np.isfinite(indices) & (indices == np.round(indices))))
        if indices.size and not whole:
            raise ValueError(f"SpikeTimes: indices must be whole neuron indices, got {indices.dtype} values")
        indices = indices.astype(np.int64)
        if times.shape != indices.shape or times.ndim != 1:
            raise ValueError(f"SpikeTimes: times {times.shape} and indices {indices.shape} must be 1-D and equal")
        if len(times) and (not np.all(np.isfinite(times)) or times.min() < 0):
            raise ValueError("SpikeTimes: spike times must be finite and >= 0 ms")
        if len(indices) and (indices.min() < 0 or indices.max() >= size):
            raise ValueError(f"SpikeTimes: neuron indices must be in [0, {size})")
        self.dt = float(dt)
        steps = to_steps(times, dt)[0]
        order = np.lexsort((indices, steps))
        steps, indices = steps[order], indices[order]
        if len(steps) and np.any((np.diff(steps) == 0) & (np.diff(indices) == 0)):
            raise ValueError("SpikeTimes: a neuron has two spikes in the same time step")
        self.max_per_step = int(np.bincount(steps).max()) if len(steps) else 1
        if not len(steps):  # no spike: one event at step -1, never due
            steps, indices = np.array([-1]), np.array([0])
        self.event_steps = jnp.asarray(steps, dtype=jnp.int32)
        self.event_indices = jnp.asarray(indices, dtype=jnp.int32)

    def init(self, *, key=None) -> SpikeTimesState:
        return SpikeTimesState(step=jnp.zeros((), jnp.int32), cursor=jnp.zeros((), jnp.int32))

    def step(self, state: SpikeTimesState, inputs, dt: float, *, key=None) -> tuple[SpikeTimesState, Array]:
        if abs(dt - self.dt) > 1e-9 * self.dt:
            raise ValueError(f"SpikeTimes: its spike times were put on the grid of dt = {self.dt} ms, but it is "
                             f"stepped with dt = {dt} ms; build it with the dt you simulate with")
        window = state.cursor + jnp.arange(self.max_per_step)
        steps = jnp.take(self.event_steps, window, mode="fill", fill_value=-1)
        due = steps == state.step
        targets = jnp.where(due, jnp.take(self.event_indices, window, mode="fill", fill_value=0), self.size)
        spikes = jnp.zeros((self.size,)).at[targets].set(1.0, mode="drop")
        return SpikeTimesState(step=state.step + 1, cursor=state.cursor + due.sum(dtype=jnp.int32)), spikes


class PoissonInput(AbstractDrive):
    """``n_sources`` independent Poisson inputs at ``rate`` Hz onto every neuron of a population (Brian2's
    ``PoissonInput``, NEST's ``poisson_generator`` with one connection per neuron).

    Each step of ``dt`` ms adds ``weight × Binomial(n_sources, rate·dt/1000)`` to receptor ``receptor`` of
    population ``target``: exactly the number of arrivals of ``n_sources`` Poisson trains whose spikes are
    on the step grid. The counts come from ``brainsim.counts``: exact in distribution, reproducible from the
    step's key whatever the chunking, one hash and a few comparisons per neuron (a native kernel on CPU).

    Args:
        target, receptor: the population and its receptor the arrivals go to.
        n_sources: number of Poisson sources per neuron (an integer >= 0, or one per neuron).
        rate: rate of each source, Hz (>= 0, scalar or one per neuron).
        weight: weight of one arrival in the receptor's unit (nS, pA, or pA·ms for ``Delta``; scalar or per neuron).
    """

    n_sources: Array  # whole numbers >= 0, scalar or (size,)
    rate: Array  # Hz, scalar or (size,)
    weight: Array
    target: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)

    def __init__(self, target: str, receptor: str, n_sources, rate, weight):
        owner = "PoissonInput"
        self.target, self.receptor = target, receptor
        sources = numbers(n_sources, "n_sources", owner)
        if sources.ndim > 1 or not np.all(np.isfinite(sources) & (sources >= 0) & (sources == np.round(sources))):
            raise ValueError(f"{owner}: n_sources must be an integer >= 0 or a 1-D array of them, got {n_sources!r}")
        check_positive(rate, "rate (Hz)", owner, allow_zero=True)
        check_finite(weight, "weight", owner)
        for name, value in (("rate", rate), ("weight", weight)):
            if np.ndim(value) > 1:
                raise ValueError(f"{owner}: {name} must be a scalar or one value per neuron, got shape {np.shape(value)}")
        self.n_sources = jnp.asarray(sources, dtype=jnp.result_type(float))
        self.rate = jnp.asarray(magnitude(rate), dtype=jnp.result_type(float))
        self.weight = jnp.asarray(magnitude(weight), dtype=jnp.result_type(float))

    def arrivals(self, size: int, dt: float, key) -> Array:
        """This step's arrivals (receptor unit) at the ``size`` neurons, drawn with ``key``."""
        return self.weight * counts.binomial(key, self.n_sources, self.rate * (dt / 1000.0), size)

    def current(self, population, t: Array, dt: float, key):
        return 0.0

    def arrive(self, population, receptor_states, dt: float, key) -> dict:
        kinetics = population.receptors[self.receptor].kinetics
        states = dict(receptor_states)
        states[self.receptor] = kinetics.arrive(states[self.receptor], self.arrivals(population.size, dt, key))
        return states

    def check(self, populations) -> None:
        if self.target not in populations:
            raise ValueError(f"Network: PoissonInput targets unknown population {self.target!r}")
        if self.receptor not in populations[self.target].receptors:
            raise ValueError(f"Network: PoissonInput targets unknown receptor {self.receptor!r} of {self.target!r}")
        size = populations[self.target].size
        for name in ("n_sources", "rate", "weight"):
            shape = getattr(self, name).shape
            if shape not in ((), (size,)):
                raise ValueError(f"Network: PoissonInput {name} has shape {shape}; {self.target!r} has {size} neurons "
                                 f"(give a scalar or one value per neuron)")


class CurrentStep(AbstractDrive):
    """Current ``amplitude`` pA injected into population ``target`` for ``start <= t < stop`` (ms)."""

    amplitude: Array  # pA, scalar or per neuron
    start: float = eqx.field(static=True)
    stop: float = eqx.field(static=True)
    target: str = eqx.field(static=True)

    def __init__(self, target: str, amplitude: ArrayLike, start: float = 0.0, stop: float = float("inf")):
        if not stop > start:
            raise ValueError(f"CurrentStep: stop ({stop} ms) must be after start ({start} ms)")
        check_finite(amplitude, "amplitude (pA)", "CurrentStep")
        self.target, self.start, self.stop = target, float(start), float(stop)
        self.amplitude = jnp.asarray(magnitude(amplitude), dtype=jnp.result_type(float))

    def current(self, population, t: Array, dt: float, key) -> Array:
        # the step starting at time t (ms) is driven if t lies in [start, stop), with a half-step tolerance
        on = (t >= self.start - 0.5 * dt) & (t < self.stop - 0.5 * dt)
        return jnp.where(on, self.amplitude, 0.0)

    def arrive(self, population, receptor_states, dt: float, key) -> dict:
        return receptor_states

    def check(self, populations) -> None:
        if self.target not in populations:
            raise ValueError(f"Network: CurrentStep targets unknown population {self.target!r}")


class NoiseCurrent(AbstractDrive):
    """Gaussian white-noise current ``I(t) = mean + sigma xi(t)`` into every neuron of population ``target``
    (independent per neuron; Brian2's ``sigma*xi`` in a current, NEST's ``noise_generator`` with dt-wide pulses).

    Over a step of ``dt`` ms the current is held at ``mean + sigma N(0, 1) / sqrt(dt)``: the charge it carries
    has variance ``sigma^2 dt``, as white noise, so the membrane's variance does not depend on dt. For an LIF
    (time constant tau_m, capacitance C_m) the stationary variance of v is ``sigma^2 tau_m / (2 C_m^2)``
    (an Ornstein–Uhlenbeck process; within 0.1 % for dt <= tau_m / 10 under exact or exponential integration).

    Args:
        target: population name.
        sigma: noise amplitude, pA ms^1/2 (>= 0; scalar or per neuron).
        mean: mean current, pA (scalar or per neuron).
    """

    sigma: Array  # pA ms^1/2
    mean: Array  # pA
    target: str = eqx.field(static=True)

    def __init__(self, target: str, sigma: ArrayLike, mean: ArrayLike = 0.0):
        owner = "NoiseCurrent"
        check_positive(sigma, "sigma (pA ms^1/2)", owner, allow_zero=True)
        check_finite(mean, "mean (pA)", owner)
        for name, value in (("sigma", sigma), ("mean", mean)):
            if np.ndim(value) > 1:
                raise ValueError(f"{owner}: {name} must be a scalar or one value per neuron, got shape {np.shape(value)}")
        self.target = target
        self.sigma = jnp.asarray(magnitude(sigma), dtype=jnp.result_type(float))
        self.mean = jnp.asarray(magnitude(mean), dtype=jnp.result_type(float))

    def current(self, population, t: Array, dt: float, key) -> Array:
        noise = jax.random.normal(key, (population.size,), self.sigma.dtype)
        return self.mean + self.sigma * noise / jnp.sqrt(dt)

    def arrive(self, population, receptor_states, dt: float, key) -> dict:
        return receptor_states

    def check(self, populations) -> None:
        if self.target not in populations:
            raise ValueError(f"Network: NoiseCurrent targets unknown population {self.target!r}")
        size = populations[self.target].size
        for name in ("sigma", "mean"):
            shape = getattr(self, name).shape
            if shape not in ((), (size,)):
                raise ValueError(f"Network: NoiseCurrent {name} has shape {shape}; {self.target!r} has {size} neurons "
                                 f"(give a scalar or one value per neuron)")
