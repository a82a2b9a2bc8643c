"""Neuromodulatory signals as ordinary populations.

``Signal`` replays a given time series (reward, dopamine release, error, attention) as the output of a
spike-source-like population, so a rule with ``modulator="reward"`` reads it every step like spikes.
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite
from .._types import Array
from ..core.contracts import AbstractSource


class SignalState(NamedTuple):
    step: Array  # index of the next step (int32 scalar)


class Signal(AbstractSource):
    """Emits ``values[step]`` (shape ``(size,)``) at every step; zero after the end of the series.

    Args:
        values: ``(n_steps,)`` or ``(n_steps, size)`` array, one row per step of dt (any unit: µM of
            dopamine released, reward, error in the readout's unit).
    """

    values: Array
    size: int = eqx.field(static=True)

    def __init__(self, values):
        arr = jnp.asarray(values, dtype=jnp.result_type(float))
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"Signal: values must have shape (n_steps,) or (n_steps, size), got {jnp.shape(values)}")
        check_finite(arr, "values", "Signal")  # (traced values, e.g. a batch inside jit, pass unchecked)
        self.values = arr
        self.size = int(arr.shape[1])

    def init(self, *, key=None) -> SignalState:
        return SignalState(step=np.zeros((), np.int32))  # known when traced: replay reads the series statically

    def step(self, state: SignalState, inputs, dt: float, *, key=None):
        n = self.values.shape[0]
        row = jax.lax.dynamic_index_in_dim(self.values, jnp.minimum(state.step, n - 1), keepdims=False)
        return SignalState(step=state.step + 1), jnp.where(state.step < n, row, 0.0)

    def replay(self, state: SignalState, n_steps: int):
        n = self.values.shape[0]
        if not isinstance(state.step, jax.core.Tracer):  # a known start: static rows (the series itself from 0)
            first = int(state.step)
            rows = self.values[first:first + n_steps]
            if rows.shape[0] < n_steps:
                rows = jnp.concatenate([rows, jnp.zeros((n_steps - rows.shape[0], self.size), rows.dtype)])
        else:
            padded = jnp.concatenate([self.values, jnp.zeros((n_steps, self.size), self.values.dtype)])
            rows = jax.lax.dynamic_slice_in_dim(padded, jnp.minimum(state.step, n), n_steps)
        return SignalState(step=state.step + n_steps), rows
