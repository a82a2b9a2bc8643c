"""Simulation control of the brainsim PyNN backend: setup, end, run, reset and state queries (times in ms)."""
from __future__ import annotations

from pyNN import common
from pyNN.common.control import DEFAULT_MAX_DELAY, DEFAULT_MIN_DELAY, DEFAULT_TIMESTEP
from pyNN.recording import get_io

from . import simulator


def setup(timestep=DEFAULT_TIMESTEP, min_delay=DEFAULT_MIN_DELAY, **extra_params):
    """Start a new simulation with step ``timestep`` ms (any previous network is discarded).

    Extra parameters: ``max_delay`` (ms), ``rng_seed`` / ``seed`` (integer seed of the run's randomness)."""
    max_delay = extra_params.get("max_delay", DEFAULT_MAX_DELAY)
    common.setup(timestep, min_delay, **extra_params)
    st = simulator.state
    st.dt = float(timestep)
    st.clear()
    st.min_delay = "auto" if min_delay == "auto" else float(min_delay)
    st.max_delay = max_delay
    st.seed = int(extra_params.get("rng_seed", extra_params.get("seed", 0)) or 0)
    return rank()


def end(compatible_output=True):
    """Write the data asked for with ``record(..., to_file=...)`` and forget the network."""
    for population, variables, filename in simulator.state.write_on_end:
        population.write_data(get_io(filename), variables)
    simulator.state.write_on_end = []


run, run_until = common.build_run(simulator)
run_for = run
reset = common.build_reset(simulator)
initialize = common.initialize
(get_current_time, get_time_step, get_min_delay, get_max_delay,
 num_processes, rank) = common.build_state_queries(simulator)
