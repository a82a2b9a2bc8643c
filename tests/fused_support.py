"""Shared by the tests of the fused layer sequence: which fused operations a program contains."""
from __future__ import annotations

import jax

from brainsim import fused_lif


def fused_calls(fn, *args) -> list:
    """The parameters (dicts) of every fused layer sequence in the program of ``fn(*args)``, sub-programs included."""
    found = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive is fused_lif.lif_layer_p:
                found.append(eqn.params)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found
