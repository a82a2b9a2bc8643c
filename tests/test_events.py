"""brainsim.events: readers checked on files written here byte by byte from each format's specification (not by
inverting the readers), and the transforms' documented properties on hand-computed cases."""
import struct
from functools import partial

import numpy as np
import pytest

from brainsim import events as ev

h5py = pytest.importorskip("h5py")


# ----------------------------------------------------------------------------------------------- event arrays

def test_make_events_dtypes_and_defaults():
    e = ev.make_events(x=[1, 2], y=[3, 4], t=[5, 6], p=[True, False])
    assert e.dtype == ev.EVENT_DTYPE and e.dtype.names == ("x", "y", "t", "p")
    assert e["t"].dtype == np.int64 and e["p"].tolist() == [1, 0]
    a = ev.make_events(x=[7, 8, 9], t=np.array([0.0, 1.0, 2.0]))
    assert a.dtype == ev.AUDIO_EVENT_DTYPE and a.dtype.names == ("x", "t", "p")
    assert a["p"].tolist() == [1, 1, 1] and a["t"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=[1, 2], t=[1]), "'x' has 2 entries"),
    (dict(x=[1], t=[0.5]), "'t'.*whole numbers"),
    (dict(x=[40000], t=[0]), "'x'.*int16"),
    (dict(x=["a"], t=[0]), "'x'"),
])
def test_make_events_rejects_bad_columns(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ev.make_events(**kwargs)


# ----------------------------------------------------------------------------------------------- SHD / SSC

SHD_SAMPLES = [  # (times in s, units, label, speaker)
    (np.array([0.0, 0.0015, 0.25, 0.5], np.float32), np.array([0, 699, 3, 3], np.uint16), 3, 7),
    (np.array([0.1], np.float32), np.array([42], np.uint16), 0, 1),
    (np.array([], np.float32), np.array([], np.uint16), 19, 2),
    (np.array([0.000001, 0.9], np.float32), np.array([5, 6], np.uint16), 11, 7),
]
SHD_KEYS = [f"key-{i}" for i in range(20)]


def _write_shd(path, samples=SHD_SAMPLES, extra=True):
    """The layout of the published files (Cramer et al. 2020): vlen float times in s, vlen uint16 units."""
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u, _, _) in enumerate(samples):
            times[i], units[i] = t, u
        f.create_dataset("labels", data=np.array([s[2] for s in samples], np.uint16))
        if extra:
            f.create_dataset("extra/speaker", data=np.array([s[3] for s in samples], np.uint16))
            f.create_dataset("extra/keys", data=SHD_KEYS, dtype=h5py.string_dtype())
    return path


def test_read_shd_events_labels_speakers_keys(tmp_path):
    data = ev.read_shd(_write_shd(tmp_path / "shd.h5"))
    assert len(data) == 4 and data.labels.tolist() == [3, 0, 19, 11] and data.speakers.tolist() == [7, 1, 2, 7]
    assert data.keys == SHD_KEYS
    first = data.events[0]
    assert first.dtype == ev.AUDIO_EVENT_DTYPE
    assert first["t"].tolist() == [0, 1500, 250000, 500000]  # seconds -> µs, rounded (float32 0.0015 != 1500e-6)
    assert first["x"].tolist() == [0, 699, 3, 3] and first["p"].tolist() == [1, 1, 1, 1]
    assert len(data.events[2]) == 0
    assert data.events[3]["t"].tolist() == [1, 900000]


def test_shd_file_is_lazy_indexable_and_iterable(tmp_path):
    path = _write_shd(tmp_path / "shd.h5", extra=False)
    with ev.SHDFile(path) as f:
        assert len(f) == 4 and f.speakers is None and f.keys is None
        events, label = f[-1]
        assert label == 11 and events["x"].tolist() == [5, 6]
        assert [lab for _, lab in f] == [3, 0, 19, 11]
        with pytest.raises(IndexError, match="out of range"):
            f[4]
    assert not f._file  # closed


def test_read_shd_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        ev.read_shd(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        ev.read_shd(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros(2, np.uint16))
    with pytest.raises(ValueError, match="spikes/times.*not an SHD/SSC file"):
        ev.read_shd(tmp_path / "other.h5")


def test_read_shd_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    path = _write_shd(tmp_path / "shd.h5")
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ImportError, match="pip install h5py"):
        ev.read_shd(path)


# ----------------------------------------------------------------------------------------------- N-MNIST

def _nmnist_record(x, y, p, t):
    """40 bits, big-endian: x (8) | y (8) | polarity (1) | timestamp µs (23)."""
    word = (x << 32) | (y << 24) | (p << 23) | t
    return word.to_bytes(5, "big")


def test_read_nmnist(tmp_path):
    rows = [(0, 0, 1, 0), (33, 5, 0, 1), (10, 33, 1, 0x7FFFFF), (255, 255, 0, 300_000)]
    path = tmp_path / "00001.bin"
    path.write_bytes(b"".join(_nmnist_record(*r) for r in rows))
    e = ev.read_nmnist(path)
    assert e.dtype == ev.EVENT_DTYPE
    assert list(zip(e["x"].tolist(), e["y"].tolist(), e["p"].tolist(), e["t"].tolist())) == rows
    # byte-level check of one record against the spec: bit 7 of byte 2 is the polarity, not part of t
    (tmp_path / "one.bin").write_bytes(bytes([3, 4, 0x80 | 0x01, 0x02, 0x03]))
    one = ev.read_nmnist(tmp_path / "one.bin")
    assert (one["x"][0], one["y"][0], one["p"][0], one["t"][0]) == (3, 4, 1, 0x010203)


def test_read_nmnist_rejects_a_file_of_the_wrong_size(tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="bad.bin.*multiple of 5"):
        ev.read_nmnist(tmp_path / "bad.bin")
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        ev.read_nmnist(tmp_path / "nope.bin")


# ----------------------------------------------------------------------------------------------- AEDAT

def _dvs128_address(x, y, on):
    """jAER DVS128: bits 14-8 y, bits 7-1 (127 - x), bit 0 = 0 for ON."""
    return (y << 8) | ((127 - x) << 1) | (0 if on else 1)


def test_read_aedat2_dvs128(tmp_path):
    header = (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
              b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n")
    events = [(0, 0, True, 10), (127, 5, False, 20), (64, 127, True, 2**31 - 1)]
    body = b"".join(struct.pack(">iI", _dvs128_address(x, y, on), t) for x, y, on, t in events)
    body += struct.pack(">iI", 0x8000 | _dvs128_address(1, 1, True), 30)  # external event: dropped
    path = tmp_path / "rec.aedat"
    path.write_bytes(header + body)
    e = ev.read_aedat(path)
    assert e["x"].tolist() == [0, 127, 64] and e["y"].tolist() == [0, 5, 127]
    assert e["p"].tolist() == [1, 0, 1] and e["t"].tolist() == [10, 20, 2**31 - 1]
    # raw address 0x0000 is the ON event of x = 127, y = 0 (x mirrored, raw polarity 0 = ON)
    (tmp_path / "zero.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + bytes(8))
    z = ev.read_aedat(tmp_path / "zero.aedat")[0]
    assert (z["x"], z["y"], z["p"], z["t"]) == (127, 0, 1, 0)


def test_read_aedat1_without_header(tmp_path):
    body = struct.pack(">hI", _dvs128_address(3, 4, False), 7) + struct.pack(">hI", _dvs128_address(5, 6, True), 9)
    (tmp_path / "old.dat").write_bytes(body)
    e = ev.read_aedat(tmp_path / "old.dat")
    assert e["x"].tolist() == [3, 5] and e["y"].tolist() == [4, 6] and e["p"].tolist() == [0, 1]
    assert e["t"].tolist() == [7, 9]


def _packet(event_type, events, overflow=0, event_size=8):
    """28-byte little-endian header, then eventNumber events of eventSize bytes."""
    head = struct.pack("<hhiiiiii", event_type, 1, event_size, 4, overflow, len(events), len(events),
                       sum(1 for e in events if e[0] & 1))
    return head + b"".join(struct.pack("<Ii", data, ts) for data, ts in events)


def _polarity_word(x, y, on, valid=True):
    return (x << 17) | (y << 2) | (int(on) << 1) | int(valid)


def test_read_aedat31_polarity_packets(tmp_path):
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
              b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")
    p1 = _packet(1, [(_polarity_word(1, 2, True), 100), (_polarity_word(3, 4, False, valid=False), 150),
                     (_polarity_word(127, 0, False), 200)])
    special = _packet(0, [(0x00000001 | (5 << 1), 210)])  # a special event (type 0): skipped
    p2 = _packet(1, [(_polarity_word(300, 200, True), 5)], overflow=1)  # timestamp (1 << 31) | 5
    path = tmp_path / "user01_fluorescent.aedat"
    path.write_bytes(header + p1 + special + p2)
    e = ev.read_aedat(path)
    assert e["x"].tolist() == [1, 127, 300] and e["y"].tolist() == [2, 0, 200]
    assert e["p"].tolist() == [1, 0, 1] and e["t"].tolist() == [100, 200, (1 << 31) | 5]
    path.write_bytes(header + p1[:-3])
    with pytest.raises(ValueError, match="user01_fluorescent.aedat.*truncated"):
        ev.read_aedat(path)


def test_read_aedat_refuses_other_versions_and_chips(tmp_path):
    (tmp_path / "new.aedat4").write_bytes(b"#!AER-DAT4.0\r\n" + bytes(16))
    with pytest.raises(ValueError, match=r"new\.aedat4.*version 4\.0.*aedat"):
        ev.read_aedat(tmp_path / "new.aedat4")
    (tmp_path / "davis.aedat").write_bytes(b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n")
    with pytest.raises(ValueError, match="DAVIS240C.*only DVS128"):
        ev.read_aedat(tmp_path / "davis.aedat")
    (tmp_path / "odd.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + bytes(5))
    with pytest.raises(ValueError, match="multiple of 8"):
        ev.read_aedat(tmp_path / "odd.aedat")


# ----------------------------------------------------------------------------------------------- to_frames

def _tiny():
    # t = 0, 10, 20, 30 µs on a 4 x 2 sensor with 2 polarities
    return ev.make_events(x=[0, 1, 2, 3], y=[0, 0, 1, 1], t=[0, 10, 20, 30], p=[1, 0, 1, 1])


def test_to_frames_hand_computed_time_bins():
    frames = ev.to_frames(_tiny(), (4, 2, 2), n_time_bins=2)  # span [0, 31): bins [0, 15.5), [15.5, 31)
    expected = np.zeros((2, 2, 2, 4), np.int32)
    expected[0, 1, 0, 0] = 1  # t=0, ON at (x=0, y=0)
    expected[0, 0, 0, 1] = 1  # t=10, OFF at (1, 0)
    expected[1, 1, 1, 2] = 1  # t=20
    expected[1, 1, 1, 3] = 1  # t=30
    np.testing.assert_array_equal(frames, expected)
    np.testing.assert_array_equal(ev.to_frames(_tiny()[[2, 0, 3, 1]], (4, 2, 2), n_time_bins=2), expected)  # unsorted


def test_to_frames_hand_computed_time_window_with_overlap():
    e = _tiny()
    # windows of 20 µs every 10 µs from t=0: [0,20) [10,30) complete; [20,40) only with include_incomplete
    f = ev.to_frames(e, (4, 2, 2), time_window=20, overlap=10)
    assert f.shape == (2, 2, 2, 4) and f.sum(axis=(1, 2, 3)).tolist() == [2, 2]
    assert f[1, 0, 0, 1] == 1 and f[1, 1, 1, 2] == 1  # t=10 and t=20
    g = ev.to_frames(e, (4, 2, 2), time_window=20, overlap=10, include_incomplete=True)
    assert g.sum(axis=(1, 2, 3)).tolist() == [2, 2, 2]
    h = ev.to_frames(e, (4, 2, 2), time_window=10, include_incomplete=True)
    assert h.sum(axis=(1, 2, 3)).tolist() == [1, 1, 1, 1]


def test_to_frames_event_count_and_event_bins():
    e = _tiny()
    assert ev.to_frames(e, (4, 2, 2), event_count=3).sum(axis=(1, 2, 3)).tolist() == [3]
    assert ev.to_frames(e, (4, 2, 2), event_count=3, include_incomplete=True).sum(axis=(1, 2, 3)).tolist() == [3, 1]
    assert ev.to_frames(e, (4, 2, 2), n_event_bins=2).sum(axis=(1, 2, 3)).tolist() == [2, 2]
    assert ev.to_frames(e, (4, 2, 2), n_event_bins=3).sum(axis=(1, 2, 3)).tolist() == [1, 1, 2]
    # 3 windows sharing half their events with the next exactly cover 4 events: width 2, stride 1
    assert ev.to_frames(e, (4, 2, 2), n_event_bins=3, overlap=0.5).sum(axis=(1, 2, 3)).tolist() == [2, 2, 2]
    assert ev.to_frames(e, (4, 2, 2), n_time_bins=3, overlap=0.5).sum(axis=(1, 2, 3)).tolist() == [2, 2, 2]


@pytest.mark.parametrize("mode", [dict(n_time_bins=7), dict(n_event_bins=5),
                                  dict(event_count=33, include_incomplete=True),
                                  dict(time_window=1234.5, include_incomplete=True)])
def test_to_frames_counts_every_event_once(mode):
    rng = np.random.default_rng(1)
    n = 500
    e = ev.make_events(x=rng.integers(0, 34, n), y=rng.integers(0, 34, n), t=np.sort(rng.integers(0, 300_000, n)),
                       p=rng.integers(0, 2, n))
    f = ev.to_frames(e, (34, 34, 2), **mode)
    assert f.sum() == n
    # per pixel and polarity, the frames add up to the whole recording's histogram
    whole = np.zeros((2, 34, 34), np.int64)
    np.add.at(whole, (e["p"], e["y"], e["x"]), 1)
    np.testing.assert_array_equal(f.sum(axis=0), whole)


def test_to_frames_audio_single_polarity_and_signed_polarity():
    a = ev.make_events(x=[0, 699, 699], t=[0, 5, 10])
    f = ev.to_frames(a, (700, 1, 1), n_time_bins=1)
    assert f.shape == (1, 1, 700) and f[0, 0, 699] == 2 and f[0, 0, 0] == 1
    s = ev.make_events(x=[0, 1], y=[0, 0], t=[0, 1], p=[-1, 1])
    g = ev.to_frames(s, (2, 1, 2), n_time_bins=1)
    assert g[0, 0, 0, 0] == 1 and g[0, 1, 0, 1] == 1  # -1 -> OFF (index 0), +1 -> ON (index 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "exactly one of"),
    (dict(n_time_bins=2, time_window=10), "exactly one of"),
    (dict(time_window=-5), "'time_window' must be > 0"),
    (dict(time_window=10, overlap=10), "'overlap' must be < 10"),
    (dict(n_time_bins=0), "'n_time_bins' must be >= 1"),
    (dict(n_time_bins=2, overlap=1.0), "'overlap' must be < 1"),
    (dict(event_count=2.5), "'event_count' must be an integer"),
])
def test_to_frames_rejects_bad_slicing(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ev.to_frames(_tiny(), (4, 2, 2), **kwargs)


def test_to_frames_rejects_bad_sensor_and_events():
    with pytest.raises(ValueError, match="x spans.*sensor width 3"):
        ev.to_frames(_tiny(), (3, 2, 2), n_time_bins=1)
    with pytest.raises(ValueError, match="sensor_size"):
        ev.to_frames(_tiny(), (4, 2), n_time_bins=1)
    with pytest.raises(TypeError, match="'events' must be a NumPy structured array"):
        ev.to_frames(np.zeros((3, 4)), (4, 2, 2), n_time_bins=1)
    floats = np.zeros(2, dtype=[("x", "i2"), ("y", "i2"), ("t", "f8"), ("p", "i1")])
    with pytest.raises(TypeError, match="field 't'.*integer microseconds"):
        ev.to_frames(floats, (4, 2, 2), n_time_bins=1)


# ----------------------------------------------------------------------------------------------- to_dense, pad_batch

def test_to_dense_shd_like_events():
    a = ev.make_events(x=[0, 5, 5, 5, 699], t=[0, 999, 999, 1000, 2500])
    d = ev.to_dense(a, 700, dt=1.0)  # 1 ms steps from t = 0
    assert d.shape == (3, 700) and d.dtype == np.float32
    assert d[0, 0] == 1 and d[0, 5] == 2 and d[1, 5] == 1 and d[2, 699] == 1 and d.sum() == 5
    b = ev.to_dense(a, 700, dt=1.0, binary=True)
    assert b[0, 5] == 1 and b.sum() == 4
    np.testing.assert_array_equal(ev.to_dense(a, 700, dt_us=1000), d)
    fixed = ev.to_dense(a, 700, dt=0.5, duration=1.0)  # two steps of 500 µs; later events dropped
    assert fixed.shape == (2, 700) and fixed[0, 0] == 1 and fixed[1, 5] == 2 and fixed.sum() == 3
    assert ev.to_dense(a, 700, dt=1.0, duration_us=10_000).shape == (10, 700)
    assert ev.to_dense(a[:0], 700, dt=1.0).shape == (0, 700)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_channels=700), "exactly one of 'dt'"),
    (dict(n_channels=700, dt=1.0, dt_us=1000), "exactly one of 'dt'"),
    (dict(n_channels=700, dt=-1.0), "'dt' must be > 0"),
    (dict(n_channels=600, dt=1.0), "outside \\[0, 600\\).*n_channels"),
    (dict(n_channels=700, dt=1.0, duration=-1), "'duration' must be >= 0"),
])
def test_to_dense_rejects_bad_input(kwargs, match):
    a = ev.make_events(x=[0, 699], t=[0, 5])
    with pytest.raises((ValueError, TypeError), match=match):
        ev.to_dense(a, **kwargs)


def test_pad_batch_for_fit():
    seqs = [np.ones((3, 4)), 2 * np.ones((5, 4)), np.zeros((0, 4))]
    batch, lengths = ev.pad_batch(seqs)
    assert batch.shape == (3, 5, 4) and batch.dtype == np.float32 and lengths.tolist() == [3, 5, 0]
    assert batch[0, :3].min() == 1 and batch[0, 3:].max() == 0 and batch[1].min() == 2
    cut, cut_lengths = ev.pad_batch(seqs, length=4, value=-1.0)
    assert cut.shape == (3, 4, 4) and cut_lengths.tolist() == [3, 4, 0] and cut[0, 3].tolist() == [-1] * 4
    with pytest.raises(ValueError, match="mixes channel counts"):
        ev.pad_batch([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="'sequences'\\[0\\] has shape"):
        ev.pad_batch([np.ones(3)])


def test_shd_file_to_training_batch(tmp_path):
    data = ev.read_shd(_write_shd(tmp_path / "shd.h5"))
    x, lengths = ev.pad_batch([ev.to_dense(e, 700, dt=10.0, duration=1000.0) for e in data.events])
    assert x.shape == (4, 100, 700) and x.dtype == np.float32 and lengths.tolist() == [100] * 4
    assert x.sum() == sum(len(e) for e in data.events)  # every spike lies within 1 s


# ----------------------------------------------------------------------------------------------- augmentations

def _denoise_reference(events, filter_time):
    """The definition, event by event: keep if a 4-neighbour fired earlier, less than filter_time before."""
    last = {}
    keep = []
    for x, y, t in zip(events["x"].tolist(), events["y"].tolist(), events["t"].tolist()):
        keep.append(any(t - last[n] < filter_time for n in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))
                        if n in last))
        last[(x, y)] = t
    return np.array(keep, bool)


def test_denoise_keeps_supported_events_only():
    e = ev.make_events(x=[5, 6, 20, 6], y=[5, 5, 20, 5], t=[0, 100, 150, 20_000], p=[1, 1, 1, 1])
    out = ev.denoise(e, filter_time=1000)
    assert out["t"].tolist() == [100]  # (6,5) follows its neighbour (5,5) by 100 µs; the rest are isolated
    rng = np.random.default_rng(3)
    n = 2000
    r = ev.make_events(x=rng.integers(0, 16, n), y=rng.integers(0, 16, n), t=np.sort(rng.integers(0, 200_000, n)),
                       p=rng.integers(0, 2, n))
    np.testing.assert_array_equal(ev.denoise(r, 2000), r[_denoise_reference(r, 2000)])
    with pytest.raises(ValueError, match="'filter_time' must be > 0"):
        ev.denoise(e, filter_time=0)


def test_downsample_crop_and_flip():
    e = ev.make_events(x=[0, 1, 2, 127], y=[3, 4, 5, 127], t=[0, 10, 21, 30], p=[1, 0, 1, 0])
    d = ev.downsample(e, spatial_factor=0.5, time_factor=0.1)
    assert d["x"].tolist() == [0, 0, 1, 63] and d["y"].tolist() == [1, 2, 2, 63] and d["t"].tolist() == [0, 1, 2, 3]
    assert d.dtype == e.dtype and e["x"].tolist() == [0, 1, 2, 127]  # input untouched
    assert ev.crop_time(e, 10, 30)["t"].tolist() == [10, 21]  # [start, end)
    assert ev.crop_time(e, start=21)["t"].tolist() == [21, 30]
    f = ev.flip_lr(e, (128, 128, 2))
    assert f["x"].tolist() == [127, 126, 125, 0]
    np.testing.assert_array_equal(ev.flip_lr(f, (128, 128, 2)), e)
    assert ev.flip_ud(e, (128, 128, 2))["y"].tolist() == [124, 123, 122, 0]
    with pytest.raises(ValueError, match="'spatial_factor' must be > 0"):
        ev.downsample(e, spatial_factor=0)
    with pytest.raises(ValueError, match="'end'.*before 'start'"):
        ev.crop_time(e, 10, 5)


def test_time_jitter_and_drop_events_are_seeded():
    rng = np.random.default_rng(0)
    n = 1000
    e = ev.make_events(x=rng.integers(0, 10, n), y=rng.integers(0, 10, n), t=np.sort(rng.integers(0, 10**6, n)),
                       p=rng.integers(0, 2, n))
    np.testing.assert_array_equal(ev.time_jitter(e, 0.0, rng=1), e)
    j = ev.time_jitter(e, 100.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(j, ev.time_jitter(e, 100.0, rng=5))
    shift = (j["t"] - e["t"]).astype(float)
    assert 80 < shift.std() < 120 and abs(shift.mean()) < 15 and np.all(j["x"] == e["x"])
    neg = ev.time_jitter(e, 10_000.0, rng=2, clip_negative=True, sort_timestamps=True)
    assert neg["t"].min() >= 0 and np.all(np.diff(neg["t"]) >= 0)
    dropped = ev.drop_events(e, 0.3, rng=4)
    assert len(dropped) == 700 and np.all(np.diff(dropped["t"]) >= 0)
    assert len(ev.drop_events(e, 0.0, rng=4)) == n and len(ev.drop_events(e, 1.0, rng=4)) == 0
    with pytest.raises(ValueError, match="'p' must be <= 1"):
        ev.drop_events(e, 1.5)
    with pytest.raises(ValueError, match="'std' must be >= 0"):
        ev.time_jitter(e, -1.0)
    with pytest.raises(TypeError, match="'rng'"):
        ev.drop_events(e, 0.5, rng="seed")


def test_to_voxel_grid_splits_polarity_between_neighbouring_bins():
    e = ev.make_events(x=[0, 1, 1], y=[0, 0, 1], t=[0, 50, 100], p=[1, 0, 1])
    v = ev.to_voxel_grid(e, (2, 2, 2), n_time_bins=3)  # normalised times 0, 1, 2
    assert v.shape == (3, 1, 2, 2) and v.dtype == np.float32
    assert v[0, 0, 0, 0] == 1 and v[1, 0, 0, 1] == -1 and v[2, 0, 1, 1] == 1 and np.abs(v).sum() == 3
    w = ev.to_voxel_grid(e, (2, 2, 2), n_time_bins=2)  # t=50 -> 0.5: half in each bin
    assert w[0, 0, 0, 1] == -0.5 and w[1, 0, 0, 1] == -0.5 and w.sum() == 1


def test_compose_applies_in_order():
    e = _tiny()
    pipeline = ev.Compose([partial(ev.crop_time, start=10), partial(ev.flip_lr, sensor_size=(4, 2, 2)),
                           partial(ev.to_frames, sensor_size=(4, 2, 2), n_time_bins=1)])
    frames = pipeline(e)
    assert frames.shape == (1, 2, 2, 4) and frames.sum() == 3 and frames[0, 0, 0, 2] == 1  # x=1 -> 2
    assert "crop_time" in repr(pipeline)
    with pytest.raises(TypeError, match="'transforms'\\[1\\] is not callable"):
        ev.Compose([ev.denoise, 3])


def test_nmnist_file_to_frames(tmp_path):
    rng = np.random.default_rng(7)
    n = 300
    x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 300_000, n))
    path = tmp_path / "sample.bin"
    path.write_bytes(b"".join(_nmnist_record(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(x, y, p, t)))
    frames = ev.to_frames(ev.read_nmnist(path), (34, 34, 2), n_time_bins=10)
    assert frames.shape == (10, 2, 34, 34) and frames.sum() == n
    assert frames[:, 1].sum() == p.sum()


def test_shd_file_to_fit(tmp_path):
    """An SHD-layout file, binned with to_dense and padded with pad_batch, trains a brainsim Sequential."""
    import jax
    import optax
    from brainsim.train import LeakyReadout, Sequential, SpikingLayer, fit, losses

    rng = np.random.default_rng(0)
    samples = []
    for i in range(16):  # class 0 fires in channels 0-9, class 1 in channels 10-19
        label = i % 2
        n = 60
        samples.append((np.sort(rng.uniform(0, 0.05, n)).astype(np.float32),
                        rng.integers(10 * label, 10 * label + 10, n).astype(np.uint16), label, 0))
    data = ev.read_shd(_write_shd(tmp_path / "train.h5", samples))
    x, lengths = ev.pad_batch([ev.to_dense(e, 20, dt=1.0, duration=50.0) for e in data.events])
    assert x.shape == (16, 50, 20) and x.dtype == np.float32 and lengths.tolist() == [50] * 16
    k1, k2 = jax.random.split(jax.random.key(0))
    model = Sequential([SpikingLayer(20, 16, key=k1, scale=3.0), LeakyReadout(16, 2, key=k2)])

    def loss_fn(m, xs, label, key):
        out, _ = m(xs)
        return losses.ce_max_membrane(out, label), {"accuracy": losses.accuracy_max_membrane(out, label)}

    result = fit(model, loss_fn, (x, data.labels.astype(np.int32)), optimizer=optax.adam(1e-2), epochs=6,
                 batch_size=8, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_accuracy"] == 1.0
