"""Spike trains of PyNN's spike sources for one run window (t0, t1] (ms), drawn on the host.

They are replayed by ``brainsim.SpikeTimes``. Rates in Hz, times in ms. Poisson and gamma trains are drawn per
run window (a Poisson process is memoryless; a gamma train restarts its renewal at a window boundary).
"""
from __future__ import annotations

import numpy as np


def _per_neuron(value, size):
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (size,))


def _renewal(draw, start, duration, size, t0, t1, rng):
    """Renewal trains: ``draw(i, n)`` gives n intervals (ms) of neuron i; spikes in (t0, t1] and [start, stop)."""
    times, idx = [], []
    start, duration = _per_neuron(start, size), _per_neuron(duration, size)
    for i in range(size):
        lo, hi = max(t0, start[i]), min(t1, start[i] + duration[i])
        if hi <= lo:
            continue
        t, chunk = lo, []
        while t <= hi:
            isi = draw(i, 64)
            if isi is None:
                break
            ts = t + np.cumsum(isi)
            chunk.append(ts[ts <= hi])
            t = ts[-1]
        if chunk:
            ts = np.concatenate(chunk)
            ts = ts[ts > lo]
            times.append(ts)
            idx.append(np.full(len(ts), i))
    if not times:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(times), np.concatenate(idx)


def poisson_events(rate, start, duration, dead_time, size, t0, t1, dt, rng):
    """Poisson trains of ``rate`` Hz (with a dead time ``dead_time`` ms after each spike, as
    SpikeSourcePoissonRefractory: mean rate kept at ``rate``)."""
    rate, dead = _per_neuron(rate, size), _per_neuron(dead_time, size)

    def draw(i, n):
        if rate[i] <= 0:
            return None
        mean = 1000.0 / rate[i] - dead[i]
        if mean <= 0:
            return np.full(n, dead[i])
        return dead[i] + rng.exponential(mean, n)
    return _renewal(draw, start, duration, size, t0, t1, rng)


def gamma_events(alpha, beta, start, duration, size, t0, t1, dt, rng):
    """Gamma renewal trains: shape ``alpha``, rate ``beta`` (Hz)."""
    alpha, beta = _per_neuron(alpha, size), _per_neuron(beta, size)

    def draw(i, n):
        if beta[i] <= 0:
            return None
        return rng.gamma(alpha[i], 1000.0 / beta[i], n)
    return _renewal(draw, start, duration, size, t0, t1, rng)


def array_events(spike_times, size, t0, t1, dt):
    """Given spike times (one ``pyNN.parameters.Sequence`` per neuron) in (t0, t1]."""
    times, idx = [], []
    seqs = np.broadcast_to(np.asarray(spike_times, dtype=object), (size,))
    for i, seq in enumerate(seqs):
        ts = np.asarray(getattr(seq, "value", seq), dtype=np.float64).ravel()
        ts = ts[(ts > t0 + 0.5 * dt) & (ts <= t1 + 0.5 * dt)]
        times.append(ts)
        idx.append(np.full(len(ts), i))
    if not times:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(times), np.concatenate(idx)
