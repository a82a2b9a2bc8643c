"""``FrozenDict``: the read-only name -> component mappings of networks and populations.

A ``dict`` whose items cannot be set or deleted after construction (``net.populations["E"] = ...`` raises), so
that a network cannot be changed past its checks; edit a network with ``brainsim.with_params`` (parameters) or by
building a new one. A JAX pytree node keeping its insertion order (which is meaningful: populations step in it).
"""
from __future__ import annotations

import jax


class FrozenDict(dict):
    """A read-only ``dict`` (see the module docstring)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("this mapping is read-only: networks are immutable; use brainsim.with_params to change a "
                        "parameter, or build a new Network")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):
        return FrozenDict, (dict(self),)

    def __repr__(self):
        return dict.__repr__(self)


jax.tree_util.register_pytree_with_keys(
    FrozenDict,
    lambda d: (tuple((jax.tree_util.DictKey(k), v) for k, v in d.items()), tuple(d)),
    lambda keys, values: FrozenDict(zip(keys, values)),
    flatten_func=lambda d: (tuple(d.values()), tuple(d)),
)
