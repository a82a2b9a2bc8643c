"""Global state of the brainsim PyNN backend: time, step, the registry of PyNN objects, and the run loop.

Times are in ms (PyNN and brainsim agree). At every ``run`` the PyNN objects created so far are turned into a
brainsim ``Network`` (``brainsim.pynn.build``) and simulated from the state the previous run ended in, so that
consecutive runs continue one simulation. Spike times are reported at the end of the step that produced them
(NEST's convention): a spike in step k (covering [k dt, (k+1) dt)) has time (k+1) dt.
"""
from __future__ import annotations

import numpy as np

from pyNN import common

name = "brainsim"


class ID(int, common.IDMixin):
    """A cell identifier (global integer id) of the brainsim backend."""

    def __init__(self, n):
        int.__init__(n)
        common.IDMixin.__init__(self)


class State(common.control.BaseState):
    """Simulation time (ms), dt (ms), registered populations/projections/current sources, and the network
    state carried between runs."""

    def __init__(self):
        super().__init__()
        self.mpi_rank = 0
        self.num_processes = 1
        self.dt = 0.1
        self._min_delay = "auto"
        self.max_delay = "auto"
        self.seed = 0
        self.clear()

    # ---- bookkeeping -------------------------------------------------------------------------------------
    def clear(self):
        """Forget the whole network (``setup``/``end``)."""
        self.recorders = set()
        self.populations = []
        self.projections = []
        self.current_sources = []
        self.id_counter = 0
        self.segment_counter = -1
        self.write_on_end = []
        self.reset()

    def reset(self):
        """Back to t = 0 with fresh state (a new segment); structure and parameters are kept."""
        self.running = False
        self.t_start = 0
        self.step = 0
        self.net_state = None
        self.net = None
        self.segment_counter += 1
        for rec in list(self.recorders):
            rec._clear_simulator()
        for src in self.current_sources:
            src._clear_recording()

    @property
    def min_delay(self):
        """Minimum delay, ms: as given to ``setup``, or with ``min_delay="auto"`` the smallest delay of the
        projections made so far (dt without any)."""
        if self._min_delay != "auto":
            return self._min_delay
        delays = [float(np.min(p._attrs["delay"])) for p in self.projections if len(p)]
        return min(delays) if delays else self.dt

    @min_delay.setter
    def min_delay(self, value):
        self._min_delay = value

    @property
    def t(self) -> float:
        """Current time, ms."""
        return self.step * self.dt

    def population_of(self, ids):
        """``[(population, indices in it, positions in ids)]`` for an array of global cell ids."""
        ids = np.asarray(ids, dtype=np.int64)
        out = []
        for pop in self.populations:
            first = int(pop.first_id)
            mask = (ids >= first) & (ids < first + pop.size)
            if mask.any():
                out.append((pop, ids[mask] - first, np.nonzero(mask)[0]))
        return out

    # ---- time ----------------------------------------------------------------------------------------------
    def run(self, simtime):
        self.run_until(self.t + simtime)

    def run_until(self, tstop):
        n_steps = int(round((tstop - self.t) / self.dt))
        self.running = True
        if n_steps > 0:
            from .engine import advance
            advance(self, n_steps)


state = State()
