"""Compose populations, projections and drives into one pure network step.

A ``Network`` is an immutable ``equinox.Module``; its state is a ``NetworkState`` NamedTuple. One step
of ``dt`` ms follows Brian2's order of operations, so that a network built here and one written in
Brian2 with the same equations produce the same dynamics:

1. every population integrates its membrane with the receptor conductances/currents at time t
   (plus drives' and external currents), then thresholds and resets -> spikes; its receptors relax over dt
   (exactly);
2. drives (``PoissonInput``) add their arrivals to their receptors;
3. every projection delivers its (delayed, STP-scaled) spikes into the receptor it targets and advances its
   own state (a plastic projection learns from this step's spikes).

A projection with ``same_step = True`` (the convention of feed-forward ML layers, ``DenseProjection(...,
same_step=True)``) instead delivers in step 1, right before its target population steps, the output its
presynaptic population emitted earlier in the same step.

The step is a plain loop over these components through their contracts (``brainsim.core.contracts``,
``brainsim.projections.AbstractProjection``); it never looks at their types. Extra inputs of a step that only
some components read (the gliotransmitter at a tripartite synapse, a neuromodulator, ...) reach the component
through ``StepContext``: computed from the network's state by the network's signals (``AbstractSignal``, e.g.
``StateSignal``), or given from outside as ``step(signals={component name: value})``.

Astrocytes are populations too (``AbstractAstrocyte``): spikes reach them through projections into their
receptors, their graded output (slow inward current) reaches neurons through a ``GradedProjection``, and their
gliotransmitter reaches tripartite synapses as a ``StateSignal`` (``brainsim.networks.astrocytes``).

Populations, receptors and projections are named by strings chosen by the user, as in Brian2.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _population_step
from ._checks import check_mapping
from ._frozen import FrozenDict
from ._types import Array
from .distributions import AbstractDistribution
from .core.contracts import (AbstractAstrocyte, AbstractDrive, AbstractNeuron, AbstractPopulationModel,
                             AbstractSignal, StepContext)
from .projections import AbstractProjection, Projection  # noqa: F401  (Projection re-exported)
from .synapses.outputs import CurrentOutput
from .synapses.receptors import Receptor


class Population(eqx.Module):
    """A neuron model (or spike source, or astrocytes) with its named receptors.

    Args:
        model: a neuron model (``LIF``, ``HH``, ...: an ``AbstractNeuron``), a spike source (``PoissonSource``,
            ``SpikeTimes``: an ``AbstractSource``) or astrocytes (``LiRinzel``, ``GChI``, ``MultiRate``: an
            ``AbstractAstrocyte``).
        receptors: mapping from receptor name (e.g. ``"ge"``) to ``Receptor``; spike sources have none, and
            astrocytes only voltage-independent ones (``CurrentOutput``).
        initial: keyword arguments of ``model.init`` giving initial conditions (e.g. ``{"IP3": 0.4}`` µM for
            ``LiRinzel``, ``{"v": -65.0}`` mV where the model's ``init`` takes it); a value may be a distribution
            (``brainsim.distributions``: ``{"v": Normal(-58.0, 10.0)}``), drawn for every neuron by
            ``Network.init(dt, key=...)``.
        shape: optional layout of the neurons, e.g. ``(channels, height, width)`` for the output of a
            convolution (its product is the model's size; state stays one flat vector per variable, read
            channels-first; ``unflatten`` gives arrays this shape). Default ``(size,)``.
    """

    model: AbstractPopulationModel
    receptors: dict
    initial: dict
    shape: tuple = eqx.field(static=True)

    def __init__(self, model, receptors: Optional[Mapping[str, Receptor]] = None, *,
                 initial: Optional[Mapping[str, Any]] = None, shape=None):
        if not isinstance(model, AbstractPopulationModel):
            raise TypeError(f"Population: model must be a neuron model, spike source or astrocyte model "
                            f"(AbstractNeuron / AbstractSource / AbstractAstrocyte), got {type(model).__name__}")
        self.model = model
        self.shape = (model.size,) if shape is None else tuple(int(n) for n in np.atleast_1d(shape))
        if int(np.prod(self.shape)) != model.size or min(self.shape) < 1:
            raise ValueError(f"Population: shape {shape!r} does not hold the {model.size} neurons of "
                             f"{type(model).__name__}")
        self.receptors = FrozenDict(check_mapping(receptors, "receptors", "Population"))
        self.initial = FrozenDict(check_mapping(initial, "initial", "Population"))
        if self.receptors and not isinstance(model, (AbstractNeuron, AbstractAstrocyte)):
            raise ValueError(f"Population: {type(model).__name__} has no membrane, it cannot have receptors")
        for name, rec in self.receptors.items():
            if not isinstance(rec, Receptor):
                raise TypeError(f"Population: receptor {name!r} must be a Receptor, got {type(rec).__name__}")
            if isinstance(model, AbstractAstrocyte) and not isinstance(rec.output, CurrentOutput):
                raise ValueError(f"Population: receptor {name!r} of {type(model).__name__} must be voltage-"
                                 f"independent (CurrentOutput): astrocytes have no membrane potential")
        if self.initial:
            try:  # (a distribution is checked with a placeholder of the drawn shape)
                model.init(**{k: np.zeros(model.size, np.float32) if isinstance(v, AbstractDistribution) else v
                              for k, v in self.initial.items()})
            except TypeError as e:
                raise ValueError(f"Population: initial conditions {sorted(self.initial)} do not fit "
                                 f"{type(model).__name__}.init ({e})") from None

    @property
    def size(self) -> int:
        return self.model.size

    def unflatten(self, values):
        """``values (..., size)`` (a monitor's record, a state variable) as ``(..., *shape)``."""
        values = jnp.asarray(values)
        return values.reshape(values.shape[:-1] + self.shape)

    def init(self, *, key=None) -> tuple[Any, dict]:
        """``(model state, {receptor name: empty kinetic state})``; initial conditions given as distributions are
        drawn with ``key``."""
        initial = dict(self.initial)
        drawn = [name for name, value in initial.items() if isinstance(value, AbstractDistribution)]
        if drawn:
            if key is None:
                raise ValueError(f"Population: initial conditions {drawn} are distributions: give Network.init a "
                                 f"key (key=jax.random.key(seed)) to draw them")
            key, *keys = jax.random.split(key, len(drawn) + 1)
            for name, sub in zip(drawn, keys):
                initial[name] = jnp.asarray(initial[name](sub, self.size), jnp.result_type(float))
        return (self.model.init(key=key, **initial),
                {r: rec.kinetics.init(self.size) for r, rec in self.receptors.items()})

    def step(self, model_state, receptor_states: dict, current, dt: float, *, key):
        """One step: summed receptor input at time t (plus ``current``, pA), ``model.step``, receptor decay.

        Returns ``(model state, spikes, decayed receptor states)``. LIF populations with exponential
        receptors run this as one native pass on CPU (``brainsim._population_step``); the result is the same.
        """
        return _population_step.step(self.model, self.receptors, model_state, receptor_states, current, dt, key=key)


def _start_time(step: Array, dt: float) -> Array:
    """Start time (ms) of the step with index ``step`` (int32), in the default float dtype."""
    return step.astype(jnp.result_type(float)) * dt


class NetworkState(NamedTuple):
    step: Array  # index of the next step (int32 scalar); its start time is step * dt ms
    neurons: dict  # population name -> model state
    receptors: dict  # population name -> {receptor name -> kinetics state}
    projections: dict  # projection name -> that projection's own state (see its ``init``)


class Network(eqx.Module):
    """Populations, projections and drives forming one pure step function.

    Args:
        populations: name -> ``Population``.
        projections: name -> projection (``Projection(...)`` or any ``AbstractProjection``).
        drives: sequence of drives (``PoissonInput``, ``CurrentStep``: ``AbstractDrive``).
        signals: sequence of signals computed from the state every step for the component they address
            (``StateSignal``: ``AbstractSignal``).
    """

    populations: dict
    projections: dict
    drives: tuple
    signals: tuple

    def __init__(self, populations: Mapping[str, Population], projections: Optional[Mapping[str, Any]] = None,
                 drives=(), signals=()):
        self.populations = FrozenDict(check_mapping(populations, "populations", "Network"))
        self.projections = FrozenDict(check_mapping(projections, "projections", "Network"))
        self.drives = tuple(drives)
        self.signals = tuple(signals)
        if not self.populations:
            raise ValueError("Network: populations must hold at least one Population")
        for name, pop in self.populations.items():
            if not isinstance(pop, Population):
                raise TypeError(f"Network: populations[{name!r}] must be a Population, got {type(pop).__name__}"
                                + (f" (wrap it: Population({type(pop).__name__}(...)))"
                                   if isinstance(pop, AbstractPopulationModel) else ""))
        for name, proj in self.projections.items():
            if not isinstance(proj, AbstractProjection):
                raise TypeError(f"Network: projection {name!r} must be a projection (AbstractProjection), "
                                f"got {type(proj).__name__}")
            for role, pop in (("pre", proj.pre), ("post", proj.post)):
                if pop not in self.populations:
                    raise ValueError(f"Network: projection {name!r} has unknown {role} population {pop!r}; "
                                     f"known: {', '.join(self.populations)}")
            post = self.populations[proj.post]
            if proj.receptor not in post.receptors:
                raise ValueError(f"Network: projection {name!r} targets unknown receptor {proj.receptor!r} of "
                                 f"{proj.post!r}; known: {', '.join(post.receptors) or 'none'}")
            proj.check(name, self.populations)
            if proj.same_step and list(self.populations).index(proj.pre) >= list(self.populations).index(proj.post):
                raise ValueError(f"Network: projection {name!r} delivers within the step (same_step), so its pre "
                                 f"population {proj.pre!r} must come before {proj.post!r} in the populations")
        for drive in self.drives:
            if not isinstance(drive, AbstractDrive):
                raise TypeError(f"Network: drives must be AbstractDrive (PoissonInput, CurrentStep), "
                                f"got {type(drive).__name__}")
            drive.check(self.populations)
        addressed = set()
        for sig in self.signals:
            if not isinstance(sig, AbstractSignal):
                raise TypeError(f"Network: signals must be AbstractSignal (StateSignal), got {type(sig).__name__}")
            self._check_signal_target(sig.target, "Network")
            if sig.target in addressed:
                raise ValueError(f"Network: two signals address projection {sig.target!r}")
            addressed.add(sig.target)
            sig.check(self.populations, self.projections)

    def _check_signal_target(self, target: str, owner: str) -> None:
        proj = self.projections.get(target)
        if proj is None:
            raise ValueError(f"{owner}: signal given for unknown projection {target!r}; "
                             f"known: {', '.join(self.projections) or 'none'}")
        if not proj.reads_signal:
            raise ValueError(f"{owner}: projection {target!r} reads no signal (no gliotransmitter-modulated "
                             f"release; use stp=brainsim.astrocytes.TripartiteSynapse)")

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations.values())

    @property
    def n_synapses(self) -> int:
        return sum(p.n_synapses for p in self.projections.values())

    def init(self, dt: float, *, key=None) -> NetworkState:
        """Initial state for steps of ``dt`` ms: every model at rest (or at initial conditions drawn with ``key``
        where a model offers them), receptors empty, projections' buffers empty."""
        keys = iter(jax.random.split(key, len(self.populations)) if key is not None else [None] * len(self.populations))
        neurons, receptors = {}, {}
        for name, pop in self.populations.items():
            neurons[name], receptors[name] = pop.init(key=next(keys))
        projections = {name: proj.init(dt) for name, proj in self.projections.items()}
        return NetworkState(step=jnp.zeros((), jnp.int32), neurons=neurons, receptors=receptors,
                            projections=projections)

    def step(self, state: NetworkState, dt: float, *, key, currents: Optional[Mapping[str, Array]] = None,
             signals: Optional[Mapping[str, Any]] = None):
        """Advance the network by one step of ``dt`` ms.

        Args:
            state: current ``NetworkState``.
            dt: time step, ms.
            key: PRNG key for this step (split over populations and drives).
            currents: optional population name -> current (pA, shape ``(size,)`` or scalar) for this step.
            signals: optional component name -> extra input of this step for the component that reads it, e.g.
                projection name -> gliotransmitter (µM, ``(n_pre,)`` or scalar) at the terminals of a projection
                whose ``stp`` is a ``TripartiteSynapse``; added to those of the network's own signals.

        Returns:
            ``(new_state, spikes)`` with ``spikes`` a dict population name -> float spike vector.
        """
        signals = dict(signals or {})
        for name in signals:
            self._check_signal_target(name, "Network.step")
        for sig in self.signals:
            if sig.target in signals:
                raise ValueError(f"Network.step: projection {sig.target!r} already has a signal of the network")
            signals[sig.target] = sig.value(state.neurons)
        currents = dict(currents or {})
        keys = jax.random.split(key, len(self.populations) + len(self.drives))
        pop_keys, drive_keys = iter(keys[:len(self.populations)]), keys[len(self.populations):]
        t = _start_time(state.step, dt)
        neurons, spikes, projections = {}, {}, {}
        receptors = {name: dict(states) for name, states in state.receptors.items()}
        ctx = StepContext(dt=dt, step=state.step, spikes=spikes, signals=signals)

        def deliver(name, proj):
            kinetics = self.populations[proj.post].receptors[proj.receptor].kinetics
            projections[name], receptors[proj.post][proj.receptor] = proj.deliver(
                state.projections[name], receptors[proj.post][proj.receptor], kinetics, ctx._replace(projection=name))

        for name, pop in self.populations.items():
            for proj_name, proj in self.projections.items():  # this step's output of earlier populations
                if proj.same_step and proj.post == name:
                    deliver(proj_name, proj)
            current = sum((d.current(pop, t, dt, k) for d, k in zip(self.drives, drive_keys) if d.target == name),
                          jnp.zeros(()))
            if name in currents:
                current = current + currents[name]
            neurons[name], spikes[name], receptors[name] = pop.step(
                state.neurons[name], receptors[name], current, dt, key=next(pop_keys))
        for drive, drive_key in zip(self.drives, drive_keys):
            receptors[drive.target] = drive.arrive(self.populations[drive.target], receptors[drive.target], dt,
                                                   drive_key)
        ctx = ctx._replace(potentials={name: pop.model.membrane_potential(neurons[name])
                                       for name, pop in self.populations.items()})
        for name, proj in self.projections.items():
            if not proj.same_step:
                deliver(name, proj)
        return NetworkState(step=state.step + 1, neurons=neurons, receptors=receptors,
                            projections=projections), spikes
