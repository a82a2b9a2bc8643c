"""Small helpers shared by brainsim's own JAX primitives (``event_matmul``, ``fused_lif``)."""
from __future__ import annotations

import jax
from jax.interpreters import ad, mlir


def register(primitive, impl, static_argnames: tuple, multiple_results: bool = False) -> None:
    """Give ``primitive`` its evaluation rules from one JAX function ``impl(*args, **params)``: lowered
    into the surrounding computation under ``jit``, and through a cached jitted ``impl`` when called
    eagerly (``static_argnames``: the primitive's parameters)."""
    jitted = jax.jit(impl, static_argnames=static_argnames)
    primitive.def_impl(lambda *args, **params: jitted(*args, **params))
    mlir.register_lowering(primitive, mlir.lower_fun(impl, multiple_results=multiple_results))


def zero_tangent(value):
    """The symbolic zero tangent of ``value``."""
    return ad.Zero(jax.typeof(value).to_tangent_aval())
