"""Built-in networks: each function returns a ready ``Prepared`` network (network, state, dt, groups); network
builders (``with_astrocytes``) and trained-network tasks (``evidence``)."""
from .astrocytes import with_astrocytes
from .base import Prepared
from .brette2007 import FAN_IN, coba, cobahh, cuba
from .brunel import STATES as BRUNEL_STATES
from .brunel import brunel

BUILTINS = {"coba": coba, "cuba": cuba, "cobahh": cobahh, "brunel": brunel}
DEFAULT_N = {"coba": 4000, "cuba": 4000, "cobahh": 4000, "brunel": 10000}
WITH_STATE = ("brunel",)  # the built-ins that take a dynamical state (``state=``)


def synapses_per_neuron(name: str, n: int) -> float:
    """The mean number of incoming synapses of a neuron of built-in ``name`` with ``n`` neurons (memory estimates)."""
    return 0.1 * n if name == "brunel" else FAN_IN


def build(name: str, **kwargs) -> Prepared:
    """Build the built-in network ``name`` (one of ``BUILTINS``)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(BUILTINS)}")
    return BUILTINS[name](**kwargs)


__all__ = ["Prepared", "coba", "cuba", "cobahh", "brunel", "build", "BUILTINS", "BRUNEL_STATES", "DEFAULT_N",
           "WITH_STATE", "synapses_per_neuron", "with_astrocytes"]
