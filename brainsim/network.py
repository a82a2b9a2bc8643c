"""Compose populations, receptors, projections and drives into one pure network step.

A ``Network`` is an immutable ``equinox.Module``; its state is a ``NetworkState`` NamedTuple. One step
of ``dt`` ms follows Brian2's order of operations, so that a network built here and one written in
Brian2 with the same equations produce the same dynamics:

1. every population integrates its membrane with the receptor conductances/currents at time t
   (plus drives and external currents), then thresholds and resets -> spikes;
2. receptor states relax over dt (exactly);
3. drives (Poisson input) add arrivals; each projection delivers its (delayed, STP-scaled) spikes
   into the receptor it targets (a projection whose STP is a ``TripartiteSynapse`` scales them by a
   release that the gliotransmitter of this step, ``step(gliotransmitter=...)``, modulates);
4. plastic projections apply their local learning rule (``brainsim.plasticity``) to the weights held
   in ``NetworkState.plasticity``, from this step's delivered presynaptic spikes and postsynaptic spikes.

Populations, receptors and projections are named by strings chosen by the user, as in Brian2.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _population_step
from ._types import Array
from .inputs import CurrentStep, PoissonInput
from .delays import DelayedEventOperator
from .propagation import EventOperator
from .synapses.kinetics import Exponential
from .synapses.receptors import Receptor
from .synapses.stp import TsodyksMarkram


class Population(eqx.Module):
    """A neuron model (or spike source) with its named receptors.

    Args:
        model: a neuron model (``LIF``, ``HH``, ...) or a spike source (``PoissonSource``, ``SpikeTimes``).
        receptors: mapping from receptor name (e.g. ``"ge"``) to ``Receptor``; spike sources have none.
    """

    model: Any
    receptors: dict

    def __init__(self, model, receptors: Optional[Mapping[str, Receptor]] = None):
        self.model = model
        self.receptors = dict(receptors or {})
        if self.receptors and not hasattr(model.init(), "v"):
            raise ValueError(f"Population: {type(model).__name__} has no membrane, it cannot have receptors")

    @property
    def size(self) -> int:
        return self.model.size


class Projection(eqx.Module):
    """Synapses from population ``pre`` onto receptor ``receptor`` of population ``post``.

    Args:
        pre, post, receptor: names in the network.
        weights: ``EventOperator`` or a ``(n_pre, n_post)`` BCOO/BCSR weight matrix (nS or pA).
        delay: homogeneous transmission delay, ms (rounded to whole steps of ``dt``; 0 = delivered in
            the step the spike is emitted, as Brian2 without delay).
        stp: optional presynaptic short-term plasticity: ``TsodyksMarkram``, or
            ``brainsim.astrocytes.TripartiteSynapse(n_pre)`` whose release probability is modulated by
            astrocytic gliotransmitter (``Network.step(gliotransmitter=...)``, filled by ``AstroNetwork``).
        pre_range: optional ``(start, stop)``: only neurons ``start <= i < stop`` of ``pre`` project
            (row ``k`` of ``weights`` is neuron ``start + k``), like a Brian2 subgroup.
        plasticity: optional local learning rule (``brainsim.plasticity.STDP``, ...); its weights and
            traces live in ``NetworkState.plasticity[name]`` and are updated every step.

    ``weights`` may also be a ``brainsim.delays.DelayedEventOperator`` (one integer delay per synapse,
    in steps of dt); then ``delay`` must be 0.
    """

    operator: EventOperator
    stp: Optional[TsodyksMarkram]
    plasticity: Optional[Any]
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    delay: float = eqx.field(static=True)
    pre_range: Optional[tuple] = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, weights, *, delay: float = 0.0,
                 stp: Optional[TsodyksMarkram] = None, capacity: Optional[int] = None,
                 pre_range: Optional[tuple] = None, plasticity=None):
        self.pre, self.post, self.receptor = pre, post, receptor
        self.pre_range = None if pre_range is None else (int(pre_range[0]), int(pre_range[1]))
        self.operator = weights if isinstance(weights, (EventOperator, DelayedEventOperator)) else EventOperator.from_sparse(weights, capacity=capacity)
        if not delay >= 0:
            raise ValueError(f"Projection {pre}->{post}: delay must be >= 0 ms, got {delay}")
        if delay > 0 and isinstance(self.operator, DelayedEventOperator):
            raise ValueError(f"Projection {pre}->{post}: per-synapse delays (DelayedEventOperator) and a "
                             f"homogeneous delay ({delay} ms) cannot be combined; put it into the per-synapse delays")
        self.delay = float(delay)
        self.stp = stp
        self.plasticity = None if plasticity is None else plasticity.bind(self.operator)

    def delay_steps(self, dt: float) -> int:
        return int(round(self.delay / dt))


class NetworkState(NamedTuple):
    step: Array  # index of the next step (int32 scalar); its start time is step * dt ms
    neurons: dict  # population name -> model state
    receptors: dict  # population name -> {receptor name -> kinetics state}
    stp: dict  # projection name -> STPState (or TripartiteState for gliotransmitter-modulated release)
    delay_buffers: dict  # projection name -> (delay_steps, n_pre) ring buffer of spike values
    # projection name -> state of its learning rule (first field: ELL weights); per-synapse-delay
    # projections keep their (max_delay + 1, n_post) arrival ring buffer in delay_buffers
    plasticity: dict


class Network(eqx.Module):
    """Populations, projections and drives forming one pure step function.

    Args:
        populations: name -> ``Population``.
        projections: name -> ``Projection``.
        drives: sequence of ``PoissonInput`` / ``CurrentStep``.
    """

    populations: dict
    projections: dict
    drives: tuple

    def __init__(self, populations: Mapping[str, Population], projections: Optional[Mapping[str, Projection]] = None,
                 drives=()):
        self.populations = dict(populations)
        self.projections = dict(projections or {})
        self.drives = tuple(drives)
        if not self.populations:
            raise ValueError("Network: needs at least one population")
        for name, proj in self.projections.items():
            for role, pop in (("pre", proj.pre), ("post", proj.post)):
                if pop not in self.populations:
                    raise ValueError(f"Network: projection {name!r} has unknown {role} population {pop!r}; "
                                     f"known: {', '.join(self.populations)}")
            post = self.populations[proj.post]
            modulator = None if proj.plasticity is None else proj.plasticity.modulator
            if modulator is not None and modulator not in self.populations:
                raise ValueError(f"Network: projection {name!r} has a learning rule modulated by unknown population "
                                 f"{modulator!r}; known: {', '.join(self.populations)}")
            if proj.receptor not in post.receptors:
                raise ValueError(f"Network: projection {name!r} targets unknown receptor {proj.receptor!r} of "
                                 f"{proj.post!r}; known: {', '.join(post.receptors) or 'none'}")
            n_pre = self.populations[proj.pre].size
            if proj.pre_range is not None:
                start, stop = proj.pre_range
                if not 0 <= start < stop <= n_pre:
                    raise ValueError(f"Network: projection {name!r} has pre_range {proj.pre_range} outside "
                                     f"population {proj.pre!r} of size {n_pre}")
                n_pre = stop - start
            shape = (n_pre, post.size)
            stp_size = getattr(proj.stp, "size", None)
            if stp_size is not None and stp_size != n_pre:
                raise ValueError(f"Network: projection {name!r} has a {type(proj.stp).__name__} of size {stp_size} "
                                 f"but {n_pre} presynaptic neurons")
            if (proj.operator.n_pre, proj.operator.n_post) != shape:
                raise ValueError(f"Network: projection {name!r} has weights of shape "
                                 f"({proj.operator.n_pre}, {proj.operator.n_post}) but {proj.pre}->{proj.post} "
                                 f"needs {shape}")
        for drive in self.drives:
            if drive.target not in self.populations:
                raise ValueError(f"Network: {type(drive).__name__} targets unknown population {drive.target!r}")
            if isinstance(drive, PoissonInput) and drive.receptor not in self.populations[drive.target].receptors:
                raise ValueError(f"Network: PoissonInput targets unknown receptor {drive.receptor!r} of {drive.target!r}")

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations.values())

    @property
    def n_synapses(self) -> int:
        return sum(p.operator.n_synapses for p in self.projections.values())

    def init(self, dt: float, *, key=None) -> NetworkState:
        """Initial state: every model at rest, receptors empty, delay buffers empty."""
        neurons = {name: pop.model.init() for name, pop in self.populations.items()}
        receptors = {name: {r: rec.kinetics.init(pop.size) for r, rec in pop.receptors.items()}
                     for name, pop in self.populations.items()}
        stp = {name: proj.stp.init(proj.operator.n_pre) for name, proj in self.projections.items() if proj.stp is not None}
        buffers = {name: jnp.zeros((proj.delay_steps(dt), proj.operator.n_pre))
                   for name, proj in self.projections.items() if proj.delay_steps(dt) > 0}
        buffers.update({name: proj.operator.init_buffer() for name, proj in self.projections.items()
                        if isinstance(proj.operator, DelayedEventOperator)})
        plasticity = {name: proj.plasticity.init(proj.operator) for name, proj in self.projections.items()
                      if proj.plasticity is not None}
        return NetworkState(step=jnp.zeros((), jnp.int32), neurons=neurons,
                            receptors=receptors, stp=stp, delay_buffers=buffers, plasticity=plasticity)

    def _extra_current(self, name: str, state: NetworkState, dt: float, currents) -> Array:
        """Current-step drives plus the caller's ``currents`` for population ``name``, pA (a scalar 0 if none)."""
        extra = jnp.zeros(())
        for drive in self.drives:
            if isinstance(drive, CurrentStep) and drive.target == name:
                extra = extra + drive.current(state.step * dt, dt)
        if currents is not None and name in currents:
            extra = extra + currents[name]
        return extra

    def step(self, state: NetworkState, dt: float, *, key, currents: Optional[Mapping[str, Array]] = None,
             gliotransmitter: Optional[Mapping[str, Array]] = None):
        """Advance the network by one step of ``dt`` ms.

        Args:
            state: current ``NetworkState``.
            dt: time step, ms.
            key: PRNG key for this step (Poisson sources and inputs).
            currents: optional population name -> current (pA, shape ``(size,)`` or scalar) for this step.
            gliotransmitter: optional projection name -> extracellular gliotransmitter (µM, shape ``(n_pre,)``
                or scalar) at the presynaptic terminals of that projection during this step; the projection's
                ``stp`` must accept it (``TripartiteSynapse``). Projections not named see none.

        Returns:
            ``(new_state, spikes)`` with ``spikes`` a dict population name -> float spike vector.
        """
        gliotransmitter = dict(gliotransmitter or {})
        for name in gliotransmitter:
            proj = self.projections.get(name)
            if proj is None:
                raise ValueError(f"Network.step: gliotransmitter given for unknown projection {name!r}; "
                                 f"known: {', '.join(self.projections) or 'none'}")
            if not getattr(proj.stp, "accepts_gliotransmitter", False):
                raise ValueError(f"Network.step: projection {name!r} has no gliotransmitter-modulated release "
                                 f"(its stp is {type(proj.stp).__name__ if proj.stp is not None else 'None'}; "
                                 f"use brainsim.astrocytes.TripartiteSynapse)")
        keys = iter(jax.random.split(key, len(self.populations) + len(self.drives)))
        neurons, spikes, receptors = {}, {}, {}
        for name, pop in self.populations.items():
            k = next(keys)
            if hasattr(state.neurons[name], "v"):
                # receptor input -> model.step -> receptor decay; LIF with exponential receptors does it in
                # one native pass (same result)
                step = (_population_step.population_step if _population_step.applicable(pop.model, pop.receptors)
                        else _population_step.reference_step)
                neurons[name], spikes[name], receptors[name] = step(
                    pop.model, pop.receptors, state.neurons[name], state.receptors[name],
                    self._extra_current(name, state, dt, currents), dt)
            else:
                neurons[name], spikes[name] = pop.model.step(state.neurons[name], None, dt, key=k)
                receptors[name] = {r: rec.kinetics.decay(state.receptors[name][r], dt)
                                   for r, rec in pop.receptors.items()}
        for drive in self.drives:
            k = next(keys)
            if isinstance(drive, PoissonInput):
                rec = self.populations[drive.target].receptors[drive.receptor]
                size = self.populations[drive.target].size
                receptors[drive.target][drive.receptor] = rec.kinetics.arrive(
                    receptors[drive.target][drive.receptor], drive.arrivals(size, dt, k))

        stp, buffers, plastic = dict(state.stp), dict(state.delay_buffers), dict(state.plasticity)
        for name, proj in self.projections.items():
            values, row_offset = spikes[proj.pre], 0
            per_synapse_delays = isinstance(proj.operator, DelayedEventOperator)
            if proj.pre_range is not None:
                row_offset = proj.pre_range[0]
                if proj.stp is not None or name in buffers or proj.plasticity is not None:
                    values, row_offset = values[proj.pre_range[0]:proj.pre_range[1]], 0
            if proj.stp is not None and name in gliotransmitter:
                stp[name], values = proj.stp.step(state.stp[name], values, dt, gliotransmitter[name])
            elif proj.stp is not None:
                stp[name], values = proj.stp.step(state.stp[name], values, dt)
            if name in buffers and not per_synapse_delays:  # slot (step mod d): spikes emitted d steps ago
                buf = buffers[name]
                slot = state.step % buf.shape[0]
                values, buffers[name] = buf[slot], buf.at[slot].set(values)
            operator = proj.operator
            if proj.plasticity is not None:
                operator = eqx.tree_at(lambda op: op.weights, operator, state.plasticity[name].weights)
            rec = self.populations[proj.post].receptors[proj.receptor]
            modulator = None
            if proj.plasticity is not None and proj.plasticity.modulator is not None:
                modulator = spikes[proj.plasticity.modulator]
            if per_synapse_delays:
                buffers[name], arrived = operator.propagate(buffers[name], state.step, values)
                receptors[proj.post][proj.receptor] = rec.kinetics.arrive(receptors[proj.post][proj.receptor], arrived)
                if proj.plasticity is not None:  # pairs presynaptic emission times with postsynaptic spikes
                    plastic[name] = proj.plasticity.step(state.plasticity[name], operator, values,
                                                         spikes[proj.post], dt, modulator)
            elif proj.plasticity is not None:  # deliver with the weights before this step's update, then learn
                g = receptors[proj.post][proj.receptor]
                if isinstance(rec.kinetics, Exponential):  # arrival is addition: deliver straight into g
                    receptors[proj.post][proj.receptor], plastic[name] = proj.plasticity.deliver_and_step(
                        state.plasticity[name], operator, values, spikes[proj.post], dt, modulator, into=g)
                else:
                    arrived, plastic[name] = proj.plasticity.deliver_and_step(state.plasticity[name], operator, values,
                                                                              spikes[proj.post], dt, modulator)
                    receptors[proj.post][proj.receptor] = rec.kinetics.arrive(g, arrived)
            else:
                receptors[proj.post][proj.receptor] = rec.kinetics.arrive_events(
                    receptors[proj.post][proj.receptor], operator, values, row_offset)
        new_state = NetworkState(step=state.step + 1, neurons=neurons, receptors=receptors,
                                 stp=stp, delay_buffers=buffers, plasticity=plastic)
        return new_state, spikes
