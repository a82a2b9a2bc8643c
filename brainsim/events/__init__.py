"""Event data: neuromorphic datasets' files as event arrays, and the binning that turns them into network input.

Events are NumPy structured arrays laid out as tonic's: ``(x, y, t, p)`` for vision sensors
(:data:`EVENT_DTYPE`) and ``(x, t, p)`` for audio (:data:`AUDIO_EVENT_DTYPE`, ``x`` = channel). ``t`` is in
**microseconds** (int64) throughout; ``p`` is 1 for ON and 0 for OFF events.

Readers (files only; nothing is downloaded):
    :func:`read_shd`, :class:`SHDFile` (SHD / SSC HDF5; needs h5py), :func:`read_nmnist` (N-MNIST,
    N-Caltech101 ``.bin``), :func:`read_aedat` (AEDAT 1.0/2.0 DVS128, AEDAT 3.x polarity packets, e.g. DVS Gesture).

Transforms (pure NumPy):
    :func:`to_frames` (tonic's ToFrame), :func:`to_dense` (``(T, n_channels)`` float32 for a brainsim
    ``Sequential``; ``dt`` in ms), :func:`to_voxel_grid`, :func:`denoise`, :func:`downsample`,
    :func:`crop_time`, :func:`time_jitter`, :func:`drop_events`, :func:`flip_lr`, :func:`flip_ud`,
    :class:`Compose`, and :func:`pad_batch` (``(B, T_max, C)`` for ``fit``).

Example (SHD -> training data)::

    from brainsim import events as ev
    shd = ev.read_shd("shd_train.h5")
    x, lengths = ev.pad_batch([ev.to_dense(e, 700, dt=1.0, duration=1000.0) for e in shd.events])
    y = shd.labels
"""
from ._core import AUDIO_EVENT_DTYPE, EVENT_DTYPE, make_events
from .readers import SHDData, SHDFile, read_aedat, read_nmnist, read_shd
from .transforms import (
    Compose,
    crop_time,
    denoise,
    downsample,
    drop_events,
    flip_lr,
    flip_ud,
    pad_batch,
    time_jitter,
    to_dense,
    to_frames,
    to_voxel_grid,
)

__all__ = [
    "EVENT_DTYPE", "AUDIO_EVENT_DTYPE", "make_events",
    "read_shd", "SHDFile", "SHDData", "read_nmnist", "read_aedat",
    "to_frames", "to_dense", "to_voxel_grid", "pad_batch",
    "denoise", "downsample", "crop_time", "time_jitter", "drop_events", "flip_lr", "flip_ud", "Compose",
]
