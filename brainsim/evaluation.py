"""In which order ``run`` computes a network's steps: a strategy given to ``brainsim.simulate.run(order=...)``.

Both orders compute the same steps (``Network.step``'s order of operations, the same keys), so the trajectory
and the records are the same whichever is chosen, up to float rounding:

- ``StepByStep()`` (default): one loop over time, every population and projection within each step. Serves
  every network.
- ``LayerByLayer(fuse=True)``: one population at a time, each over all the steps, in the order of the
  network's populations: the order of feed-forward machine-learning models. It serves networks in which every
  projection either delivers within the step (``same_step``) from an earlier population or connects a
  population to itself (recurrence), without network signals; for such networks it lets a population run as
  one operation over the whole sequence where one exists:

  * a source whose output is a recorded series (``AbstractSource.replay``: ``Signal``) is read at once;
  * a population of ``LIF`` or ``AdaptiveLIF`` neurons (exponential Euler) with one ``Instant`` or ``Exponential``
    current receptor, fed by one
    same-step projection (a ``DenseProjection``, or any projection giving its ``sequence_amounts``, e.g. a
    convolution) and at most one recurrent ``DenseProjection`` without bias, and no
    drive or injected current, runs as the fused LIF sequence (``brainsim.fused_lif``: forward and backward
    sweeps in native code on CPU), together with a ``LeakyIntegrator`` population fed only by it through a
    ``DenseProjection(same_step=True)`` right behind it, provided the monitors of these populations read no
    state variable but ``v``. ``fuse`` (True, False, or the names of the populations allowed) chooses where.

  Every other population steps in a loop of its own (``Population.step``, its drives, its recurrent
  projections); the amounts of its same-step projections that give ``sequence_amounts`` are computed for the
  whole sequence before that loop.

The adjoint (``brainsim.adjoints``) differentiates each loop either order runs, and each fused sequence
(``AbstractAdjoint.sequence``: checkpointed or truncated chunks of the fused operation).
"""
from __future__ import annotations

import abc
import functools
from typing import Collection, NamedTuple, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import fused_lif
from ._types import Array
from .core.contracts import AbstractSource, StepContext
from .event_matmul import event_matmul
from .network import Network, NetworkState, _start_time
from .neurons import LeakyIntegrator
from .projections import DenseProjection
from .synapses.kinetics import Exponential, Instant
from .synapses.outputs import CurrentOutput


class AbstractOrder(eqx.Module):
    """``run(network, state, n_steps, dt, key, monitors, currents, unroll, adjoint) -> (state, records)``: the
    loops of ``brainsim.simulate.run`` (arguments checked there; ``currents`` maps population names to
    ``(n_steps, size)`` or ``(n_steps,)`` arrays, records align with ``monitors``)."""

    @abc.abstractmethod
    def run(self, network: Network, state: NetworkState, n_steps: int, dt: float, key, monitors: tuple,
            currents: dict, unroll: int, adjoint):
        ...


def _size(network: Network, state, monitor) -> int:
    return monitor.size(network, state)


class StepByStep(AbstractOrder):
    """One loop over time; each step is ``Network.step``."""

    def run(self, network, state, n_steps, dt, key, monitors, currents, unroll, adjoint):
        accs = [m.init(_size(network, state, m), n_steps) for m in monitors]
        first_step = state.step

        def body(carry, xs):
            state, accs = carry
            i, step_currents = xs
            new, spikes = network.step(state, dt, key=jax.random.fold_in(key, first_step + i),
                                       currents=step_currents)
            accs, ys = list(accs), []
            for j, m in enumerate(monitors):
                accs[j], y = m.update(accs[j], i, m.select(network, state, dt), m.select(network, new, dt),
                                      spikes.get(m.population), dt)
                ys.append(y)
            return (new, accs), ys

        steps = jnp.arange(n_steps, dtype=jnp.int32)  # the dtype of NetworkState.step
        (state, accs), ys = adjoint.scan(body, (state, accs), (steps, currents or None), unroll=unroll)
        return state, tuple(m.finish(acc, y, n_steps) for m, acc, y in zip(monitors, accs, ys))


class Membrane(NamedTuple):
    """The part of a population's state a fused sequence keeps: the membrane potential (mV)."""

    v: Array


class LayerByLayer(AbstractOrder):
    """One population at a time over all the steps (module docstring).

    Args:
        fuse: let populations run as fused sequence operations (True), never (False), or only those named.
    """

    fuse: Union[bool, frozenset] = eqx.field(static=True)

    def __init__(self, fuse: Union[bool, Collection[str]] = True):
        self.fuse = fuse if isinstance(fuse, bool) else frozenset(fuse)

    def check(self, network: Network) -> None:
        """Raise unless every projection is same-step from an earlier population or recurrent, without signals."""
        if network.signals:
            raise ValueError("LayerByLayer: the network has signals (computed from every population's state each "
                             "step); run it with order=StepByStep()")
        for name, proj in network.projections.items():
            if not (proj.same_step or proj.pre == proj.post):
                raise ValueError(f"LayerByLayer: projection {name!r} ({proj.pre}->{proj.post}) delivers after the "
                                 "step between two populations; only same_step projections and recurrent ones "
                                 "(pre == post) can run population by population. Use order=StepByStep()")

    def _may_fuse(self, name: str) -> bool:
        return self.fuse if isinstance(self.fuse, bool) else name in self.fuse

    def run(self, network, state, n_steps, dt, key, monitors, currents, unroll, adjoint):
        self.check(network)
        for m in monitors:
            if m.reads_beyond_population(network):
                raise ValueError(f"LayerByLayer: {type(m).__name__} {m.name!r} reads receptors or projections, "
                                 f"which this order does not keep step by step; use order=StepByStep()")
        names = list(network.populations)
        n_keys = len(names) + len(network.drives)
        steps = jnp.arange(n_steps, dtype=jnp.int32)
        keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, state.step + i), n_keys))(steps)
        outputs, records = {}, [None] * len(monitors)
        neurons, receptors, projections = {}, {}, {}
        done = set()
        for index, name in enumerate(names):
            if name in done:
                continue
            mine = [j for j, m in enumerate(monitors) if m.population == name]
            reads = {v for j in mine for v in monitors[j].reads}
            pop = network.populations[name]
            model_state = state.neurons[name]
            replayed = pop.model.replay(model_state, n_steps) if isinstance(pop.model, AbstractSource) else None
            if replayed is not None and not reads and not any(d.target == name for d in network.drives):
                neurons[name], outputs[name] = replayed
                receptors[name] = state.receptors[name]
                for j in mine:
                    records[j] = monitors[j].record_sequence(steps, None, None, outputs[name], dt)
                done.add(name)
                continue
            plan = (self._fusion(network, state, name, currents, monitors, outputs, dt) if self._may_fuse(name)
                    else None)
            if plan is not None:
                if plan[2] is not None:  # the feed's state after the sequence
                    projections[plan[2][0]] = plan[2][1]
                fused = self._run_fused(network, state, plan, outputs, n_steps, dt, steps, monitors, records, adjoint)
                for pname, (model_state, receptor_states, spikes) in fused.items():
                    neurons[pname], receptors[pname], outputs[pname] = model_state, receptor_states, spikes
                    done.add(pname)
                continue
            result = self._run_population(network, state, name, index, keys, outputs, currents.get(name), n_steps,
                                          dt, steps, [(j, monitors[j]) for j in mine], unroll, adjoint)
            (neurons[name], receptors[name], own), accs, (spikes, ys) = result
            projections.update(own)
            outputs[name] = spikes
            for (j, m), acc, y in zip([(j, monitors[j]) for j in mine], accs, ys):
                records[j] = m.finish(acc, y, n_steps)
            done.add(name)
        for pname, proj in network.projections.items():
            projections.setdefault(pname, state.projections[pname])
        new_state = NetworkState(step=state.step + n_steps, neurons=neurons, receptors=receptors,
                                 projections={p: projections[p] for p in network.projections})
        return new_state, tuple(records)

    # ------------------------------------------------------------------------------------------ a population's loop
    def _run_population(self, network, state, name, index, keys, outputs, current_seq, n_steps, dt, steps, mine,
                        unroll, adjoint):
        pop = network.populations[name]
        incoming = {p: proj for p, proj in network.projections.items() if proj.post == name}
        drives = [(d, drive) for d, drive in enumerate(network.drives) if drive.target == name]
        n_pop = len(network.populations)
        at_once, after = {}, {}  # same-step projections computed over the sequence before the loop, their states
        for pname, proj in incoming.items():
            if proj.same_step:
                computed = proj.sequence_amounts(state.projections[pname], outputs[proj.pre], dt)
                if computed is not None:
                    after[pname], at_once[pname] = computed
        pre_seq = {proj.pre: outputs[proj.pre] for pname, proj in incoming.items()
                   if proj.same_step and pname not in at_once}
        first_step = state.step
        accs = [m.init(m.size(network, state), n_steps) for _, m in mine]
        carry = ((state.neurons[name], state.receptors[name], {p: state.projections[p] for p in incoming}), accs)

        def body(carry, xs):
            (model_state, receptor_states, proj_states), accs = carry
            i, step_keys, pre_now, amounts_now, current = xs
            receptor_states, proj_states = dict(receptor_states), dict(proj_states)
            ctx = StepContext(dt=dt, step=first_step + i, spikes=dict(pre_now), signals={})

            def deliver(pname, proj):
                kinetics = pop.receptors[proj.receptor].kinetics
                proj_states[pname], receptor_states[proj.receptor] = proj.deliver(
                    proj_states[pname], receptor_states[proj.receptor], kinetics, ctx._replace(projection=pname))

            for pname, proj in incoming.items():
                if pname in amounts_now:
                    kinetics = pop.receptors[proj.receptor].kinetics
                    receptor_states[proj.receptor] = kinetics.arrive(receptor_states[proj.receptor],
                                                                     amounts_now[pname])
                elif proj.same_step:
                    deliver(pname, proj)
            t = _start_time(first_step + i, dt)
            total = sum((drive.current(pop, t, dt, step_keys[n_pop + d]) for d, drive in drives), jnp.zeros(()))
            if current is not None:
                total = total + current
            new_state, spikes, receptor_states = pop.step(model_state, receptor_states, total, dt,
                                                          key=step_keys[index])
            for d, drive in drives:
                receptor_states = drive.arrive(pop, receptor_states, dt, step_keys[n_pop + d])
            ctx.spikes[name] = spikes
            ctx = ctx._replace(potentials={name: pop.model.membrane_potential(new_state)})
            for pname, proj in incoming.items():
                if not proj.same_step:
                    deliver(pname, proj)
            accs, ys = list(accs), []
            for (_, m), k in zip(mine, range(len(accs))):
                accs[k], y = m.update(accs[k], i, model_state, new_state, spikes, dt)
                ys.append(y)
            return ((new_state, receptor_states, proj_states), accs), (spikes, ys)

        (final, accs), ys = adjoint.scan(body, carry, (steps, keys, pre_seq, at_once, current_seq), unroll=unroll)
        final = (final[0], final[1], {**final[2], **after})
        return final, accs, ys

    # ------------------------------------------------------------------------------------- fused LIF sequences
    def _fusion(self, network, network_state, name, currents, monitors, outputs, dt):
        """``(name, input projection, its amounts over the sequence or None, recurrent projection or None,
        readout or None)`` when ``name`` (and the population behind it) can run as one fused (adaptive) LIF sequence, else
        None. A ``DenseProjection`` feed runs inside the fused operation (event-driven product); any other feed
        that gives its ``sequence_amounts`` (a convolution, ...) is computed first and fed in as currents."""
        pop = network.populations[name]
        if not (fused_lif.supports(pop.model)
                and self._plain_current_population(network, name, currents, monitors, (Instant, Exponential))):
            return None
        incoming = [p for p in network.projections.values() if p.post == name]
        feeds = [p for p in incoming if p.same_step]
        loops = [p for p in incoming if not p.same_step]
        if (len(feeds) != 1 or len(loops) > 1 or not all(type(p) is DenseProjection for p in loops)
                or (loops and loops[0].bias is not None)):
            return None
        amounts = None
        if type(feeds[0]) is not DenseProjection:
            feed_name = _name_of(network, feeds[0])
            amounts = feeds[0].sequence_amounts(network_state.projections[feed_name], outputs[feeds[0].pre], dt)
            if amounts is None:
                return None
            amounts = (feed_name,) + tuple(amounts)  # (name, state after the sequence, amounts)
        names = list(network.populations)
        after = names.index(name) + 1
        readout = None
        if after < len(names) and self._may_fuse(names[after]):
            behind = names[after]
            into = [p for p in network.projections.values() if p.post == behind]
            if (type(network.populations[behind].model) is LeakyIntegrator
                    and self._plain_current_population(network, behind, currents, monitors)
                    and len(into) == 1 and type(into[0]) is DenseProjection and into[0].same_step
                    and into[0].pre == name):
                readout = (behind, into[0])
        return name, feeds[0], amounts, (loops[0] if loops else None), readout

    @staticmethod
    def _plain_current_population(network, name, currents, monitors, kinetics=(Instant,)) -> bool:
        """One current receptor with kinetics of a type in ``kinetics``, no drive, no injected current, monitors
        reading only ``v``."""
        pop = network.populations[name]
        receptors = list(pop.receptors.values())
        return (len(receptors) == 1 and type(receptors[0].kinetics) in kinetics
                and type(receptors[0].output) is CurrentOutput
                and not any(d.target == name for d in network.drives) and name not in currents
                and all(set(m.reads) <= {"v"} for m in monitors if m.population == name))

    def _run_fused(self, network, state, plan, outputs, n_steps, dt, steps, monitors, records, adjoint):
        name, feed, amounts, loop, readout = plan
        pop = network.populations[name]
        (receptor, rec), = pop.receptors.items()
        model_state = state.neurons[name]
        i0 = rec.kinetics.value(state.receptors[name][receptor], dt)  # what arrived before the sequence
        if amounts is None:
            inputs, kwargs = outputs[feed.pre], dict(dt=dt, w_in=feed.weight, b_in=feed.bias)
        else:
            inputs, kwargs = amounts[2], dict(dt=dt)
        w_rec = None if loop is None else loop.weight
        # an Exponential receptor is the kernel's synapse: G_t = G_{t-1} exp(-dt / tau) + I_t, its state G
        synaptic = type(rec.kinetics) is Exponential
        tau_syn = rec.kinetics.tau if synaptic else None
        fused_readout = r_start = None
        if readout is not None:
            behind, into = readout
            r_pop = network.populations[behind]
            (r_name, r_rec), = r_pop.receptors.items()
            r_state = state.neurons[behind]
            c_m = r_pop.model.C_m
            fused_readout = (into.weight / c_m, None if into.bias is None else into.bias / c_m, r_pop.model.tau)
            r_start = (r_state.v, r_rec.kinetics.value(state.receptors[behind][r_name], dt))

        def run_steps(carry, part):
            """The fused operation over ``part``'s steps, from the neuron state, the current already at the neurons
            and the readout's membrane and current at its start; the same carried to the next steps."""
            model_state, i_start, r_start = carry
            out = fused_lif.layer_sequence(pop.model, part, model_state.v, model_state.refractory, i_start, w_rec,
                                           readout=fused_readout, tau_syn=tau_syn,
                                           **fused_lif.adaptation_start(pop.model, model_state), **kwargs)
            refractory = _refractory_after(model_state.refractory, out.spikes, pop.model.t_ref, dt)
            new_state = fused_lif.state_after(pop.model, model_state, out, refractory)
            # the receptor then holds the last step's synaptic current, decayed (an Instant one nothing), and what
            # the last step's spikes sent through the recurrent projection
            i_next = rec.kinetics.decay(out.g[-1], dt) if synaptic else jnp.zeros_like(i_start)
            if w_rec is not None:
                i_next = i_next + event_matmul(out.spikes[-1], w_rec)
            u = out.u
            if readout is not None:
                u_start, g_start = r_start
                if not (_known_zero(u_start) and _known_zero(g_start)):  # a readout away from rest at the start
                    u = u + _readout_start(r_pop.model, u_start, g_start, u.shape[0], dt)
                r_start = (u[-1], jnp.zeros_like(g_start))
            # the carry keeps its dtypes (the op computes in the promoted dtype of its inputs)
            new = jax.tree_util.tree_map(lambda a, b: a.astype(b.dtype), (new_state, i_next, r_start), carry)
            return new, (out.spikes, out.v, u)

        # the carried current after the last chunk is the receptor's state after the run: its synaptic current
        # decayed (an Instant receptor empties) plus what the last step's spikes sent through the recurrent projection
        (final, after, _), (spikes, v, u) = adjoint.sequence(run_steps, (model_state, i0, r_start), inputs)
        result = {name: (final, {receptor: after}, spikes)}
        self._record(monitors, records, name, steps, model_state.v, v, spikes, dt)
        if readout is not None:
            zeros = jnp.zeros_like(u)
            result[behind] = (r_state._replace(v=u[-1]),
                              {r_name: r_rec.kinetics.decay(state.receptors[behind][r_name], dt)}, zeros)
            self._record(monitors, records, behind, steps, r_state.v, u, zeros, dt)
        return result

    @staticmethod
    def _record(monitors, records, name, steps, v0, v, spikes, dt):
        before = Membrane(jnp.concatenate([v0[None].astype(v.dtype), v[:-1]]))
        for j, m in enumerate(monitors):
            if m.population == name:
                records[j] = m.record_sequence(steps, before, Membrane(v), spikes, dt)


@functools.partial(jax.jit, static_argnames="dt")
def _refractory_after(refractory0, spikes, t_ref, dt):
    """The refractory counter (ms) after the sequence: ``LIF.step``'s countdown replayed over its spikes."""

    def count(r, s):
        remaining = jnp.maximum(r - dt, 0.0)
        return jnp.where(s > 0, t_ref, remaining), None

    return jax.lax.scan(count, refractory0, jax.lax.stop_gradient(spikes))[0]


def _known_zero(x) -> bool:
    """Whether ``x`` is a concrete array of zeros (an initial state built from NumPy zeros, also inside ``jit``)."""
    return not isinstance(x, jax.core.Tracer) and not np.any(np.asarray(x))


def _readout_start(model: LeakyIntegrator, u0, g0, n_steps: int, dt: float) -> Array:
    """What a leaky integrator's start adds to its membrane over the sequence (it is linear): the initial
    ``u0`` (mV) decaying, and the current ``g0`` (pA) already at it driving the first step."""
    a = jnp.exp(-dt / model.tau)
    powers = a[None] ** jnp.arange(n_steps, dtype=a.dtype)[:, None]  # a^t
    return powers * (a * u0 + (1.0 - a) * model.tau * g0 / model.C_m)


def _name_of(network: Network, projection) -> str:
    return next(p for p, proj in network.projections.items() if proj is projection)
