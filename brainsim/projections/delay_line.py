"""A dense projection with a learnable delay per synapse (``brainsim.delays.DelayedDense``), as a network projection.

Each step it delivers ``y_t = sum_k x_{t-k} K_k`` into ``post.receptor``, with ``K`` the ``DelayedDense`` kernel
``(max_delay + 1, n_pre, n_post)`` (weight times a Gaussian interpolation of the delay over the taps ``k``, width
``sigma`` steps, or one-hot at the rounded delay with ``hard=True``; pA or nS per presynaptic spike). Its state is
the delay line: the last ``max_delay`` presynaptic outputs. Over a whole sequence the same amounts are one causal
convolution (``sequence_amounts``), which ``LayerByLayer`` (``Sequential``'s full mode) uses.
"""
from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._types import Array
from ..core.contracts import AbstractKinetics, StepContext
from ..delays import DelayedDense
from .base import AbstractProjection


class DelayLineProjection(AbstractProjection):
    """Synapses ``pre -> post.receptor`` with learnable per-synapse delays (module docstring).

    Args:
        pre, post, receptor: names in the network.
        synapses: a ``DelayedDense`` (weights ``(n_pre, n_post)``, delays up to ``max_delay`` steps).
        sigma: width of the delays' interpolation, steps (anneal it towards 0 while training, DCLS-style).
        hard: deliver at the rounded delays only (the event-driven equivalent's delays).
        same_step: an output of ``pre`` reaches ``post`` in its own step at delay 0 (the order of feed-forward
            layers); otherwise delivered at the end of the step like other projections.
    """

    synapses: DelayedDense
    sigma: float = eqx.field(static=True)
    hard: bool = eqx.field(static=True)
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    same_step: bool = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, synapses: DelayedDense, *, sigma: float = 1.0,
                 hard: bool = False, same_step: bool = False):
        if not isinstance(synapses, DelayedDense):
            raise TypeError(f"DelayLineProjection {pre}->{post}: synapses must be a DelayedDense, got "
                            f"{type(synapses).__name__}")
        if not (isinstance(sigma, (int, float)) and sigma > 0):
            raise ValueError(f"DelayLineProjection {pre}->{post}: sigma must be > 0 steps, got {sigma!r}")
        self.pre, self.post, self.receptor, self.same_step = pre, post, receptor, bool(same_step)
        self.synapses, self.sigma, self.hard = synapses, float(sigma), bool(hard)

    @property
    def n_synapses(self) -> int:
        return self.synapses.n_in * self.synapses.n_out

    @property
    def reads_signal(self) -> bool:
        return False

    def check(self, name, populations) -> None:
        needed = (populations[self.pre].size, populations[self.post].size)
        if (self.synapses.n_in, self.synapses.n_out) != needed:
            raise ValueError(f"Network: projection {name!r} has {self.synapses.n_in} x {self.synapses.n_out} "
                             f"synapses but {self.pre}->{self.post} needs {needed[0]} x {needed[1]}")

    def init(self, dt: float) -> Array:
        return jnp.zeros((self.synapses.max_delay, self.synapses.n_in))  # oldest first

    def deliver(self, history: Array, target, kinetics: AbstractKinetics, ctx: StepContext):
        window = jnp.concatenate([history, ctx.spikes[self.pre][None].astype(history.dtype)])  # (D + 1, n_pre)
        kernel = self.synapses.kernel(self.sigma, hard=self.hard)  # (D + 1, n_pre, n_post), tap k = delay k
        amount = jnp.einsum("kn,kno->o", window[::-1], kernel)
        return window[1:], kinetics.arrive(target, amount)

    def sequence_amounts(self, history: Array, pre_outputs: Array, dt: float):
        if not self.same_step:
            return None
        full = jnp.concatenate([history, pre_outputs.astype(history.dtype)])  # the line, then the sequence
        amounts = self.synapses(full, self.sigma, hard=self.hard)[history.shape[0]:]
        return full[full.shape[0] - history.shape[0]:], amounts
