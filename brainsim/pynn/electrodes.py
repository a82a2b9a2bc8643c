"""PyNN current sources of the brainsim backend, injected as per-step currents (``simulate(currents=...)``).

Amplitudes in nA (converted to pA when injected), times in ms, frequency in Hz, phase in degrees (at t = start). The current of
the step covering [t, t + dt) is the source's value at t: a DCSource is on for start <= t < stop, a
StepCurrentSource holds the amplitude of the last change time <= t. ``record()`` keeps the injected current.
"""
from __future__ import annotations

import numpy as np

from pyNN.parameters import ParameterSpace, Sequence
from pyNN.standardmodels import build_translations, electrodes

from .simulator import state


def _identity(base):
    return build_translations(*[(n, n) for n in base.default_parameters])


class _Source:
    """What every brainsim current source shares: targets, parameters, recording."""

    def __init__(self, **parameters):
        object.__setattr__(self, "_params", {k: np.asarray(getattr(v, "value", v), float).copy()
                                             if isinstance(v, Sequence) or np.ndim(v) else float(v)
                                             for k, v in self.default_parameters.items()})
        object.__setattr__(self, "_target_ids", np.zeros(0, np.int64))
        object.__setattr__(self, "_recording", False)
        object.__setattr__(self, "_rec_t", [])
        object.__setattr__(self, "_rec_i", [])
        super().__init__(**parameters)
        if parameters:
            self.set_parameters(**parameters)
        state.current_sources.append(self)

    def inject_into(self, cells):
        ids = np.asarray([int(c) for c in cells], dtype=np.int64)
        for c in cells:
            if not c.celltype.injectable:
                raise TypeError("Can't inject current into a spike source.")
        object.__setattr__(self, "_target_ids", np.union1d(self._target_ids, ids))

    def set_native_parameters(self, parameters):
        parameters.evaluate(simplify=True)
        for name, value in parameters.items():
            if isinstance(value, Sequence):
                value = value.value
            self._params[name] = np.asarray(value, dtype=float) if np.ndim(value) else float(value)

    def get_native_parameters(self):
        return ParameterSpace(dict(self._params))

    def record(self):
        object.__setattr__(self, "_recording", True)

    def _store(self, times, amp):
        if self._recording:
            self._rec_t.append(np.asarray(times))
            self._rec_i.append(np.asarray(amp))

    def _clear_recording(self):
        object.__setattr__(self, "_rec_t", [])
        object.__setattr__(self, "_rec_i", [])

    def _get_data(self):
        t = np.concatenate(self._rec_t + [np.array([state.t])])
        i = np.concatenate(self._rec_i + [self._amplitudes(np.array([state.t]), state.dt, state)])
        return t, i

    def _window(self, times, dt):
        p = self._params
        return (times >= p["start"] - 0.5 * dt) & (times < p["stop"] - 0.5 * dt)


class DCSource(_Source, electrodes.DCSource):
    __doc__ = electrodes.DCSource.__doc__
    translations = _identity(electrodes.DCSource)

    def _amplitudes(self, times, dt, st):
        return np.where(self._window(times, dt), self._params["amplitude"], 0.0)


class ACSource(_Source, electrodes.ACSource):
    __doc__ = electrodes.ACSource.__doc__
    translations = _identity(electrodes.ACSource)

    def _amplitudes(self, times, dt, st):
        p = self._params
        value = p["offset"] + p["amplitude"] * np.sin(2 * np.pi * p["frequency"] * (times - p["start"]) / 1000.0
                                                      + np.deg2rad(p["phase"]))
        return np.where(self._window(times, dt), value, 0.0)


class StepCurrentSource(_Source, electrodes.StepCurrentSource):
    __doc__ = electrodes.StepCurrentSource.__doc__
    translations = _identity(electrodes.StepCurrentSource)

    def set_native_parameters(self, parameters):
        super().set_native_parameters(parameters)
        times = np.atleast_1d(np.asarray(self._params.get("times", []), float))
        amps = np.atleast_1d(np.asarray(self._params.get("amplitudes", []), float))
        if np.any(times < 0):
            raise ValueError("StepCurrentSource: times must be >= 0 ms")
        if np.any(np.diff(times) < 0):
            raise ValueError("StepCurrentSource: times must increase monotonically")
        steps = np.rint(times / state.dt)
        last = np.append(steps[1:] != steps[:-1], True)  # of repeated grid times the last one counts
        self._params["times"], self._params["amplitudes"] = steps[last] * state.dt, amps[last]

    def _amplitudes(self, times, dt, st):
        change = np.atleast_1d(np.asarray(self._params.get("times", []), float))
        amps = np.atleast_1d(np.asarray(self._params.get("amplitudes", []), float))
        if change.size == 0:
            return np.zeros(len(times))
        k = np.searchsorted(np.rint(change / dt), np.rint(times / dt), side="right") - 1
        return np.where(k >= 0, amps[np.clip(k, 0, None)], 0.0)


class NoisyCurrentSource(_Source, electrodes.NoisyCurrentSource):
    __doc__ = electrodes.NoisyCurrentSource.__doc__
    translations = _identity(electrodes.NoisyCurrentSource)

    def _amplitudes(self, times, dt, st):
        p = self._params
        every = max(1, int(round(p["dt"] / dt)))
        k = np.rint(times / dt).astype(np.int64) // every  # index of the noise interval
        rng = np.random.default_rng([st.seed, st.current_sources.index(self)])
        draws = rng.normal(size=int(k.max()) + 1 if len(k) else 0)
        value = p["mean"] + p["stdev"] * draws[k]
        return np.where(self._window(times, dt), value, 0.0)
