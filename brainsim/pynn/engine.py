"""One PyNN ``run``: build the brainsim ``Network`` from the registered PyNN objects, continue the simulation from
the carried state for ``n_steps`` steps of ``dt`` ms, and hand the records to the PyNN recorders.

Unit conversion happens here and in ``cells``: PyNN weights (nA or uS) x ``weight_scale`` -> pA or nS, currents
nA -> pA, delays ms (rounded to whole steps).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import brainsim as bs
from brainsim.inputs import SpikeTimesState
from brainsim.projections import PlasticState

CHUNK_STEPS = 2000  # compiled chunk length: runs of different lengths reuse the compiled chunk


def _is_source(pop) -> bool:
    return not pop.celltype.injectable  # PyNN's mark of spike sources


def _source_model(pop, params, t0, t1, dt, rng):
    """``bs.SpikeTimes`` replaying the source's spikes of (t0, t1]: a spike at t is emitted in step
    round(t/dt) - 1, so that its reported time (end of that step) is t."""
    times, idx = pop.celltype.events(params, pop.size, t0, t1, dt, rng)
    steps = np.rint(np.asarray(times) / dt).astype(np.int64) - 1
    keep = steps >= 0
    steps, idx = steps[keep], np.asarray(idx)[keep]
    if len(steps):
        steps, idx = np.unique(np.stack([steps, idx]), axis=1)  # one spike per neuron and step
    return bs.SpikeTimes(pop.size, steps * dt, idx, dt)


def build_network(state, n_steps):
    """``(network, {pyNN population: name})`` for the run of ``n_steps`` steps from ``state.t``."""
    dt, t0 = state.dt, state.t
    t1 = t0 + n_steps * dt
    populations, names = {}, {}
    for k, pop in enumerate(state.populations):
        name = f"p{k}"
        names[pop] = name
        params = pop._native_values()
        if _is_source(pop):
            rng = np.random.default_rng([state.seed, k, state.step])
            populations[name] = bs.Population(_source_model(pop, params, t0, t1, dt, rng))
        else:
            model, receptors = pop.celltype.brainsim_model(params, pop.size)
            populations[name] = bs.Population(model, receptors)
    projections = {}
    for k, prj in enumerate(state.projections):
        projections.update(prj._brainsim_projections(f"c{k}", names, state))
    return bs.Network(populations, projections), names


def initial_model_state(model, pop, mask=None, current=None):
    """The model state of ``pop`` from its PyNN initial values (all neurons), or ``current`` with those neurons
    whose initial value was set since the last run (``mask`` per variable) overwritten."""
    init_map = getattr(pop.celltype, "init_map", {})
    values = {field: np.asarray(pop._init_values[var], np.float64) * scale
              for var, (field, scale) in init_map.items() if var in pop._init_values}
    if current is None:
        try:
            return model.init(**{f: jnp.asarray(v, jnp.float32) for f, v in values.items()})
        except TypeError:
            return model.init(v=jnp.asarray(values["v"], jnp.float32)) if "v" in values else model.init()
    updates = {}
    for var, (field, scale) in init_map.items():
        m = pop._dirty.get(var)
        if m is not None and m.any() and field in current._fields:
            updates[field] = jnp.where(jnp.asarray(m), jnp.asarray(values[field], jnp.float32), getattr(current, field))
    return current._replace(**updates) if updates else current


def _same_shapes(a, b) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.shape(x) == np.shape(y) for x, y in zip(la, lb))


def carry_state(state, net, names):
    """The network state to start this run from: the previous run's where the structure still fits, fresh
    (from PyNN initial values) elsewhere; spike sources restart their event list at the current step."""
    fresh = net.init(state.dt)
    old = state.net_state
    neurons, receptors, projections = {}, {}, {}
    for pop, name in names.items():
        bpop = net.populations[name]
        if _is_source(pop):
            neurons[name] = SpikeTimesState(step=jnp.asarray(state.step, jnp.int32), cursor=jnp.zeros((), jnp.int32))
            receptors[name] = fresh.receptors[name]
            continue
        if old is not None and name in old.neurons and _same_shapes(old.neurons[name], fresh.neurons[name]):
            neurons[name] = initial_model_state(bpop.model, pop, current=old.neurons[name])
            keep = _same_shapes(old.receptors[name], fresh.receptors[name])
            receptors[name] = old.receptors[name] if keep else fresh.receptors[name]
        else:
            neurons[name] = initial_model_state(bpop.model, pop)
            receptors[name] = fresh.receptors[name]
        pop._dirty.clear()
    for name, s in fresh.projections.items():
        prev = None if old is None else old.projections.get(name)
        if isinstance(prev, PlasticState) and _same_shapes(prev, s):
            # traces go on; weights are the connections' (learned, or set by the script since)
            prev = prev._replace(rule=prev.rule._replace(weights=s.rule.weights))
        projections[name] = prev if prev is not None and _same_shapes(prev, s) else s
    return bs.NetworkState(step=jnp.asarray(state.step, jnp.int32), neurons=neurons, receptors=receptors,
                           projections=projections)


def build_currents(state, names, n_steps):
    """Injected current (pA) per step for every neuron population: i_offset and the current sources."""
    dt = state.dt
    times = (state.step + np.arange(n_steps)) * dt  # start of each step, ms
    currents = {}
    for pop, name in names.items():
        if _is_source(pop):
            continue
        p = pop._native_values()
        if "i_offset" in p and np.any(np.asarray(p["i_offset"]) != 0):
            currents[name] = np.broadcast_to(np.asarray(p["i_offset"], np.float64) * 1000.0,
                                             (n_steps, pop.size)).copy()
    for src in state.current_sources:
        amp = src._amplitudes(times, dt, state)  # nA per step
        src._store(times, amp)
        if not np.any(amp):
            continue
        for pop, idx, _ in state.population_of(src._target_ids):
            name = names[pop]
            arr = currents.setdefault(name, np.zeros((n_steps, pop.size)))
            np.add.at(arr, (slice(None), idx), amp[:, None] * 1000.0)
    return {k: v.astype(np.float32) for k, v in currents.items()}


def advance(state, n_steps: int) -> None:
    """Simulate ``n_steps`` steps from the current state and record."""
    net, names = build_network(state, n_steps)
    net_state = carry_state(state, net, names)
    monitors, wanted = [], []
    for pop, name in names.items():
        rec = pop.recorder
        variables = {v.name for v, ids in rec.recorded.items() if ids}
        if "spikes" in variables:
            monitors.append(bs.SpikeMonitor(name))
        for var in sorted(variables - {"spikes"}):
            field, _ = pop.celltype.record_map[var]
            monitors.append(bs.StateMonitor(name, field))
            wanted.append((pop, name, var, field))
    currents = build_currents(state, names, n_steps)
    result = bs.simulate(net, n_steps * state.dt, state.dt, key=jax.random.key(state.seed), state=net_state,
                         monitors=monitors, currents=currents, chunk_steps=CHUNK_STEPS, progress=False)
    first = state.step
    state.net_state, state.net = result.state, net
    for prj in state.projections:
        prj._read_learned(net, result.state)
    state.step += n_steps
    for pop, name in names.items():
        if name in result.spikes:
            tr = result.spikes[name]
            steps = np.rint(np.asarray(tr.times) / state.dt)  # spike time = end of its step, on the ms grid
            pop.recorder._store_spikes(np.round((steps + 1) * state.dt, 9), np.asarray(tr.indices))
    for pop, name, var, field in wanted:
        _, values = result.traces[f"{name}.{field}"]
        pop.recorder._store_signal(var, first, np.asarray(values), _final_value(net, result.state, name, field,
                                                                                  state.dt))


def _final_value(net, net_state, name, field, dt):
    """Value of ``field`` (state variable or receptor) of population ``name`` at the end of the run."""
    s = net_state.neurons[name]
    if field in getattr(s, "_fields", ()):
        return np.asarray(getattr(s, field))
    kinetics = net.populations[name].receptors[field].kinetics
    return np.asarray(kinetics.value(net_state.receptors[name][field], dt))
