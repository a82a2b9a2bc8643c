"""The presynaptic stages every event-driven projection shares: a subgroup of rows, short-term plasticity, and a
homogeneous transmission delay (a ring of the last ``d`` steps' presynaptic values).

In a step the presynaptic spike vector of population ``pre`` goes, in this order, through:

1. ``pre_range = (start, stop)``: only rows ``start <= i < stop`` project (a Brian2 subgroup). When no later
   stage needs the slice, the rows are read in place by the delivery (``row_offset = start``).
2. ``stp`` (``AbstractSTP``): the spikes become released fractions, scaled per presynaptic neuron.
3. ``delay`` (ms, rounded to whole steps of ``dt``): values emitted ``d = round(delay / dt)`` steps ago come
   out; this step's values go into the ring at slot ``step mod d``.
"""
from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

import equinox as eqx

from .._checks import nonnegative_number, to_steps
from .._types import Array
from ..core.contracts import AbstractSTP, StepContext
from .base import AbstractProjection


class AbstractEventDriven(AbstractProjection):
    """What the event-driven kinds share: an ELL ``operator``, an optional ``stp`` and ``pre_range``."""

    operator: eqx.AbstractVar[Any]
    stp: eqx.AbstractVar[Optional[AbstractSTP]]
    pre_range: eqx.AbstractVar[Optional[tuple]]

    @property
    def n_synapses(self) -> int:
        return self.operator.n_synapses

    @property
    def reads_signal(self) -> bool:
        return self.stp is not None and self.stp.reads_signal

    def synapse_slots(self, pairs) -> np.ndarray:
        """Flat indices into the ELL layout ``(n_pre, K)`` of the synapses ``(pre, post)`` (the first of repeated
        pairs); ``ValueError`` naming a pair that does not exist."""
        targets = np.asarray(self.operator.targets)
        slots = []
        for pre, post in pairs:
            if not 0 <= pre < targets.shape[0]:
                raise ValueError(f"projection {self.pre}->{self.post}: no presynaptic neuron {pre}")
            hit = np.nonzero(targets[pre] == post)[0]
            if hit.size == 0:
                raise ValueError(f"projection {self.pre}->{self.post}: no synapse {pre} -> {post}")
            slots.append(pre * targets.shape[1] + int(hit[0]))
        return np.asarray(slots, np.int64)


class PresynapticState(NamedTuple):
    stp: Any  # state of the projection's AbstractSTP (None without)
    ring: Optional[Array]  # (d, n_pre) values of the last d steps (None without a delay)


def delay_steps(delay: float, dt: float) -> int:
    """Whole steps of ``dt`` ms in a homogeneous delay of ``delay`` ms, rounded to the nearest step (with a warning
    when the delay is off the grid of steps); a nonzero delay that would round to no delay raises."""
    steps, off_grid = to_steps(delay, dt)
    d = int(steps)
    if delay > 0 and d == 0:
        raise ValueError(f"a delay of {delay} ms is less than half a step of dt = {dt} ms and would be no delay; "
                         f"use delay=0 or a smaller dt")
    if off_grid:
        warnings.warn(f"a delay of {delay} ms is not a whole number of steps of dt = {dt} ms; it is rounded to "
                      f"{d * dt:g} ms (the nearest step, halves up)", stacklevel=3)
    return d


def check_delay(delay, owner: str, *, per_synapse_delays: bool = False) -> float:
    """A homogeneous delay in ms (>= 0; 0 when the synapses carry per-synapse delays)."""
    delay = nonnegative_number(delay, "delay", "ms", owner)
    if delay > 0 and per_synapse_delays:
        raise ValueError(f"{owner}: per-synapse delays (DelayedEventOperator) and a homogeneous delay ({delay} ms) "
                         "cannot be combined; put it into the per-synapse delays")
    return delay


def check_pre_range(pre_range, n_rows: int, owner: str) -> Optional[tuple]:
    """``None`` or ``(start, stop)`` with integers ``0 <= start < stop`` spanning the ``n_rows`` rows of the weights."""
    if pre_range is None:
        return None
    if (not isinstance(pre_range, (tuple, list)) or len(pre_range) != 2
            or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in pre_range)):
        raise ValueError(f"{owner}: pre_range must be a pair of integers (start, stop), got {pre_range!r}")
    start, stop = int(pre_range[0]), int(pre_range[1])
    if not 0 <= start < stop or stop - start != n_rows:
        raise ValueError(f"{owner}: pre_range must be (start, stop) with 0 <= start < stop and stop - start = "
                         f"{n_rows} (the rows of the weights), got {pre_range!r}")
    return start, stop


def check_synapses(name: str, projection, populations, shape: tuple) -> None:
    """``ValueError`` when synapses of ``shape`` (n_pre, n_post) do not join ``projection.pre`` (within its
    ``pre_range``) to ``projection.post``, or its ``stp`` is sized for another number of neurons."""
    pre, post, pre_range, stp = projection.pre, projection.post, projection.pre_range, projection.stp
    n_pre = populations[pre].size
    if pre_range is not None:
        start, stop = pre_range
        if not 0 <= start < stop <= n_pre:
            raise ValueError(f"Network: projection {name!r} has pre_range {pre_range} outside "
                             f"population {pre!r} of size {n_pre}")
        n_pre = stop - start
    stp_size = None if stp is None else stp.size
    if stp_size is not None and stp_size != n_pre:
        raise ValueError(f"Network: projection {name!r} has a {type(stp).__name__} of size {stp_size} "
                         f"but {n_pre} presynaptic neurons")
    needed = (n_pre, populations[post].size)
    if tuple(shape) != needed:
        raise ValueError(f"Network: projection {name!r} has weights of shape {tuple(shape)} but {pre}->{post} "
                         f"needs {needed}")


def init_presynaptic(stp: Optional[AbstractSTP], delay: float, n_pre: int, dt: float) -> PresynapticState:
    d = delay_steps(delay, dt)
    return PresynapticState(stp=None if stp is None else stp.init(n_pre),
                            ring=jnp.zeros((d, n_pre)) if d > 0 else None)


def presynaptic_values(stp: Optional[AbstractSTP], delay: float, pre_range: Optional[tuple], state: PresynapticState,
                       spikes: Array, ctx: StepContext, *, need_rows: bool) -> tuple[PresynapticState, Array, int]:
    """``(new state, values, row_offset)``: the values to deliver this step from rows ``row_offset ..`` of
    ``values`` (``need_rows``: the caller needs exactly the projection's rows, e.g. a learning rule)."""
    d = delay_steps(delay, ctx.dt)
    have = 0 if state.ring is None else state.ring.shape[0]
    if have != d:
        raise ValueError(f"projection {ctx.projection!r}: its delay of {delay} ms is {d} steps at dt = {ctx.dt} ms, "
                         f"but its state holds {have}; initialise the state with the dt you step with")
    values, row_offset = spikes, 0
    if pre_range is not None:
        if stp is not None or d > 0 or need_rows:
            values = spikes[pre_range[0]:pre_range[1]]
        else:
            row_offset = pre_range[0]
    stp_state = state.stp
    if stp is not None:
        stp_state, values = stp.step(stp_state, values, ctx.dt, ctx.signal())
    elif ctx.signal() is not None:
        raise ValueError(f"projection {ctx.projection!r} has no component that reads a signal "
                         f"(no gliotransmitter-modulated release: its stp is None)")
    ring = state.ring
    if d > 0:  # slot (step mod d) holds the values emitted d steps ago
        slot = ctx.step % d
        values, ring = ring[slot], ring.at[slot].set(values)
    return PresynapticState(stp_state, ring), values, row_offset
