"""Built-in networks: each function returns a ready ``Prepared`` network (network, state, dt, groups); network
builders (``with_astrocytes``) and trained-network tasks (``evidence``)."""
from .astrocytes import with_astrocytes
from .base import Prepared
from .brette2007 import FAN_IN, coba, cobahh, cuba
from .brunel import STATES as BRUNEL_STATES
from .brunel import brunel
from .microcircuit import microcircuit

BUILTINS = {"coba": coba, "cuba": cuba, "cobahh": cobahh, "brunel": brunel, "microcircuit": microcircuit}
DEFAULT_N = {"coba": 4000, "cuba": 4000, "cobahh": 4000, "brunel": 10000}  # (microcircuit: its scale instead)
WITH_STATE = ("brunel",)  # the built-ins that take a dynamical state (``state=``)
WITH_SCALE = ("microcircuit",)  # the built-ins sized by ``scale=`` instead of ``n=``


def expected_synapses(name: str, *, n: int = 0, scale: float = 1.0) -> float:
    """About how many synapses built-in ``name`` has with ``n`` neurons (or at ``scale``), for memory estimates."""
    if name == "microcircuit":
        return 2.99e8 * scale * scale
    return n * (0.1 * n if name == "brunel" else FAN_IN)


def build(name: str, **kwargs) -> Prepared:
    """Build the built-in network ``name`` (one of ``BUILTINS``)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(BUILTINS)}")
    return BUILTINS[name](**kwargs)


__all__ = ["Prepared", "coba", "cuba", "cobahh", "brunel", "microcircuit", "build", "BUILTINS", "BRUNEL_STATES",
           "DEFAULT_N", "WITH_STATE", "WITH_SCALE", "expected_synapses", "with_astrocytes"]
