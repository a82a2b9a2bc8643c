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
        arr = np.asarray(values, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"Signal: values must have shape (n_steps,) or (n_steps, size), got {np.shape(values)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("Signal: values contain NaN or infinite values")
        self.values = jnp.asarray(arr)
        self.size = int(arr.shape[1])

    def init(self, *, key=None) -> SignalState:
        return SignalState(step=jnp.zeros((), jnp.int32))

    def step(self, state: SignalState, inputs, dt: float, *, key=None):
        n = self.values.shape[0]
        row = jax.lax.dynamic_index_in_dim(self.values, jnp.minimum(state.step, n - 1), keepdims=False)
        return SignalState(step=state.step + 1), jnp.where(state.step < n, row, 0.0)
