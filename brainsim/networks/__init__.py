"""Built-in networks: each function returns a ready ``Prepared`` network (network, state, dt, groups); network
builders (``with_astrocytes``) and trained-network tasks (``evidence``)."""
from .astrocytes import with_astrocytes
from .base import Prepared
from .brette2007 import coba, cobahh, cuba

BUILTINS = {"coba": coba, "cuba": cuba, "cobahh": cobahh}


def build(name: str, **kwargs) -> Prepared:
    """Build the built-in network ``name`` (one of ``BUILTINS``)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(BUILTINS)}")
    return BUILTINS[name](**kwargs)


__all__ = ["Prepared", "coba", "cuba", "cobahh", "build", "BUILTINS", "with_astrocytes"]
