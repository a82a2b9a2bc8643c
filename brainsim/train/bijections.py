"""Constrained parameters (re-exported from ``brainsim.core.parameters``, where every model can use them)."""
from ..core.parameters import (Bijection, Bounded, Buffer, Constrained, DaleSign, Exp, Identity, Positive,  # noqa: F401
                               constrain, freeze, resolve, trainable)
