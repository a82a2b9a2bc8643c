"""Pure-NumPy transforms of event arrays: binning into frames / dense spike trains, and augmentations.

Every time in this module is in **microseconds** (the unit of an event's ``t``), except ``dt``/``duration`` of
:func:`to_dense`, which are in **milliseconds** (brainsim's unit of time; ``dt_us``/``duration_us`` take µs).
``sensor_size`` is tonic's ``(width, height, n_polarities)``; audio data use ``(n_channels, 1, 1)``.
A transform returns a new array and never modifies its input.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ._core import as_rng, check_events, check_number, check_sensor_size


# ------------------------------------------------------------------------------------------------ helpers

def _sorted_by_time(events: np.ndarray) -> np.ndarray:
    t = events["t"]
    if t.size > 1 and np.any(t[1:] < t[:-1]):
        return events[np.argsort(t, kind="stable")]
    return events


def _polarity_index(events, n_pol: int, owner: str) -> np.ndarray:
    if n_pol == 1 or "p" not in events.dtype.names:
        return np.zeros(len(events), np.int64)
    p = events["p"].astype(np.int64)
    if n_pol == 2:
        return (p > 0).astype(np.int64)  # {0, 1}, {False, True} and {-1, +1} alike
    if p.size and (p.min() < 0 or p.max() >= n_pol):
        raise ValueError(f"{owner}: polarities span [{p.min()}, {p.max()}], outside [0, {n_pol}) "
                         f"given by sensor_size")
    return p


def _check_coordinates(events, size, owner: str, has_y: bool):
    w, h = size[0], size[1]
    x = events["x"]
    if x.size and (x.min() < 0 or x.max() >= w):
        raise ValueError(f"{owner}: x spans [{x.min()}, {x.max()}], outside the sensor width {w} "
                         f"(parameter 'sensor_size' = {size})")
    if has_y:
        y = events["y"]
        if y.size and (y.min() < 0 or y.max() >= h):
            raise ValueError(f"{owner}: y spans [{y.min()}, {y.max()}], outside the sensor height {h} "
                             f"(parameter 'sensor_size' = {size})")


def _windows_fixed(total, width, overlap, include_incomplete):
    """Starts (float) of windows of ``width`` with stride ``width - overlap`` over a span ``[0, total)``."""
    stride = width - overlap
    if total <= 0:
        return np.zeros(0)
    if include_incomplete:  # the fewest windows that reach the end of the span
        n = math.ceil((total - width) / stride) + 1 if total > width else 1
    else:
        n = math.floor((total - width) / stride) + 1 if total >= width else 0
    return np.arange(n) * stride


def _windows_binned(total, n_bins, overlap):
    """(starts, ends) of ``n_bins`` equal windows overlapping by the fraction ``overlap`` that exactly
    cover ``[0, total)``: width = total / (1 + (n_bins - 1) (1 - overlap)), stride = width (1 - overlap)."""
    denom = 1.0 + (n_bins - 1) * (1.0 - overlap)
    a = np.arange(n_bins) * (1.0 - overlap)
    starts = a * total / denom
    ends = (a + 1.0) * total / denom
    ends[-1] = total
    return starts, ends


def _gather(starts_idx, ends_idx):
    """(window id, event index) for every event of every window [start, end)."""
    lengths = np.maximum(ends_idx - starts_idx, 0)
    total = int(lengths.sum())
    win = np.repeat(np.arange(len(lengths)), lengths)
    offset = np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = np.arange(total) - offset + np.repeat(starts_idx, lengths)
    return win, idx


# ------------------------------------------------------------------------------------------------ binning

def to_frames(events, sensor_size, *, time_window=None, event_count=None, n_time_bins=None, n_event_bins=None,
              overlap=0, include_incomplete=False, dtype=np.int32) -> np.ndarray:
    """Event counts per frame, pixel and polarity (tonic's ``ToFrame``).

    Exactly one way of slicing the recording into frames must be given:

    * ``time_window`` (µs): frames of this duration starting at the first event, stride
      ``time_window - overlap`` (``overlap`` in µs).
    * ``event_count``: frames of this many events, stride ``event_count - overlap`` (``overlap`` in events).
    * ``n_time_bins``: this many frames of equal duration that exactly cover the recording
      ``[t_first, t_last + 1 µs)``; ``overlap`` is a fraction in [0, 1) of a frame shared with the next.
    * ``n_event_bins``: this many frames of (as nearly as possible) equal numbers of events, ``overlap`` a
      fraction in [0, 1) as above.

    Frames are half-open intervals, so with no overlap each event counts once. With ``time_window`` /
    ``event_count`` the last, partly filled frame is kept only if ``include_incomplete``; a frame is complete
    when the recording (up to ``t_last + 1 µs``, or the last event) reaches its end. (tonic ends recordings at
    ``t_last`` and floors the width of binned frames, which can drop the last events; these do not.)

    Args:
        events: structured array with ``x``, ``t`` (µs) and, for vision data, ``y`` (and ``p``).
        sensor_size: ``(W, H, P)`` as in tonic, e.g. ``(34, 34, 2)`` for N-MNIST, ``(700, 1, 1)`` for SHD. With
            ``P == 1`` polarities are merged; with ``P == 2`` ``p > 0`` is ON (index 1), else OFF (index 0).
        dtype: dtype of the counts.

    Returns:
        ``(n_frames, P, H, W)`` for events with ``y``, ``(n_frames, P, W)`` for audio events (no ``y``).
    """
    owner = "to_frames"
    events = check_events(events, owner, ("x", "t"))
    size = check_sensor_size(sensor_size, owner)
    has_y = "y" in events.dtype.names
    given = {k: v for k, v in dict(time_window=time_window, event_count=event_count, n_time_bins=n_time_bins,
                                   n_event_bins=n_event_bins).items() if v is not None}
    if len(given) != 1:
        raise ValueError(f"{owner}: give exactly one of 'time_window', 'event_count', 'n_time_bins', "
                         f"'n_event_bins', got {sorted(given) or 'none'}")
    (mode, value), = given.items()
    _check_coordinates(events, size, owner, has_y)
    events = _sorted_by_time(events)
    t = events["t"].astype(np.int64)
    n = len(events)

    if mode == "time_window":
        width = check_number(value, "time_window", owner, minimum=0, exclusive=True)
        ov = check_number(overlap, "overlap", owner, minimum=0, maximum=width, max_exclusive=True)
        span = int(t[-1] - t[0]) + 1 if n else 0
        starts = _windows_fixed(span, width, ov, include_incomplete) + (t[0] if n else 0)
        s_idx, e_idx = np.searchsorted(t, starts, "left"), np.searchsorted(t, starts + width, "left")
    elif mode == "event_count":
        width = check_number(value, "event_count", owner, minimum=1, integer=True)
        ov = check_number(overlap, "overlap", owner, minimum=0, maximum=width, max_exclusive=True, integer=True)
        starts = _windows_fixed(n, width, ov, include_incomplete).astype(np.int64)
        s_idx, e_idx = starts, np.minimum(starts + width, n)
    else:
        bins = check_number(value, mode, owner, minimum=1, integer=True)
        ov = check_number(overlap, "overlap", owner, minimum=0, maximum=1, max_exclusive=True)
        if mode == "n_time_bins":
            span = int(t[-1] - t[0]) + 1 if n else 1
            starts, ends = _windows_binned(span, bins, ov)
            t0 = t[0] if n else 0
            s_idx, e_idx = np.searchsorted(t, t0 + starts, "left"), np.searchsorted(t, t0 + ends, "left")
        else:
            starts, ends = _windows_binned(n, bins, ov)
            s_idx, e_idx = np.floor(starts).astype(np.int64), np.floor(ends).astype(np.int64)
            e_idx[-1] = n

    w, h, n_pol = size
    n_frames = len(s_idx)
    win, idx = _gather(np.asarray(s_idx, np.int64), np.asarray(e_idx, np.int64))
    pol = _polarity_index(events, n_pol, owner)[idx]
    x = events["x"][idx].astype(np.int64)
    if has_y:
        y = events["y"][idx].astype(np.int64)
        flat = ((win * n_pol + pol) * h + y) * w + x
        shape = (n_frames, n_pol, h, w)
    else:
        flat = (win * n_pol + pol) * w + x
        shape = (n_frames, n_pol, w)
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    return counts.reshape(shape).astype(dtype, copy=False)


def to_voxel_grid(events, sensor_size, n_time_bins: int) -> np.ndarray:
    """Voxel grid (Zhu et al. 2019; tonic's ``ToVoxelGrid``): each event adds its polarity (+1 ON, -1 OFF) to the
    two time bins around its normalised time ``(n_time_bins - 1) (t - t_first) / (t_last - t_first)``, split
    linearly between them.

    Returns:
        float32 array ``(n_time_bins, 1, H, W)``.
    """
    owner = "to_voxel_grid"
    events = check_events(events, owner, ("x", "y", "t", "p"))
    w, h, _ = size = check_sensor_size(sensor_size, owner)
    bins = check_number(n_time_bins, "n_time_bins", owner, minimum=1, integer=True)
    _check_coordinates(events, size, owner, True)
    grid = np.zeros(bins * h * w, np.float64)
    if len(events):
        t = events["t"].astype(np.float64)
        span = t.max() - t.min()
        ts = (bins - 1) * (t - t.min()) / span if span > 0 else np.zeros_like(t)
        left = np.floor(ts).astype(np.int64)
        frac = ts - left
        pol = np.where(events["p"].astype(np.int64) > 0, 1.0, -1.0)
        pix = events["y"].astype(np.int64) * w + events["x"].astype(np.int64)
        np.add.at(grid, left * h * w + pix, pol * (1.0 - frac))
        right = left + 1
        ok = right < bins
        np.add.at(grid, right[ok] * h * w + pix[ok], (pol * frac)[ok])
    return grid.reshape(bins, 1, h, w).astype(np.float32)


def to_dense(events, n_channels: int, dt=None, *, dt_us=None, duration=None, duration_us=None,
             binary: bool = False) -> np.ndarray:
    """Spike counts per time step and channel, ``(T, n_channels)`` float32: the input a brainsim ``Sequential``
    takes for one example (audio data such as SHD, or any events whose ``x`` is a channel index).

    Step ``k`` holds the events with ``k * dt <= t < (k + 1) * dt``, times counted from ``t = 0`` (not from
    the first event), so that samples stay aligned.

    Args:
        events: structured array with ``x`` (channel in ``[0, n_channels)``) and ``t`` (µs).
        n_channels: number of input channels (700 for SHD/SSC).
        dt: time step in **ms** (brainsim's unit); or give ``dt_us`` in µs instead.
        duration: length of the result in **ms** (``T = ceil(duration / dt)``; later events are dropped); or
            ``duration_us`` in µs. Default: up to the last event (``T = floor(t_last / dt) + 1``; ``T = 0`` for
            no events).
        binary: 1.0 where a channel has at least one event in a step, instead of the count.
    """
    owner = "to_dense"
    events = check_events(events, owner, ("x", "t"))
    n_channels = check_number(n_channels, "n_channels", owner, minimum=1, integer=True)
    if (dt is None) == (dt_us is None):
        raise ValueError(f"{owner}: give exactly one of 'dt' (ms) and 'dt_us' (µs)")
    step = (check_number(dt, "dt", owner, minimum=0, exclusive=True) * 1000.0 if dt_us is None
            else check_number(dt_us, "dt_us", owner, minimum=0, exclusive=True))
    if abs(step - round(step)) < 1e-9 * max(step, 1.0):  # ms -> µs rounding (2.007 ms = 2007.0000000000002 µs)
        step = float(round(step))
    if duration is not None and duration_us is not None:
        raise ValueError(f"{owner}: give at most one of 'duration' (ms) and 'duration_us' (µs)")
    x = events["x"].astype(np.int64)
    t = events["t"].astype(np.int64)
    if x.size and (x.min() < 0 or x.max() >= n_channels):
        raise ValueError(f"{owner}: channels (field x) span [{x.min()}, {x.max()}], outside [0, {n_channels}) "
                         f"given by parameter 'n_channels'")
    if t.size and t.min() < 0:
        raise ValueError(f"{owner}: events have negative times (min t = {t.min()} µs); crop_time them first")
    k = t // int(step) if float(step).is_integer() else np.floor(t / step).astype(np.int64)
    if duration is not None or duration_us is not None:
        total = (check_number(duration, "duration", owner, minimum=0) * 1000.0 if duration_us is None
                 else check_number(duration_us, "duration_us", owner, minimum=0))
        n_steps = int(math.ceil(total / step - 1e-9))
        keep = k < n_steps
        k, x = k[keep], x[keep]
    else:
        n_steps = int(k.max()) + 1 if k.size else 0
    counts = np.bincount(k * n_channels + x, minlength=n_steps * n_channels).reshape(n_steps, n_channels)
    if binary:
        counts = counts > 0
    return counts.astype(np.float32)


def pad_batch(sequences: Sequence, *, length=None, value: float = 0.0, dtype=np.float32):
    """Stack ``(T_i, C)`` arrays into one ``(B, T_max, C)`` array for ``fit`` (examples first), padding the end of
    shorter ones with ``value``; ``length`` fixes ``T`` (longer ones are cut).

    Returns:
        ``(batch, lengths)``: ``batch`` of ``dtype`` and the int64 lengths ``min(T_i, T)`` before padding.
    """
    owner = "pad_batch"
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        sequences = list(sequences)
    try:
        seqs = [np.asarray(s) for s in sequences]
    except TypeError:
        raise TypeError(f"{owner}: parameter 'sequences' must be a list of (T, C) arrays, got {sequences!r}") from None
    if not seqs:
        raise ValueError(f"{owner}: parameter 'sequences' is empty")
    for i, s in enumerate(seqs):
        if s.ndim != 2:
            raise ValueError(f"{owner}: parameter 'sequences'[{i}] has shape {s.shape}; each must be (T, C)")
    channels = {s.shape[1] for s in seqs}
    if len(channels) != 1:
        raise ValueError(f"{owner}: parameter 'sequences' mixes channel counts {sorted(channels)}; all must match")
    lengths = np.array([s.shape[0] for s in seqs], np.int64)
    t_max = int(lengths.max()) if length is None else check_number(length, "length", owner, minimum=0, integer=True)
    lengths = np.minimum(lengths, t_max)
    out = np.full((len(seqs), t_max, channels.pop()), value, dtype=dtype)
    for i, s in enumerate(seqs):
        out[i, :lengths[i]] = s[:lengths[i]]
    return out, lengths


# ------------------------------------------------------------------------------------------------ augmentations

def denoise(events, filter_time) -> np.ndarray:
    """Drop isolated events (tonic's ``Denoise``): an event is kept only if one of its four neighbouring pixels
    (x +- 1 or y +- 1) had an earlier event less than ``filter_time`` µs before it (events at the same time
    count if they come earlier in the array). Keeps the order of the input.
    """
    owner = "denoise"
    events = check_events(events, owner, ("x", "y", "t"))
    window = check_number(filter_time, "filter_time", owner, minimum=0, exclusive=True)
    n = len(events)
    if n == 0:
        return events.copy()
    order = np.argsort(events["t"], kind="stable")
    x = events["x"][order].astype(np.int64)
    y = events["y"][order].astype(np.int64)
    t = events["t"][order].astype(np.int64)
    if x.min() < 0 or y.min() < 0:
        raise ValueError(f"{owner}: events have negative coordinates (min x = {x.min()}, min y = {y.min()})")
    width, height = int(x.max()) + 1, int(y.max()) + 1
    own = y * width + x
    pos = np.arange(n)
    keep = np.zeros(n, bool)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nx, ny = x + dx, y + dy
        valid = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        q_pos = pos[valid]
        keys = np.concatenate([own, (ny * width + nx)[valid]])
        where = np.concatenate([pos, q_pos])
        is_src = np.concatenate([np.ones(n, bool), np.zeros(len(q_pos), bool)])
        o = np.lexsort((~is_src, where, keys))  # by pixel, then position, sources first
        k_s, w_s, src_s = keys[o], where[o], is_src[o]
        last = np.maximum.accumulate(np.where(src_s, np.arange(len(o)), -1))
        query = ~src_s
        j = last[query]
        found = (j >= 0) & (k_s[np.maximum(j, 0)] == k_s[query])
        qi = w_s[query]
        near = found & (t[qi] - t[w_s[np.maximum(j, 0)]] < window)
        keep[qi[near]] = True
    mask = np.zeros(n, bool)
    mask[order] = keep
    return events[mask]


def downsample(events, *, spatial_factor: float = 1.0, time_factor: float = 1.0) -> np.ndarray:
    """Scale coordinates and times (tonic's ``Downsample``): ``x, y -> floor(x * spatial_factor)``,
    ``t -> floor(t * time_factor)`` (µs). ``spatial_factor = 0.5`` halves the resolution: a ``W``-wide sensor
    becomes ``ceil(W / 2)`` wide. Events that land on the same pixel are all kept.
    """
    owner = "downsample"
    events = check_events(events, owner, ("x", "t"))
    sf = check_number(spatial_factor, "spatial_factor", owner, minimum=0, exclusive=True)
    tf = check_number(time_factor, "time_factor", owner, minimum=0, exclusive=True)
    out = events.copy()
    for f in ("x", "y"):
        if f in out.dtype.names:
            out[f] = np.floor(events[f] * sf).astype(out.dtype[f])
    out["t"] = np.floor(events["t"] * tf).astype(out.dtype["t"])
    return out


def crop_time(events, start=None, end=None) -> np.ndarray:
    """Keep the events with ``start <= t < end`` (µs; ``None`` = unbounded). Times are not shifted."""
    owner = "crop_time"
    events = check_events(events, owner, ("t",))
    keep = np.ones(len(events), bool)
    if start is not None:
        keep &= events["t"] >= check_number(start, "start", owner)
    if end is not None:
        end = check_number(end, "end", owner)
        if start is not None and end < start:
            raise ValueError(f"{owner}: parameter 'end' ({end}) is before 'start' ({start})")
        keep &= events["t"] < end
    return events[keep]


def time_jitter(events, std, rng=None, *, clip_negative: bool = False, sort_timestamps: bool = False) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``std`` µs to every timestamp, rounded to whole µs (tonic's
    ``TimeJitter``). ``clip_negative`` drops events that end up before 0; ``sort_timestamps`` re-sorts by time.
    ``rng``: a ``numpy.random.Generator`` or an integer seed.
    """
    owner = "time_jitter"
    events = check_events(events, owner, ("t",))
    std = check_number(std, "std", owner, minimum=0)
    gen = as_rng(rng, owner)
    out = events.copy()
    out["t"] = events["t"] + np.rint(gen.normal(0.0, std, len(events))).astype(np.int64)
    if clip_negative:
        out = out[out["t"] >= 0]
    if sort_timestamps:
        out = out[np.argsort(out["t"], kind="stable")]
    return out


def drop_events(events, p, rng=None) -> np.ndarray:
    """Drop ``round(p * n)`` of the ``n`` events, chosen uniformly at random (tonic's ``DropEvent``); the rest keep
    their order. ``p`` in [0, 1]; ``rng``: a ``numpy.random.Generator`` or an integer seed."""
    owner = "drop_events"
    events = check_events(events, owner, ("t",))
    p = check_number(p, "p", owner, minimum=0, maximum=1)
    gen = as_rng(rng, owner)
    n = len(events)
    n_drop = int(math.floor(p * n + 0.5))
    keep = np.ones(n, bool)
    keep[gen.choice(n, size=n_drop, replace=False)] = False
    return events[keep]


def flip_lr(events, sensor_size) -> np.ndarray:
    """Mirror left-right: ``x -> W - 1 - x`` with ``W = sensor_size[0]``."""
    events = check_events(events, "flip_lr", ("x",))
    size = check_sensor_size(sensor_size, "flip_lr")
    _check_coordinates(events, size, "flip_lr", False)
    out = events.copy()
    out["x"] = size[0] - 1 - events["x"].astype(np.int64)
    return out


def flip_ud(events, sensor_size) -> np.ndarray:
    """Mirror up-down: ``y -> H - 1 - y`` with ``H = sensor_size[1]``."""
    events = check_events(events, "flip_ud", ("x", "y"))
    size = check_sensor_size(sensor_size, "flip_ud")
    _check_coordinates(events, size, "flip_ud", True)
    out = events.copy()
    out["y"] = size[1] - 1 - events["y"].astype(np.int64)
    return out


class Compose:
    """Apply callables in order: ``Compose([f, g])(events) == g(f(events))``. Bind parameters with
    ``functools.partial`` or a lambda, e.g.
    ``Compose([partial(denoise, filter_time=10_000), partial(to_frames, sensor_size=(34, 34, 2), n_time_bins=10)])``.
    """

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for i, f in enumerate(transforms):
            if not callable(f):
                raise TypeError(f"Compose: parameter 'transforms'[{i}] is not callable, got {f!r}")
        self.transforms = transforms

    def __call__(self, events):
        for f in self.transforms:
            events = f(events)
        return events

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(f) for f in self.transforms)
        return f"Compose([\n    {inner}\n])"
