"""Shared array type aliases.

Arrays carry the population axis only; trials, batches and sweeps come from ``jax.vmap``.
"""
from typing import Union

import jax
import numpy as np

Array = jax.Array
ArrayLike = Union[jax.Array, np.ndarray, float, int]
PRNGKey = jax.Array
