"""Multi-rate stepping: a slow model (astrocytes, 1–50 ms) inside a fast loop (neurons, e.g. 0.1 ms).

``MultiRate(model, every=k)`` is itself a model with the common contract, stepped at the fast ``dt``:
it accumulates the fast inputs and advances the wrapped model once every ``k`` fast steps by
``k * dt`` (inside ``lax.cond``, so the slow model costs nothing on the other k - 1 steps); between slow
steps its output is held (zero-order hold). Inputs are combined per slow step by ``reduce``:

* ``"sum"`` for event inputs (spike weights arriving at the astrocyte, NEST ``astrocyte_lr_1994``): the slow
  step receives every spike of its window, applied at the end of the window as NEST applies spikes at
  the end of a step;
* ``"mean"`` for concentration-like inputs (synaptic glutamate seen by a ``GChI``), held constant over the
  slow step.

Exactness: the result is *identical* (same floating-point operations) to stepping the wrapped model
alone at ``k * dt`` with the binned inputs; ``run_multirate`` does the same with a nested ``lax.scan``
(outer over slow steps, inner reduction over fast steps), the most efficient form when the fast inputs
are known in advance.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice
from .._types import Array
from ..core.contracts import AbstractAstrocyte, as_input


class MultiRateState(NamedTuple):
    """The wrapped model's state with the window's bookkeeping. The wrapped model's variables read through it
    (``state.Ca`` is ``state.inner.Ca``), so monitors and signals name them as for the model alone."""

    inner: Any  # state of the wrapped (slow) model
    acc: Array  # inputs accumulated in the current slow window, shape (size,)
    phase: Array  # fast steps done in the current window (int32 scalar)
    output: Array  # output of the last slow step (held), shape (size,)

    def __getattr__(self, name: str):  # only called for names that are not fields of this state
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)


class MultiRate(AbstractAstrocyte):
    """Step ``model`` (an ``AbstractAstrocyte``) once every ``every`` fast steps (see module docstring)."""

    model: AbstractAstrocyte
    every: int = eqx.field(static=True)
    reduce: str = eqx.field(static=True)

    def __init__(self, model, every: int, *, reduce: str = "sum"):
        if not isinstance(model, AbstractAstrocyte):
            raise TypeError(f"MultiRate: model must be an astrocyte model (AbstractAstrocyte), got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"MultiRate: every must be a positive integer number of fast steps, got {every!r}")
        self.model, self.every = model, every
        self.reduce = check_choice(reduce, ("sum", "mean"), "reduce", "MultiRate")

    @classmethod
    def from_dt(cls, model, dt_fast: float, dt_slow: float, **kwargs) -> "MultiRate":
        """Build from step sizes (ms); ``dt_slow`` must be a whole multiple of ``dt_fast``."""
        k = dt_slow / dt_fast
        if dt_fast <= 0 or dt_slow <= 0 or abs(k - round(k)) > 1e-6 * k:
            raise ValueError(f"MultiRate: dt_slow ({dt_slow} ms) must be a positive whole multiple of dt_fast "
                             f"({dt_fast} ms)")
        return cls(model, int(round(k)), **kwargs)

    @property
    def size(self) -> int:
        return self.model.size

    def init(self, *, key=None, **kwargs) -> MultiRateState:
        inner = self.model.init(key=key, **kwargs)
        z = jnp.zeros((self.model.size,))
        return MultiRateState(inner, z, jnp.zeros((), jnp.int32), z)

    def step(self, state: MultiRateState, inputs, dt: float, **kwargs):
        """One fast step of ``dt`` ms (``inputs``: array, ``SynapticInput`` or None). Returns ``(state, held
        output)``."""
        x = as_input(inputs, self.model.size).current
        acc = state.acc + x
        phase = state.phase + 1

        def slow(_):
            drive = acc / self.every if self.reduce == "mean" else acc
            inner, out = self.model.step(state.inner, drive, dt * self.every, **kwargs)
            return inner, jnp.zeros_like(acc), jnp.zeros_like(phase), out.astype(state.output.dtype)

        def hold(_):
            return state.inner, acc, phase, state.output

        inner, acc, phase, out = jax.lax.cond(phase >= self.every, slow, hold, None)
        return MultiRateState(inner, acc, phase, out), out


def run_multirate(model, state, inputs: Array, dt: float, every: int, *, reduce: str = "sum"):
    """Run ``model`` at ``every * dt`` over fast inputs ``(n_fast, size)`` (n_fast a multiple of ``every``).

    Returns ``(final_state, outputs (n_fast // every, size), states (n_fast // every, ...))``.
    """
    n_fast = inputs.shape[0]
    if n_fast % every:
        raise ValueError(f"run_multirate: {n_fast} fast steps is not a multiple of every={every}")
    binned = inputs.reshape(n_fast // every, every, *inputs.shape[1:])
    binned = binned.mean(axis=1) if reduce == "mean" else binned.sum(axis=1)

    def body(s, x):
        s, out = model.step(s, x, dt * every)
        return s, (out, s)

    state, (outs, states) = jax.lax.scan(body, state, binned)
    return state, outs, states
