"""One population step (receptor input, model step, receptor decay), with a native fast path for LIF populations
with exponential or one-step (instant, delta) receptors.

``step`` is what ``Population.step`` runs; it picks the native kernel when ``applicable`` and the pure path
(``reference_step``) otherwise. The fast path serves only ``LIF`` (exponential Euler, exact or forward Euler) with
``Exponential``, ``Instant`` or ``Delta`` receptors (the last two: decay factor 0) and current/conductance outputs;
every other population takes the pure path.

For such a population, one step is: the summed receptor input, the LIF membrane update (exponential
or forward Euler), threshold and reset, and the decay of every receptor. XLA compiles these into several loops
over the neurons, each re-reading the state. On CPU, ``population_step`` runs them as one in-place
native pass (``brainsim/_kernels/population.cc``) instead. The result is the same computation as
the pure-JAX code below (which is ``Network.step``'s own code path); the exponential of the native
kernel is a polynomial accurate to about 1e-7 relative, so trajectories agree to float rounding.

Differentiation and non-CPU platforms use the pure path: ``population_step`` is a ``custom_jvp``
whose JVP is that of the pure computation, and ``lax.platform_dependent`` picks the kernel only when
compiling for CPU.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import _kernels
from .neurons import LIF
from .core.contracts import SynapticInput
from .synapses.kinetics import AbstractOneStep, Exponential
from .synapses.outputs import ConductanceOutput, CurrentOutput
import numpy as np


# Native binding: the one-pass population step (brainsim/_kernels/population.cc).
_POPULATION_TARGET = "brainsim_lif_population_step"
_POPULATION = _kernels.NativeLibrary(_kernels.KERNEL_DIR / "population.cc",
                                     {_POPULATION_TARGET: "BrainsimLifPopulationStep"},
                                     {"BrainsimLifParamOrder": ",".join(_kernels.LIF_PARAM_ORDER)})


def population_available() -> bool:
    """Whether the fused LIF-population step kernel is compiled and registered (compiles it on first call)."""
    return _POPULATION.available()


def lif_population_step_native(v, ref, p, r, i_ext, gs, *, dt: float, subtract: bool, euler: bool):
    """One in-place step of a LIF population with exponential receptors (see ``population.cc``).

    Returns ``(v, refractory, spikes, [g_k after decay])``.
    """
    n = len(gs)
    out = jax.ShapeDtypeStruct(v.shape, jnp.float32)
    aliases = {0: 0, 1: 1, **{5 + k: 3 + k for k in range(n)}}
    results = jax.ffi.ffi_call(_POPULATION_TARGET, (out,) * (3 + n), input_output_aliases=aliases,
                               vmap_method="sequential")(v, ref, p, r, i_ext, *gs, dt=np.float32(dt),
                                                         subtract=np.int64(subtract), euler=np.int64(euler))
    return results[0], results[1], results[2], list(results[3:])



_PARAMS = _kernels.LIF_PARAM_ORDER  # rows of the kernel's parameter array, checked against it at load
_MAX_RECEPTORS = 8


def applicable(model, receptors) -> bool:
    """Whether ``population_step`` has a native kernel for this population (else callers use the pure path)."""
    return (type(model) is LIF and model.method in ("exp_euler", "euler", "exact") and len(receptors) <= _MAX_RECEPTORS
            and (model.method != "exact" or jnp.ndim(model.tau_m) == 0)  # (one filtered drive per receptor)
            and all((isinstance(rec.kinetics, AbstractOneStep)
                     or (type(rec.kinetics) is Exponential and jnp.ndim(rec.kinetics.tau) == 0))
                    and type(rec.output) in (ConductanceOutput, CurrentOutput) for rec in receptors.values())
            and population_available())


def step(model, receptors, neuron_state, receptor_states, extra_current, dt, *, key=None):
    """``(model state, spikes, decayed receptor states)`` of one population step (native when ``applicable``)."""
    if applicable(model, receptors):
        return population_step(model, receptors, neuron_state, receptor_states, extra_current, dt)
    return reference_step(model, receptors, neuron_state, receptor_states, extra_current, dt, key=key)


def reference_step(model, receptors, neuron_state, receptor_states, extra_current, dt, *, key=None):
    """One population step in pure JAX: summed receptor input, ``model.step``, receptor decay.

    Receptor outputs read the model's membrane potential (``None`` for models without one, whose receptors are
    voltage-independent)."""
    total = SynapticInput.zeros(model.size)
    v = model.membrane_potential(neuron_state) if receptors else None
    tau = model.input_filter()  # exact integration: receptors report their step's effect on that membrane
    for name, rec in receptors.items():
        state = receptor_states[name]
        g = rec.kinetics.value(state, dt) if tau is None else rec.kinetics.filtered_value(state, dt, tau)
        total = total + rec.output.input(g, v)
    total = total._replace(current=total.current + extra_current)
    neuron_state, spikes = model.step(neuron_state, total, dt, key=key)
    decayed = {name: rec.kinetics.decay(receptor_states[name], dt) for name, rec in receptors.items()}
    return neuron_state, spikes, decayed


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def population_step(model, receptors, neuron_state, receptor_states, extra_current, dt):
    """One step of a LIF population with exponential receptors: ``(neuron_state, spikes, decayed receptors)``.

    Same contract as ``reference_step``; requires ``applicable(model, receptors)``.
    """
    args = (model, receptors, neuron_state, receptor_states, extra_current)
    all_float32 = all(jnp.asarray(x).dtype == jnp.float32 for x in jax.tree_util.tree_leaves(args))
    return _kernels.cpu_or_pure(functools.partial(_native_step, dt=dt), lambda *a: reference_step(*a, dt), *args,
                                usable=all_float32 and population_available())


@population_step.defjvp
def _population_step_jvp(dt, primals, tangents):
    _, t_out = jax.jvp(lambda *a: reference_step(*a, dt), primals, tangents)
    # the primal output is the step's own (the native kernel's where it runs): the reference's would differ from
    # it under vmap in which outputs carry a batch axis (an Instant receptor's decay is a constant in the
    # reference, a batched array from the kernel), which vmap of grad of a scan over the step does not accept
    return population_step(*primals, dt), t_out


def _native_step(model, receptors, neuron_state, receptor_states, extra_current, *, dt):
    n = model.size
    values = [jnp.asarray(model.refractory_hold(dt) if name == "t_ref" else getattr(model, name), jnp.float32)
              for name in _PARAMS]
    width = 1 if all(x.size == 1 for x in values) else n
    params = jnp.stack([jnp.broadcast_to(x.reshape(-1) if x.size == 1 else x, (width,)) for x in values])
    names = list(receptors)
    tau = model.input_filter()
    rows = []
    for name in names:
        rec = receptors[name]
        # the same expression as Exponential.decay; one-step kinetics (Instant, Delta) hold an arrival for one step
        decay = jnp.float32(0.0) if isinstance(rec.kinetics, AbstractOneStep) else jnp.exp(-dt / rec.kinetics.tau)
        # what one unit of state drives the step with (1, or 1/dt for a Delta charge), membrane-filtered when exact
        unit = jnp.ones((), jnp.float32)
        drive = rec.kinetics.filtered_value(unit, dt, tau) if tau is not None else rec.kinetics.value(unit, dt)
        if isinstance(rec.output, ConductanceOutput):
            rows.append(jnp.stack([decay, rec.output.E_rev, jnp.float32(1.0), drive]))
        else:
            rows.append(jnp.stack([decay, jnp.float32(0.0), jnp.float32(0.0), drive]))
    table = jnp.stack(rows).astype(jnp.float32) if rows else jnp.zeros((0, 4), jnp.float32)
    extra = jnp.asarray(extra_current, jnp.float32)
    extra = extra.reshape(-1) if extra.size in (1, n) else jnp.broadcast_to(extra, (n,))
    v, ref, spikes, decayed = lif_population_step_native(
        neuron_state.v, neuron_state.refractory, params, table, extra, [receptor_states[r] for r in names],
        dt=dt, subtract=model.reset == "subtract", euler=model.method == "euler")
    return neuron_state._replace(v=v, refractory=ref), spikes, dict(zip(names, decayed))
