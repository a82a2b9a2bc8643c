"""Simulation results as Neo objects (``SimulationResult.to_neo()``), for Elephant and the EBRAINS tools.

One ``neo.Block`` with one ``neo.Segment`` spanning the run:

- a ``neo.SpikeTrain`` (ms) for every recorded neuron of every ``SpikeMonitor``, annotated with
  ``population`` and ``neuron`` (its index in the population), ``t_start``/``t_stop`` the recorded interval;
- a ``neo.AnalogSignal`` for every ``StateMonitor``/``ProjectionMonitor`` trace (one channel per recorded
  element), named like the trace (``"E.v"``), in the unit given in ``units`` or a default by variable name
  (``v`` in mV; receptor conductances ``g*`` in nS; otherwise dimensionless), sampled every ``every * dt``;
- a ``neo.AnalogSignal`` of every ``RateMonitor``'s population rate (Hz).

Neo (with ``quantities``) is needed only here: ``pip install neo``.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

DEFAULT_UNITS = {"v": "mV", "V": "mV", "refractory": "ms", "w": "pA", "I": "pA"}


def _unit(name: str, units: Mapping[str, str]) -> str:
    variable = name.split(".", 1)[-1]
    if name in units:
        return units[name]
    if variable in units:
        return units[variable]
    if variable in DEFAULT_UNITS:
        return DEFAULT_UNITS[variable]
    return "nS" if variable.startswith("g") else "dimensionless"


def to_neo(result, units: Optional[Mapping[str, str]] = None, name: str = "brainsim run"):
    """The ``SimulationResult`` ``result`` as a ``neo.Block`` (see the module docstring).

    Args:
        units: trace name (``"E.ge"``) or variable name (``"ge"``) -> unit string understood by ``quantities``
            (``"nS"``, ``"pA"``, ``"mV"``), overriding the defaults.
    """
    try:
        import neo
        import quantities as pq
    except ImportError:  # pragma: no cover - neo is in the test extra
        raise ImportError("SimulationResult.to_neo needs Neo: pip install neo") from None
    units = dict(units or {})
    block = neo.Block(name=name, dt_ms=float(result.dt))
    segment = neo.Segment(name="run", index=0)
    block.segments.append(segment)
    for population, trains in result.spikes.items():
        t_start, t_stop = trains.start, trains.start + trains.duration
        for neuron, times in trains.trains().items():
            segment.spiketrains.append(neo.SpikeTrain(
                times, units="ms", t_start=t_start * pq.ms, t_stop=t_stop * pq.ms, name=f"{population}[{neuron}]",
                population=population, neuron=int(neuron)))
    for trace, (times, values) in result.traces.items():
        if len(times) == 0:
            continue
        period = float(times[1] - times[0]) if len(times) > 1 else float(result.dt)
        segment.analogsignals.append(neo.AnalogSignal(
            np.asarray(values, np.float64), units=_unit(trace, units), sampling_period=period * pq.ms,
            t_start=float(times[0]) * pq.ms, name=trace))
    for population, (times, rate) in result.rates.items():
        if len(times) == 0:
            continue
        segment.analogsignals.append(neo.AnalogSignal(
            np.asarray(rate, np.float64)[:, None], units="Hz", sampling_period=float(result.dt) * pq.ms,
            t_start=float(times[0]) * pq.ms, name=f"{population}.rate"))
    return block
