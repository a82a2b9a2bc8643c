"""Event arrays (NumPy structured arrays, tonic's layout) and the checks shared by readers and transforms.

Units: ``t`` is in microseconds (int64) everywhere in :mod:`brainsim.events`; ``x``/``y`` are pixel (or channel)
indices; ``p`` is the polarity (1 = ON / increase, 0 = OFF / decrease; audio events carry ``p = 1``).
"""
from __future__ import annotations

import numbers

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")])
"""Vision-sensor events: ``x``, ``y`` pixel (int16), ``t`` microseconds (int64), ``p`` polarity (int8, 1 = ON)."""

AUDIO_EVENT_DTYPE = np.dtype([("x", "<i2"), ("t", "<i8"), ("p", "i1")])
"""Audio / channel events (SHD, SSC): ``x`` channel (int16), ``t`` microseconds (int64), ``p`` (int8, always 1)."""


def _fail(owner: str, name: str, message: str, value, kind=ValueError):
    raise kind(f"{owner}: parameter {name!r} {message}, got {_short(value)}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_events(events, owner: str, fields=("x", "t")) -> np.ndarray:
    """``events`` as a structured array that has ``fields`` (``TypeError`` naming the parameter otherwise)."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not isinstance(events, np.ndarray) or names is None:
        _fail(owner, "events", "must be a NumPy structured array of events (see make_events)", events, TypeError)
    missing = [f for f in fields if f not in names]
    if missing:
        raise TypeError(f"{owner}: parameter 'events' lacks the field(s) {missing}; it has {list(names)}")
    if events.ndim != 1:
        raise ValueError(f"{owner}: parameter 'events' must be one-dimensional, got shape {events.shape}")
    for f in fields:
        if not (np.issubdtype(events.dtype[f], np.integer) or events.dtype[f] == np.bool_):
            raise TypeError(f"{owner}: field {f!r} of 'events' must be integer, got dtype {events.dtype[f]} "
                            "(t is integer microseconds)")
    return events


def check_number(value, name: str, owner: str, *, minimum=None, exclusive=False, maximum=None,
                 max_exclusive=False, integer=False):
    """A finite real number (an integer if ``integer``) within the given bounds, or a one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(owner, name, "must be an integer" if integer else "must be a number", value, TypeError)
    if integer and not isinstance(value, numbers.Integral):
        if not float(value).is_integer():
            _fail(owner, name, "must be an integer", value, TypeError)
        value = int(value)
    if not np.isfinite(value):
        _fail(owner, name, "must be finite", value)
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        _fail(owner, name, f"must be {'>' if exclusive else '>='} {minimum}", value)
    if maximum is not None and (value >= maximum if max_exclusive else value > maximum):
        _fail(owner, name, f"must be {'<' if max_exclusive else '<='} {maximum}", value)
    return int(value) if integer else value


def check_sensor_size(sensor_size, owner: str) -> tuple:
    """``(W, H, P)``: three positive integers (tonic's ``sensor_size``)."""
    try:
        size = tuple(sensor_size)
    except TypeError:
        size = None
    if size is None or len(size) != 3:
        _fail(owner, "sensor_size", "must be a tuple (width, height, n_polarities), e.g. (128, 128, 2) or "
                                    "(700, 1, 1) for audio", sensor_size)
    for v in size:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            _fail(owner, "sensor_size", "must hold three positive integers (width, height, n_polarities)",
                  sensor_size)
    return tuple(int(v) for v in size)


def as_rng(rng, owner: str) -> np.random.Generator:
    """A NumPy ``Generator`` from a Generator, an integer seed or ``None`` (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    _fail(owner, "rng", "must be a numpy.random.Generator, a non-negative integer seed or None", rng, TypeError)


def _integer_field(values, name: str, dtype, *, required=True):
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        _fail("make_events", name, "must be one-dimensional", values)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating):
            _fail("make_events", name, "must hold integers", values, TypeError)
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            _fail("make_events", name, "must hold whole numbers" + (" (t is in integer microseconds)"
                                                                    if name == "t" else ""), values)
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        _fail("make_events", name, f"must lie in [{info.min}, {info.max}] (the range of {np.dtype(dtype)})",
              values)
    return arr


def make_events(*, x, t, y=None, p=None) -> np.ndarray:
    """A structured event array from equal-length columns.

    Args:
        x: pixel column (vision) or channel index (audio), integers.
        t: timestamps in microseconds (integers, int64).
        y: pixel row; when given the result has :data:`EVENT_DTYPE` ``(x, y, t, p)``, otherwise
            :data:`AUDIO_EVENT_DTYPE` ``(x, t, p)``.
        p: polarity (1 = ON, 0 = OFF; booleans accepted); default 1 for every event (tonic's artificial
            polarity of audio events).

    Returns:
        A 1-D structured array in the order given (not sorted).
    """
    dtype = AUDIO_EVENT_DTYPE if y is None else EVENT_DTYPE
    cols = {"x": _integer_field(x, "x", np.int16), "t": _integer_field(t, "t", np.int64)}
    if y is not None:
        cols["y"] = _integer_field(y, "y", np.int16)
    n = len(cols["t"])
    cols["p"] = np.ones(n, np.int8) if p is None else _integer_field(p, "p", np.int8)
    for name, col in cols.items():
        if len(col) != n:
            if len(col) == 1:
                cols[name] = np.repeat(col, n)
            else:
                raise ValueError(f"make_events: parameter {name!r} has {len(col)} entries but 't' has {n}")
    out = np.empty(n, dtype)
    for name in dtype.names:
        out[name] = cols[name]
    return out
