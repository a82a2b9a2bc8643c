"""Dense (all-to-all) learnable projection, as machine-learning layers use: ``spikes @ W (+ b)`` into a receptor.

The product is ``brainsim.event_matmul`` (it visits only the nonzero inputs, forward and in the weight gradient).
With ``same_step=True`` the projection delivers the presynaptic output of the *same* step, before the
postsynaptic population steps (the snnTorch/Spyx convention of feed-forward layers: an input at step t drives
the layer at step t); otherwise it delivers at the end of the step like every other projection (Brian2's order:
the effect is seen from step t+1).
"""
from __future__ import annotations

from typing import Optional

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_finite
from .._types import Array
from ..core.contracts import AbstractKinetics, StepContext
from ..event_matmul import event_matmul
from .base import AbstractProjection


class DenseProjection(AbstractProjection):
    """All-to-all synapses ``pre -> post.receptor`` with weights ``weight`` ``(n_pre, n_post)`` (nS or pA).

    Args:
        pre, post, receptor: names in the network.
        weight: ``(n_pre, n_post)`` weights; ``bias``: optional ``(n_post,)`` amount added every step.
        same_step: deliver this step's presynaptic output before ``post`` steps (``pre`` must come before
            ``post`` in the network's populations).
    """

    weight: Array
    bias: Optional[Array]
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    same_step: bool = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, weight, *, bias=None, same_step: bool = False):
        self.pre, self.post, self.receptor, self.same_step = pre, post, receptor, bool(same_step)
        owner = f"DenseProjection {pre}->{post}"
        check_finite(weight, "weight", owner)  # concrete weights only: traced ones (training) pass
        if bias is not None:
            check_finite(bias, "bias", owner)
        self.weight = jnp.asarray(weight, jnp.result_type(float))
        if self.weight.ndim != 2:
            raise ValueError(f"DenseProjection {pre}->{post}: weight must be (n_pre, n_post), got {self.weight.shape}")
        self.bias = None if bias is None else jnp.asarray(bias, self.weight.dtype)
        if self.bias is not None and self.bias.shape != (self.weight.shape[1],):
            raise ValueError(f"DenseProjection {pre}->{post}: bias must have shape ({self.weight.shape[1]},), "
                             f"got {self.bias.shape}")

    @property
    def n_synapses(self) -> int:
        return int(self.weight.size)

    @property
    def reads_signal(self) -> bool:
        return False

    def check(self, name, populations) -> None:
        needed = (populations[self.pre].size, populations[self.post].size)
        if self.weight.shape != needed:
            raise ValueError(f"Network: projection {name!r} has weights of shape {self.weight.shape} but "
                             f"{self.pre}->{self.post} needs {needed}")

    def init(self, dt: float):
        return None

    def _amounts(self, pre_output):
        amount = event_matmul(pre_output, self.weight)
        return amount if self.bias is None else amount + self.bias

    def deliver(self, state, target, kinetics: AbstractKinetics, ctx: StepContext):
        return state, kinetics.arrive(target, self._amounts(ctx.spikes[self.pre]))

    def sequence_amounts(self, state, pre_outputs, dt: float):
        return (state, self._amounts(pre_outputs)) if self.same_step else None
