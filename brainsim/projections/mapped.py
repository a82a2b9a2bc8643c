"""A projection through any differentiable map of the presynaptic output: convolutions, pooling, chains of them.

``amount = synapses(output of pre)`` into ``post.receptor`` every step (pA or nS per unit of presynaptic
output), where ``synapses`` is a module mapping ``(..., n_pre) -> (..., n_post)`` (leading axes are time and
batch; e.g. ``brainsim.train.Conv2d`` reads the flat vector as channels x height x width). It keeps no state, so
within the step (``same_step``) its amounts over a whole sequence are one batched call (``sequence_amounts``).
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array
from ..core.contracts import AbstractKinetics, StepContext
from .base import AbstractProjection


class MappedProjection(AbstractProjection):
    """Synapses ``pre -> post.receptor`` given by a map ``synapses`` of the presynaptic output.

    Args:
        pre, post, receptor: names in the network.
        synapses: an Equinox module mapping ``(..., n_pre)`` to ``(..., n_post)`` (e.g. a
            ``brainsim.train.maps`` map); its arrays are the projection's parameters (learnable like weights).
        same_step: deliver this step's presynaptic output before ``post`` steps (the order of feed-forward
            layers); otherwise at the end of the step like every other projection.
    """

    synapses: eqx.Module
    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    receptor: str = eqx.field(static=True)
    same_step: bool = eqx.field(static=True)

    def __init__(self, pre: str, post: str, receptor: str, synapses, *, same_step: bool = False):
        if not callable(synapses):
            raise TypeError(f"MappedProjection {pre}->{post}: synapses must be callable (a module mapping "
                            f"(..., n_pre) to (..., n_post)), got {type(synapses).__name__}")
        self.pre, self.post, self.receptor, self.same_step = pre, post, receptor, bool(same_step)
        self.synapses = synapses

    @property
    def n_synapses(self) -> int:  # the map's parameters (a convolution shares its kernel between synapses)
        return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(eqx.filter(self.synapses, eqx.is_array))))

    @property
    def reads_signal(self) -> bool:
        return False

    def check(self, name, populations) -> None:
        n_pre, n_post = populations[self.pre].size, populations[self.post].size
        try:
            out = jax.eval_shape(self.synapses, jax.ShapeDtypeStruct((n_pre,), jnp.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"Network: projection {name!r} cannot map the {n_pre} outputs of {self.pre!r}: "
                             f"{err}") from None
        if out.shape != (n_post,):
            raise ValueError(f"Network: projection {name!r} maps {n_pre} outputs of {self.pre!r} to shape "
                             f"{out.shape}, but {self.post!r} has {n_post} neurons")

    def init(self, dt: float):
        return None

    def deliver(self, state, target, kinetics: AbstractKinetics, ctx: StepContext):
        return state, kinetics.arrive(target, self.synapses(ctx.spikes[self.pre]))

    def sequence_amounts(self, state, pre_outputs: Array, dt: float):
        return (state, self.synapses(pre_outputs)) if self.same_step else None
