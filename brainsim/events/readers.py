"""Readers of published event-data files into event arrays (``t`` in microseconds).

* :func:`read_shd` / :class:`SHDFile`: the Spiking Heidelberg Digits and Spiking Speech Commands HDF5 files
  (Cramer et al. 2020, IEEE TNNLS): ``spikes/times`` (variable-length float arrays, seconds),
  ``spikes/units`` (variable-length uint16 arrays, channel 0..699), ``labels`` (uint16) and optionally
  ``extra/speaker`` and ``extra/keys``.
* :func:`read_nmnist`: N-MNIST / N-Caltech101 ``.bin`` files (Orchard et al. 2015): 5 bytes per event.
* :func:`read_aedat`: AEDAT 1.0 / 2.0 files of a DVS128 (jAER) and AEDAT 3.x polarity-event packets (cAER,
  e.g. IBM's DVS Gesture).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from ._core import AUDIO_EVENT_DTYPE, EVENT_DTYPE


def _check_path(path, owner: str) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{owner}: parameter 'path' must be a file path, got {path!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{owner}: no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{owner}: {path!r} is a directory, not a file")
    return path


# ---------------------------------------------------------------------------------------------------- SHD / SSC

def _h5py(owner: str):
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(f"{owner} needs h5py to read HDF5 files: pip install h5py "
                          "(or pip install 'brainsim[events]')") from None
    return h5py


def _shd_events(times, units) -> np.ndarray:
    """One SHD/SSC sample: times in seconds -> microseconds (rounded to the nearest µs), channel -> ``x``."""
    times = np.asarray(times, dtype=np.float64)
    units = np.asarray(units)
    if times.shape != units.shape:
        raise ValueError(f"SHD sample has {times.size} spike times but {units.size} units")
    out = np.empty(times.size, AUDIO_EVENT_DTYPE)
    out["t"] = np.rint(times * 1e6).astype(np.int64)
    out["x"] = units.astype(np.int16)
    out["p"] = 1
    return out


def _decode(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SU":
        return _decode(value.item())
    return str(value)


@dataclass
class SHDData:
    """The whole of an SHD/SSC file in memory.

    Attributes:
        events: one :data:`AUDIO_EVENT_DTYPE` array per sample (``x`` = channel 0..699, ``t`` in µs, ``p`` = 1).
        labels: class of each sample (int64, shape ``(n_samples,)``).
        speakers: speaker id of each sample (``extra/speaker``), or ``None`` if the file has none.
        keys: class names (``extra/keys``, index = label), or ``None`` if the file has none.
    """
    events: list
    labels: np.ndarray
    speakers: Optional[np.ndarray] = None
    keys: Optional[list] = None

    def __len__(self) -> int:
        return len(self.events)


class SHDFile:
    """Lazy access to an SHD/SSC HDF5 file: samples are read one at a time, for files larger than memory.

    ``len(f)``, ``f[i] -> (events, label)``, ``for events, label in f``; ``f.labels``, ``f.speakers``,
    ``f.keys`` are read when the file is opened. Use as a context manager (or call :meth:`close`)::

        with SHDFile("shd_train.h5") as f:
            events, label = f[0]
    """

    N_CHANNELS = 700  # the cochlea model's channels in SHD and SSC

    def __init__(self, path):
        h5py = _h5py("SHDFile")
        self.path = _check_path(path, "SHDFile")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise ValueError(f"SHDFile: {self.path!r} is not an HDF5 file (SHD/SSC files are HDF5): {e}") from None
        try:
            for name in ("spikes/times", "spikes/units", "labels"):
                if name not in self._file:
                    raise ValueError(f"SHDFile: {self.path!r} has no dataset {name!r}: not an SHD/SSC file "
                                     "(expected spikes/times, spikes/units, labels)")
            self._times = self._file["spikes/times"]
            self._units = self._file["spikes/units"]
            self.labels = np.asarray(self._file["labels"][()], dtype=np.int64).reshape(-1)
            if not (len(self._times) == len(self._units) == len(self.labels)):
                raise ValueError(f"SHDFile: {self.path!r} has {len(self._times)} spike-time arrays, "
                                 f"{len(self._units)} unit arrays and {len(self.labels)} labels; they must match")
            self.speakers = (np.asarray(self._file["extra/speaker"][()], dtype=np.int64).reshape(-1)
                             if "extra/speaker" in self._file else None)
            self.keys = ([_decode(k) for k in np.asarray(self._file["extra/keys"][()]).reshape(-1)]
                         if "extra/keys" in self._file else None)
        except BaseException:
            self._file.close()
            raise

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        """``(events, label)`` of sample ``index`` (negative indices count from the end)."""
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"SHDFile: index must be an integer, got {index!r}")
        if not -n <= index < n:
            raise IndexError(f"SHDFile: index {index} out of range for {n} samples")
        index = int(index) % n
        return _shd_events(self._times[index], self._units[index]), int(self.labels[index])

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"SHDFile({self.path!r}, n_samples={len(self)})"


def read_shd(path) -> SHDData:
    """Read a whole SHD or SSC file (Cramer et al. 2020) into memory.

    Spike times (seconds in the file) become ``t`` in microseconds, rounded to the nearest µs; the unit
    (cochlea channel, 0..699) becomes ``x``; ``p`` is 1. For files too large for memory use :class:`SHDFile`.

    Returns:
        :class:`SHDData` with ``events`` (list of arrays), ``labels``, ``speakers`` and ``keys``.
    """
    with SHDFile(path) as f:
        times, units = f._times[()], f._units[()]
        events = [_shd_events(t, u) for t, u in zip(times, units)]
        return SHDData(events=events, labels=f.labels, speakers=f.speakers, keys=f.keys)


# ---------------------------------------------------------------------------------------------- N-MNIST

def read_nmnist(path) -> np.ndarray:
    """Read an N-MNIST or N-Caltech101 ``.bin`` file (Orchard et al. 2015).

    Each event is 40 bits, big-endian: bits 39-32 x (pixel), 31-24 y (pixel), bit 23 polarity (1 = ON),
    bits 22-0 timestamp in microseconds. No timestamp-overflow markers are interpreted (the 23-bit clock
    covers 8.4 s; the published recordings are ~0.3 s).

    Returns:
        :data:`EVENT_DTYPE` array (x, y from 0; ``t`` in µs; ``p`` 1 = ON, 0 = OFF), in file order.
    """
    path = _check_path(path, "read_nmnist")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise ValueError(f"read_nmnist: {path!r} is not an N-MNIST/N-Caltech101 .bin file: its size "
                         f"({raw.size} bytes) is not a multiple of 5 (5 bytes per event)")
    rec = raw.reshape(-1, 5).astype(np.int64)
    out = np.empty(len(rec), EVENT_DTYPE)
    out["x"] = rec[:, 0]
    out["y"] = rec[:, 1]
    out["p"] = rec[:, 2] >> 7
    out["t"] = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    return out


# ---------------------------------------------------------------------------------------------- AEDAT

def _aedat_header(data: bytes):
    """(version string or None, header lines, offset of the first data byte)."""
    lines, pos = [], 0
    while pos < len(data) and data[pos:pos + 1] == b"#":
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end].rstrip(b"\r\n").decode("latin-1")
        lines.append(line)
        pos = end
        if line.startswith("#!END-HEADER"):
            break
    version = None
    if lines and lines[0].startswith("#!AER-DAT"):
        version = lines[0][len("#!AER-DAT"):].strip()
    return version, lines, pos


def _dvs128(addr: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """jAER's DVS128 address: bit 15 external event (dropped), bits 14-8 y, bits 7-1 x (mirrored:
    x = 127 - raw), bit 0 polarity with raw 0 = ON (``p = 1``) and raw 1 = OFF (``p = 0``)."""
    addr = addr.astype(np.int64)
    keep = (addr & 0x8000) == 0
    addr, ts = addr[keep], ts[keep]
    out = np.empty(len(addr), EVENT_DTYPE)
    out["x"] = 127 - ((addr >> 1) & 0x7F)
    out["y"] = (addr >> 8) & 0x7F
    out["p"] = 1 - (addr & 1)
    out["t"] = ts
    return out


_PACKET_HEADER = np.dtype([("eventType", "<i2"), ("eventSource", "<i2"), ("eventSize", "<i4"),
                           ("eventTSOffset", "<i4"), ("eventTSOverflow", "<i4"), ("eventCapacity", "<i4"),
                           ("eventNumber", "<i4"), ("eventValid", "<i4")])
_POLARITY_EVENT = 1


def _aedat3(path: str, data: bytes, pos: int) -> np.ndarray:
    chunks = []
    n = len(data)
    while pos < n:
        if pos + _PACKET_HEADER.itemsize > n:
            raise ValueError(f"read_aedat: {path!r} ends inside an event-packet header at byte {pos} "
                             "(truncated AEDAT 3 file?)")
        h = np.frombuffer(data, _PACKET_HEADER, count=1, offset=pos)[0]
        size, capacity, number = int(h["eventSize"]), int(h["eventCapacity"]), int(h["eventNumber"])
        if size <= 0 or capacity < 0 or number < 0 or number > capacity:
            raise ValueError(f"read_aedat: {path!r} has a corrupt event-packet header at byte {pos} "
                             f"(eventSize={size}, eventCapacity={capacity}, eventNumber={number})")
        start = pos + _PACKET_HEADER.itemsize
        end = start + capacity * size  # a packet holds eventCapacity slots (== eventNumber in files)
        if end > n:
            raise ValueError(f"read_aedat: {path!r} ends inside an event packet starting at byte {pos} "
                             "(truncated AEDAT 3 file?)")
        if int(h["eventType"]) == _POLARITY_EVENT and number:
            if size < 8:
                raise ValueError(f"read_aedat: {path!r}: polarity packet at byte {pos} has eventSize {size} < 8")
            body = np.frombuffer(data, np.uint8, count=number * size, offset=start).reshape(number, size)
            word = body[:, 0:4].copy().view("<u4").reshape(-1).astype(np.int64)
            ts = body[:, 4:8].copy().view("<i4").reshape(-1).astype(np.int64)
            valid = (word & 1) == 1
            word, ts = word[valid], ts[valid]
            ev = np.empty(len(word), EVENT_DTYPE)
            ev["p"] = (word >> 1) & 1
            ev["y"] = (word >> 2) & 0x7FFF
            ev["x"] = (word >> 17) & 0x7FFF
            ev["t"] = (int(h["eventTSOverflow"]) << 31) | ts
            chunks.append(ev)
        pos = end
    return np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)


def read_aedat(path) -> np.ndarray:
    """Read the polarity (DVS) events of an AEDAT file (iniVation/jAER, ``#!AER-DATx.y`` first header line).

    Supported versions:

    * **1.0** (no version line, or ``#!AER-DAT1.0``) and **2.0**: big-endian pairs (address, timestamp in µs);
      16-bit addresses in 1.0, 32-bit in 2.0. Addresses are decoded as jAER's DVS128 chip class does
      (``ch.unizh.ini.jaer.chip.retina.DVS128``: x mask 0xFE, y mask 0x7F00, x mirrored, polarity bit
      flipped): ``x = 127 - ((addr >> 1) & 0x7F)``, ``y = (addr >> 8) & 0x7F``, ``p = 1 - (addr & 1)``
      (raw bit 0 = ON; iniVation's AEDAT 1.0 page lists the raw bits unmirrored with '1' = ON, but jAER,
      which wrote these files, mirrors x and flips the polarity bit; its MATLAB loader
      ``extractRetina128EventsFromAddr.m`` does the same). Events with bit 15 set (external events) are
      dropped. Files whose ``# AEChip:`` header names another chip (e.g. DAVIS) are refused.
    * **3.0 / 3.1**: little-endian event packets, each a 28-byte header (eventType, eventSource, eventSize,
      eventTSOffset, eventTSOverflow, eventCapacity, eventNumber, eventValid) and eventCapacity slots of
      eventSize bytes; polarity packets (eventType 1) hold 8-byte events: a uint32 (bit 0 valid,
      bit 1 polarity, bits 2-16 y, bits 17-31 x) and an int32 timestamp (µs) extended by
      ``eventTSOverflow << 31``. Invalid events and every other packet type are skipped. In 3.1 (0, 0) is the
      top-left pixel, in 3.0 the bottom-left one; coordinates are returned as stored.

    AEDAT 4.0 (flatbuffers + compression) is not read: use the ``aedat`` or ``dv-processing`` package.

    Returns:
        :data:`EVENT_DTYPE` array (``t`` in µs, ``p`` 1 = ON), in file order.
    """
    path = _check_path(path, "read_aedat")
    with open(path, "rb") as fh:
        data = fh.read()
    version, lines, pos = _aedat_header(data)
    if version is None:
        version = "1.0"
    if version in ("1.0", "2.0"):
        chip = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# AEChip:")), None)
        if chip is not None and "DVS128" not in chip and not chip.endswith("Tmpdiff128"):
            raise ValueError(f"read_aedat: {path!r} (AEDAT {version}) was recorded with chip class {chip!r}; "
                             "only DVS128 addresses are decoded")
        rec = np.dtype([("addr", ">i2" if version == "1.0" else ">i4"), ("t", ">i4")])
        body = len(data) - pos
        if body % rec.itemsize:
            raise ValueError(f"read_aedat: {path!r} is not a valid AEDAT {version} file: {body} data bytes "
                             f"after the header is not a multiple of {rec.itemsize} bytes per event")
        raw = np.frombuffer(data, rec, offset=pos)
        addr = raw["addr"].astype(np.int64) & (0xFFFF if version == "1.0" else 0xFFFFFFFF)
        return _dvs128(addr, raw["t"].astype(np.int64))
    if version in ("3.0", "3.1"):
        return _aedat3(path, data, pos)
    hint = " (it needs the `aedat` package: pip install aedat, or dv-processing)" if version.startswith("4") else ""
    raise ValueError(f"read_aedat: {path!r} is AEDAT version {version}, which is not supported{hint}; "
                     "supported: 1.0, 2.0, 3.0, 3.1")
