"""Incremental snapshots of the detection service: what changed is encoded again, the rest is
copied from the last file, and a restored service equals the one saved."""

from __future__ import annotations

import asyncio
import os

import msgspec
import numpy as np
import pytest

from atoll.bus.memory import MemoryBus
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.service import DetectionService
from atoll.detect.state_file import StateFile

T0 = 1_764_000_000_000_000
S = 1_000_000


def _batch(devices: list[str], start: int, n: int, seed: int = 0) -> PointBatch:
    """``n`` readings of two metrics for each device, one per second from ``start``."""
    rng = np.random.default_rng(seed + start)
    keys = tuple(SeriesKey("p", d, m) for d in devices for m in ("temp", "hum"))
    ts = T0 + (start + np.arange(n)) * S
    return PointBatch(
        keys,
        np.repeat(np.arange(len(keys), dtype=np.int32), n),
        np.tile(ts, len(keys)).astype(np.int64),
        rng.normal(20, 1, n * len(keys)),
    )


def _service(path) -> DetectionService:
    svc = DetectionService(MemoryBus(), None, state_path=path, snapshot_interval=0)
    svc.snapshot_slice = 3  # several slices, interleaved with copies
    return svc


def _equal(a: DetectionService, b: DetectionService) -> None:
    """Every series restored as it was saved: detector, decision, record, spans, times."""
    assert list(a.series) == list(b.series)
    for key, t in a.series.items():
        u = b.series[key]
        assert (u.name, u.last_ts, u.choice, u.model, u.spans, u.since) == (
            t.name,
            t.last_ts,
            t.choice,
            t.model,
            t.spans,
            t.since,
        ), key
        assert u.refit_after == pytest.approx(t.refit_after)
        assert u.detector.state() == t.detector.state(), key
        x = np.array([19.0, 35.0, 20.5])
        ts = np.array([t.last_ts + S, t.last_ts + 2 * S, t.last_ts + 3 * S])
        assert np.array_equal(
            u.detector.score_many(x.copy(), ts), t.detector.score_many(x.copy(), ts)
        ), key


async def test_incremental_snapshots_restore_what_was_saved(tmp_path):
    path = tmp_path / "state.msgpack"
    devices = [f"d{i}" for i in range(8)]
    svc = _service(path)
    await svc.process(_batch(devices, 0, 40))
    await svc.snapshot()
    assert svc.stats["snapshot_rows_encoded"] == 16 and svc.stats["snapshot_rows_copied"] == 0

    # Two devices send more, one device is new: 6 rows encoded again, 12 copied.
    await svc.process(_batch(["d2", "d5"], 40, 30, seed=1))
    await svc.process(_batch(["new"], 0, 30, seed=2))
    await svc.snapshot()
    assert svc.stats["snapshot_rows_encoded"] == 16 + 6
    assert svc.stats["snapshot_rows_copied"] == 12

    # The file equals the whole state encoded in one piece, and restores to equal detectors.
    assert msgspec.msgpack.decode(path.read_bytes()) == msgspec.msgpack.decode(
        await svc._in_worker(svc._encode_state)
    )
    again = _service(path)
    again._load()
    _equal(svc, again)

    # Nothing changed: everything copied, the file is the same.
    before = path.read_bytes()
    await svc.snapshot()
    assert svc.stats["snapshot_rows_copied"] == 12 + 18
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


async def test_every_nth_snapshot_and_a_replaced_file_encode_everything(tmp_path):
    path = tmp_path / "state.msgpack"
    svc = _service(path)
    svc.full_snapshot_every = 3
    await svc.process(_batch(["a", "b"], 0, 20))
    await svc.snapshot()  # first: full
    await svc.snapshot()  # copies
    await svc.snapshot()  # copies
    assert (svc.stats["snapshot_rows_encoded"], svc.stats["snapshot_rows_copied"]) == (4, 8)
    await svc.snapshot()  # three since the full one: full again
    assert (svc.stats["snapshot_rows_encoded"], svc.stats["snapshot_rows_copied"]) == (8, 8)
    # Someone else's file at the path: nothing is copied from it.
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(1, 1))
    await svc.snapshot()
    assert (svc.stats["snapshot_rows_encoded"], svc.stats["snapshot_rows_copied"]) == (12, 8)
    again = _service(path)
    again._load()
    _equal(svc, again)


async def test_a_cancelled_snapshot_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.msgpack"
    svc = _service(path)
    svc.snapshot_slice = 1
    await svc.process(_batch([f"d{i}" for i in range(20)], 0, 20))
    await svc.snapshot()
    saved = path.read_bytes()
    await svc.process(_batch([f"d{i}" for i in range(20)], 20, 5))
    task = asyncio.ensure_future(svc.snapshot())
    while svc.stats["snapshot_rows_encoded"] < 40 + 3:  # a few slices of the second written
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert svc.stats["snapshot_rows_encoded"] < 80, "cancelled before it was done"
    await asyncio.sleep(0.1)  # a write under way in its thread ends
    assert path.read_bytes() == saved
    assert not list(tmp_path.glob("*.tmp"))
    # What the cancelled snapshot did not write is still marked: the next one writes it.
    await svc.snapshot()
    again = _service(path)
    again._load()
    _equal(svc, again)


def test_state_file_copies_rows_from_the_file_it_wrote(tmp_path):
    path = tmp_path / "s.msgpack"
    sf = StateFile(path)
    rows = {k: [k, "x" * (10 + k)] for k in range(6)}
    w = sf.begin(1, 6, ("models", "bindings"))
    w.encoded([0, 1, 2, 3, 4, 5], [msgspec.msgpack.encode(rows[k]) for k in range(6)])
    w.finish({"models": [], "bindings": [1]})
    expect = {"format": 1, "series": list(rows.values()), "models": [], "bindings": [1]}
    assert msgspec.msgpack.decode(path.read_bytes()) == expect
    assert sf.reusable()

    rows[3] = [3, "changed"]
    w = sf.begin(2, 7, ("models", "bindings"))
    assert w.can_copy(0) and not w.can_copy(6)
    w.copied([0, 1, 2])
    w.encoded([3], [msgspec.msgpack.encode(rows[3])])
    w.copied([4, 5])
    w.encoded([6], [msgspec.msgpack.encode([6, "new"])])
    w.finish({"models": [9], "bindings": []})
    got = msgspec.msgpack.decode(path.read_bytes())
    assert got == {
        "format": 2,
        "series": [*rows.values(), [6, "new"]],
        "models": [9],
        "bindings": [],
    }
    # The offsets follow the new file: copying from it again gives the same rows.
    w = sf.begin(2, 7, ("models", "bindings"))
    w.copied([6, 5, 4, 3, 2, 1, 0])  # any order
    w.finish({"models": [9], "bindings": []})
    assert msgspec.msgpack.decode(path.read_bytes())["series"] == [
        [6, "new"],
        *reversed(list(rows.values())),
    ]


def test_state_file_refuses_a_short_or_mislabelled_file(tmp_path):
    sf = StateFile(tmp_path / "s.msgpack")
    w = sf.begin(1, 2, ("models",))
    w.encoded([0], [msgspec.msgpack.encode(0)])
    with pytest.raises(ValueError, match="announced"):
        w.finish({"models": []})
    w.abort()
    w = sf.begin(1, 0, ("models",))
    with pytest.raises(ValueError, match="announced"):
        w.finish({"bindings": []})
    w.abort()
    assert not (tmp_path / "s.msgpack").exists() and not list(tmp_path.glob("*.tmp"))


async def test_past_its_deadline_a_snapshot_keeps_the_last_state_of_known_series(tmp_path):
    """The snapshot on stop is bounded: past the deadline, changed series that the last file
    holds are copied as they were (and stay marked), only never-written ones are encoded."""
    path = tmp_path / "state.msgpack"
    svc = _service(path)
    await svc.process(_batch(["a", "b", "c"], 0, 30))
    await svc.snapshot()
    first = _service(path)
    first._load()
    await svc.process(_batch(["a", "b", "c"], 30, 10, seed=1))
    await svc.process(_batch(["new"], 0, 30, seed=2))
    encoded = svc.stats["snapshot_rows_encoded"]
    await svc.snapshot(deadline=0.0)  # already past: nothing known is encoded again
    assert svc.stats["snapshot_rows_encoded"] - encoded == 2  # new's two series
    assert svc.stats["snapshot_rows_stale"] == 6
    stale = _service(path)
    stale._load()
    assert len(stale.series) == 8
    for key, t in first.series.items():  # as the first snapshot had them
        assert stale.series[key].detector.state() == t.detector.state(), key
    # They are still marked: the next snapshot without a deadline writes them as they are now.
    await svc.snapshot()
    assert svc.stats["snapshot_rows_encoded"] - encoded == 2 + 6
    again = _service(path)
    again._load()
    _equal(svc, again)
