"""What a built-in network function returns."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..network import Network, NetworkState


@dataclass
class Prepared:
    """A ready-to-run network.

    Attributes:
        network: the ``Network``.
        state: its initial ``NetworkState`` (random initial conditions already drawn).
        dt: the time step it was built for, ms.
        groups: named neuron groups for summaries: name -> (population, start, stop).
        description: one line naming the model.
    """

    network: Network
    state: NetworkState
    dt: float
    groups: dict = field(default_factory=dict)
    description: str = ""
