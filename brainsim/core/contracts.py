"""The written contracts between brainsim's components (Equinox's abstract/final pattern).

Every model is an immutable ``equinox.Module`` that is either abstract (declares what its kind must
provide, documented once here) or final (implements it; never subclassed). A component's dynamic state is a
``NamedTuple`` (or array) returned by its ``init`` and threaded through its ``step``; all stepping is pure.
Units everywhere: ms, mV, pA, nS, pF, µM, Hz.

One vocabulary across the kinds:

=====================  ===============================  =====================================================
kind                   ``init``                         one step of ``dt`` ms
=====================  ===============================  =====================================================
``AbstractNeuron``     ``init(*, key=None)``            ``step(state, inputs, dt, *, key=None) -> (state, spikes)``
``AbstractSource``     ``init(*, key=None)``            ``step(state, inputs, dt, *, key=None) -> (state, spikes)``
``AbstractAstrocyte``  ``init(*, key=None)``            ``step(state, inputs, dt, *, key=None) -> (state, output)``
``AbstractKinetics``   ``init(size)``                   ``decay(state, dt)``, ``arrive(state, amount)``,
                                                        ``arrive_into(state, deliver)``, ``value(state, dt)``
``AbstractOutput``     (stateless)                      ``input(g, v) -> SynapticInput``
``AbstractSTP``        ``init(size)``                   ``step(state, spikes, dt, signal=None) -> (state, released)``
``AbstractRule``       ``init_state(weights, n_pre,     ``update(...)``, ``deliver_and_update(...)``
                       n_post)``
``AbstractDrive``      (stateless)                      ``current(population, t, dt, key)``,
                                                        ``arrive(population, receptors, dt, key)``
``AbstractSignal``     (stateless)                      ``value(states) -> signal`` of the component ``target``
=====================  ===============================  =====================================================

Projections (``brainsim.projections.AbstractProjection``) compose these; ``brainsim.network.Network`` loops
over populations and projections through these methods only. Extra per-step signals (gliotransmitter,
neuromodulators, reward) reach the components that read them through ``StepContext``, never through extra
parameters of ``Network.step``.
"""
from __future__ import annotations

import abc
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Optional

import equinox as eqx
import jax.numpy as jnp

from .._types import Array, ArrayLike


class SynapticInput(NamedTuple):
    """Everything that drives a population during one step, linear in the membrane potential.

    The total input current at membrane potential ``v`` (mV) is
    ``I(v) = current + conductance_reversal - conductance * v``  (pA), i.e. the voltage-independent
    current plus the sum over conductance-based synapses of ``g_k (E_k - v)``. Keeping the
    conductance separate lets neuron models integrate it exactly (exponential Euler).
    """

    current: Array  # pA, voltage-independent current (external, current-based synapses)
    conductance: Array  # nS, total synaptic conductance  G = sum_k g_k
    conductance_reversal: Array  # pA (= nS * mV), sum_k g_k E_k

    @classmethod
    def zeros(cls, size: int) -> "SynapticInput":
        z = jnp.zeros((size,))
        return cls(z, z, z)

    @classmethod
    def from_current(cls, current: ArrayLike, size: int | None = None) -> "SynapticInput":
        """Input made of a current only (pA), broadcast to ``(size,)`` if ``size`` is given."""
        current = jnp.asarray(current, dtype=jnp.result_type(float))
        if size is not None:
            current = jnp.broadcast_to(current, (size,))
        z = jnp.zeros_like(current)
        return cls(current, z, z)

    def total_current(self, v: Array) -> Array:
        """I(v) in pA at membrane potential ``v`` (mV)."""
        return self.current + self.conductance_reversal - self.conductance * v

    def __add__(self, other: "SynapticInput") -> "SynapticInput":  # type: ignore[override]
        return SynapticInput(
            self.current + other.current,
            self.conductance + other.conductance,
            self.conductance_reversal + other.conductance_reversal,
        )


def as_input(inputs, size: int) -> SynapticInput:
    """Accept a ``SynapticInput``, ``None`` (no input) or a plain current array/scalar in pA."""
    if inputs is None:
        return SynapticInput.zeros(size)
    if isinstance(inputs, SynapticInput):
        return inputs
    return SynapticInput.from_current(inputs, size)


class StepContext(NamedTuple):
    """What a projection may read during one network step, beside its own state and its target receptor.

    ``spikes`` holds this step's output of every population (float, ``(size,)``); ``signals`` holds the
    extra inputs of this step given to ``Network.step(signals=...)``, keyed by the name of the component that
    reads them (for a projection: its own name, which ``projection`` carries while it delivers); ``potentials``
    the membrane potential (mV) of every population with one at the end of this step, for projections delivered
    after the populations stepped (gap junctions).
    """

    dt: float  # ms
    step: Array  # int32 index of this step; it starts at time step * dt ms
    spikes: Mapping[str, Array]
    signals: Mapping[str, Any]
    projection: Optional[str] = None
    potentials: Mapping[str, Any] = MappingProxyType({})

    def signal(self) -> Any:
        """The signal addressed to the projection now delivering (``None`` when it has none)."""
        return self.signals.get(self.projection) if self.projection is not None else None


# --------------------------------------------------------------------------------------------- populations
class AbstractPopulationModel(eqx.Module):
    """Anything a population is made of: ``size`` units stepped together, emitting a ``(size,)`` output.

    ``init(*, key=None)`` returns the resting state (``key`` randomises initial conditions where a model
    offers it). ``step(state, inputs, dt, *, key=None)`` advances by ``dt`` ms and returns
    ``(new_state, spikes)``, spikes a float ``(size,)`` vector (1.0 = spike; surrogate gradients pass
    through it). ``inputs`` is a ``SynapticInput`` (or a current in pA, or ``None``); ``key`` is this step's
    PRNG key for stochastic models (always given by ``Network.step``).
    """

    size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(self, *, key=None):
        ...

    @abc.abstractmethod
    def step(self, state, inputs, dt: float, *, key=None):
        ...

    @abc.abstractmethod
    def membrane_potential(self, state) -> Optional[Array]:
        """The membrane potential (mV) that receptor outputs read, or ``None`` for models without a membrane."""

    def time_constants(self) -> tuple:
        """The time constants (ms, arrays) of the model's dynamics, for ``simulate``'s check of a coarse dt; none
        declared by default."""
        return ()

    def input_filter(self) -> Optional[Array]:
        """For a model that integrates its synaptic input exactly: the time constant (ms) of the linear membrane
        that filters it. Receptors then drive a step with ``kinetics.filtered_value`` (the constant input with the
        same effect on that membrane over the step as their own time course) instead of their value at the
        step's start. ``None`` (the default): inputs are held at their value at the start of the step."""
        return None


class AbstractNeuron(AbstractPopulationModel):
    """A neuron model: its state is a ``NamedTuple`` whose field ``v`` is the membrane potential (mV), read
    by conductance-based receptors. Parameters are array leaves (trainable by default) in the units their
    docstrings give; static configuration (size, method, surrogate) is ``eqx.field(static=True)``."""

    def membrane_potential(self, state) -> Array:
        return state.v


class AbstractSource(AbstractPopulationModel):
    """A spike source without a membrane (Poisson trains, given spike times, a modulatory signal).

    Sources ignore ``inputs`` and cannot have receptors. ``replay(state, n_steps)`` may give the outputs of the
    next ``n_steps`` steps at once, ``(state after them, outputs (n_steps, size))``, for a source whose output
    depends on neither inputs nor keys (a recorded series); the default, ``None``, means "step me"."""

    def membrane_potential(self, state) -> None:
        return None

    def replay(self, state, n_steps: int):
        return None


class AbstractAstrocyte(AbstractPopulationModel):
    """A population of glial cells (astrocytes) without a membrane potential, emitting a graded output.

    ``step(state, inputs, dt, *, key=None) -> (state, output)``: ``inputs.current`` (a ``SynapticInput``, or a
    plain array) carries what arrived at its receptors in this step in the unit the model documents (summed
    spike weights, glutamate µM); ``output`` is a float ``(size,)`` signal (slow inward current in pA,
    gliotransmitter release events), read by projections of graded values (``GradedProjection``).
    Its receptors must be voltage-independent (``CurrentOutput``)."""

    def membrane_potential(self, state) -> None:
        return None


# ------------------------------------------------------------------------------------------------ synapses
class AbstractKinetics(eqx.Module):
    """Linear synaptic kinetics, one state per postsynaptic neuron ("aligned post").

    All synapses of one receptor onto a neuron share one state: arrivals of weight w (in the output's unit:
    nS for conductances, pA for currents) add to it, and between arrivals it relaxes exactly.

    - ``init(size)``: empty state for ``size`` neurons.
    - ``decay(state, dt)``: exact relaxation over ``dt`` ms.
    - ``arrive(state, amount)``: add arriving weight, ``amount`` ``(size,)``.
    - ``arrive_into(state, deliver)``: ``deliver(acc) -> (acc + arrivals, aux)`` adds this step's arrivals to
      an accumulator; kinetics whose arrival is a plain addition to their state pass the state itself (so
      event delivery writes straight into it), others pass zeros and ``arrive`` the result. Returns
      ``(new_state, aux)``.
    - ``value(state, dt)``: the conductance (nS) or current (pA) that drives this step.
    - ``filtered_value(state, dt, tau)``: the constant input with the same effect over the step on a linear
      membrane of time constant ``tau`` (ms) as the kinetics' own time course from ``state`` (exact integration,
      ``AbstractPopulationModel.input_filter``); kinetics whose value is constant over a step keep the default,
      ``value``.
    """

    @abc.abstractmethod
    def init(self, size: int):
        ...

    @abc.abstractmethod
    def decay(self, state, dt: float):
        ...

    @abc.abstractmethod
    def arrive(self, state, amount: Array):
        ...

    @abc.abstractmethod
    def arrive_into(self, state, deliver: Callable[[Array], tuple[Array, Any]]):
        ...

    @abc.abstractmethod
    def value(self, state, dt: float) -> Array:
        ...

    def filtered_value(self, state, dt: float, tau: Array) -> Array:
        return self.value(state, dt)

    def time_constants(self) -> tuple:
        """The kinetics' time constants (ms), for ``simulate``'s check of a coarse dt; none by default."""
        return ()

    def arrive_events(self, state, operator, spikes: Array, row_offset: int = 0):
        """Add ``spikes[row_offset:row_offset + n_pre] @ W`` of an event operator (``accumulate``) to the state."""
        return self.arrive_into(state, lambda acc: (operator.accumulate(acc, spikes, row_offset), None))[0]


class AbstractOutput(eqx.Module):
    """How a synaptic variable ``g`` drives the membrane: ``input(g, v) -> SynapticInput`` at potential ``v`` mV."""

    @abc.abstractmethod
    def input(self, g: Array, v: Array) -> SynapticInput:
        ...


class AbstractSTP(eqx.Module):
    """Presynaptic short-term plasticity: one state per presynaptic neuron of a projection.

    ``step(state, spikes, dt, signal=None) -> (state, released)`` relaxes over ``dt`` ms, applies this
    step's spikes and returns the weight scaling per presynaptic neuron (``spikes`` × released fraction).
    ``signal`` is the extra input addressed to the projection this step (``StepContext.signal``); models
    with ``reads_signal = False`` reject one. ``size``: the number of presynaptic neurons the model was built
    for, or ``None`` when ``init(size)`` sizes it.
    """

    reads_signal: eqx.AbstractClassVar[bool]
    size: eqx.AbstractVar[Optional[int]]

    @abc.abstractmethod
    def init(self, size: int):
        ...

    @abc.abstractmethod
    def step(self, state, spikes: Array, dt: float, signal=None):
        ...


class AbstractRule(eqx.Module):
    """A local learning rule acting on one projection's ELL weights ``(n_pre, K)`` (``brainsim.propagation``).

    - ``init_state(weights, n_pre, n_post)``: a ``NamedTuple`` whose first field ``weights`` holds the live
      weights (the projection delivers with them; they live nowhere else during a run).
    - ``update(state, targets, reverse, pre, post, dt, *, modulator=None)``: one step of learning from this
      step's delivered presynaptic spikes and postsynaptic spikes; ``reverse`` is the projection's
      ``ReverseIndex`` (or ``None`` when ``needs_reverse`` is False).
    - ``deliver_and_update(state, targets, reverse, pre, post, dt, *, modulator=None, into)``: ``(into +
      pre @ W, new state)`` with the weights before the update; rules with a fused kernel run both in one
      pass, the others call ``deliver_then_update``.
    - ``modulator``: name of the population whose output modulates the rule (``None`` for none).
    """

    needs_reverse: eqx.AbstractClassVar[bool]
    modulator: eqx.AbstractVar[Optional[str]]

    @abc.abstractmethod
    def init_state(self, weights: Array, n_pre: int, n_post: int):
        ...

    @abc.abstractmethod
    def update(self, state, targets: Array, reverse, pre_spikes: Array, post_spikes: Array, dt: float, *,
               modulator=None):
        ...

    @abc.abstractmethod
    def deliver_and_update(self, state, targets: Array, reverse, pre_spikes: Array, post_spikes: Array,
                           dt: float, *, modulator=None, into: Array):
        ...


class AbstractDrive(eqx.Module):
    """An input acting on population ``target`` every step without a presynaptic population.

    ``current(population, t, dt, key)``: current (pA, scalar or ``(size,)``) injected into the target
    ``population`` in the step starting at ``t`` ms, added to the membrane input before the population steps. ``arrive(population, receptor_states, dt, key)``: the
    target's receptor states (name -> state) after this step's arrivals, added after the receptors decayed
    (``population`` is the target ``Population``: its size and receptors). Both receive the drive's key of the
    step (the same one: a drive that draws in both splits it).
    ``check(populations)`` raises ``ValueError`` when the drive does not fit the network.
    """

    target: eqx.AbstractVar[str]

    @abc.abstractmethod
    def current(self, population, t: Array, dt: float, key):
        ...

    @abc.abstractmethod
    def arrive(self, population, receptor_states: Mapping[str, Any], dt: float, key) -> dict:
        ...

    @abc.abstractmethod
    def check(self, populations: Mapping[str, Any]) -> None:
        ...


class AbstractSignal(eqx.Module):
    """A per-step signal computed from the network's state and addressed to one component (``target``, the
    name of a projection that reads a signal), e.g. the gliotransmitter of astrocytes at the terminals of a
    tripartite projection, or a neuromodulator read by a learning rule.

    ``value(states)``: the signal of this step from ``states`` (population name -> model state at the start
    of the step, i.e. as the previous step left it). ``check(populations, projections)`` raises
    ``ValueError`` when the signal does not fit the network (called once by ``Network``).
    """

    target: eqx.AbstractVar[str]

    @abc.abstractmethod
    def value(self, states: Mapping[str, Any]) -> Any:
        ...

    @abc.abstractmethod
    def check(self, populations: Mapping[str, Any], projections: Mapping[str, Any]) -> None:
        ...
