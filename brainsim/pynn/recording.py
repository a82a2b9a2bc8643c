"""PyNN Recorder of the brainsim backend: keeps the records of every run and hands them to PyNN's recording
module, which builds the neo Blocks. Spike times in ms; signals are converted to PyNN units (mV, nA, uS) by
``celltype.record_map``. A signal has one sample per sampling interval from the recording start up to and
including the current time (the value at the current time is the state the last run ended in)."""
from __future__ import annotations

import numpy as np

from pyNN import recording

from . import simulator


class Recorder(recording.Recorder):
    _simulator = simulator

    def __init__(self, population, file=None):
        super().__init__(population, file)
        self._clear_simulator()

    def _record(self, variable, new_ids, sampling_interval=None):
        if sampling_interval is not None:
            self.sampling_interval = sampling_interval

    def _clear_simulator(self):
        self._spikes = []  # [(times ms, indices)]
        self._signals = {}  # var -> [(first step, samples (n, size))]
        self._last = {}  # var -> (step, values (size,)) at the end of the last run

    def _reset(self):
        self._clear_simulator()

    # -- filled by the engine ----------------------------------------------------------------------------
    def _store_spikes(self, times, indices):
        self._spikes.append((times, indices))

    def _store_signal(self, var, first_step, samples, final):
        self._signals.setdefault(var, []).append((first_step, samples))
        self._last[var] = (first_step + len(samples), final)

    # -- read by pyNN.recording ----------------------------------------------------------------------------
    def _indices(self, ids):
        return np.array([self.population.id_to_index(int(i)) for i in ids], dtype=np.int64)

    def _get_spiketimes(self, ids, clear=False):
        out = {int(i): np.zeros(0) for i in ids}
        if self._spikes:
            times = np.concatenate([t for t, _ in self._spikes])
            idx = np.concatenate([i for _, i in self._spikes])
            first = int(self.population.first_id)
            for i in ids:
                out[int(i)] = np.sort(times[idx == int(i) - first])
        if clear:
            self._spikes = []
        return out

    def _get_all_signals(self, variable, ids, clear=False):
        var = variable.name
        dt = self._simulator.state.dt
        _, scale = self.population.celltype.record_map[var]
        parts = self._signals.get(var, [])
        if not parts:
            return np.zeros((0, len(ids))), None
        steps = np.concatenate([first + np.arange(len(s)) for first, s in parts])
        values = np.concatenate([s for _, s in parts])
        last_step, last = self._last[var]
        steps = np.append(steps, last_step)
        values = np.vstack([values, last[None, :]])
        start = int(round(float(self._recording_start_time.rescale("ms").magnitude) / dt))
        every = max(1, int(round(self.sampling_interval / dt)))
        keep = (steps >= start) & ((steps - start) % every == 0)
        values = values[keep][:, self._indices(ids)] * scale
        if clear:
            self._signals.pop(var, None)
        return values, None

    def _local_count(self, variable, filter_ids=None):
        counts = {}
        times = self._get_spiketimes(sorted(self.filter_recorded(variable, filter_ids)))
        for i, t in times.items():
            counts[i] = len(t)
        return counts
