"""Conformance suite for the ``SeriesStore`` port.

A backend is done when every check passes::

    check_store(MemoryStore)                                # runs all checks
    check_store(lambda: DuckDBStore(path()), reopen=reopen) # persistent: also durability

or, one pytest test per check::

    @pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
    def test_conformance(check):
        check(make_store, reopen)

``make_store()`` must return a new, empty store each call. ``reopen(store)`` closes a
persistent store and returns a new instance over the same data (``None``: not persistent).
Expected answers are computed here from the raw points by brute force, never by another adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.port import AGGREGATES, ProjectUsage, SeriesStore, UsageReader

MakeStore = Callable[[], SeriesStore]
Reopen = Callable[[SeriesStore], SeriesStore] | None

S = 1_000_000  # µs per second
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_790_000_000 * S + 123_457  # deliberately not aligned to any bucket

K = SeriesKey("plant", "pump-1", "temperature")


@contextmanager
def _opened(make_store: MakeStore):
    store = make_store()
    try:
        yield store
    finally:
        store.close()


def _batch(pairs: dict[SeriesKey, tuple[np.ndarray, np.ndarray]]) -> PointBatch:
    return PointBatch.concat([PointBatch.of_series(k, ts, v) for k, (ts, v) in pairs.items()])


def _walk(seed: int, days: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Irregular, unique timestamps (1-14 s apart) and a random walk with a few spikes."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY / (7.5 * S))
    ts = T0 + np.cumsum(rng.integers(1 * S, 14 * S, n))
    value = np.cumsum(rng.normal(0, 1, n))
    spikes = rng.choice(n, 5, replace=False)
    value[spikes] += rng.choice([-500.0, 500.0], 5)
    return ts.astype(np.int64), value


def _append_shuffled(store: SeriesStore, key: SeriesKey, ts, value, chunks: int, seed: int) -> None:
    """Append in chunks of random points, so tiers must merge late and out-of-order data."""
    order = np.random.default_rng(seed).permutation(len(ts))
    for part in np.array_split(order, chunks):
        store.append(PointBatch.of_series(key, ts[part], value[part]))


def _expected_buckets(ts, value, start, end, bucket) -> dict[str, np.ndarray]:
    m = (ts >= start) & (ts < end)
    ts, value = ts[m], value[m]
    order = np.argsort(ts, kind="stable")
    ts, value = ts[order], value[order]
    b = ts // bucket * bucket
    starts, first, group = np.unique(b, return_index=True, return_inverse=True)
    count = np.bincount(group, minlength=len(starts))
    lo = np.full(len(starts), np.inf)
    hi = np.full(len(starts), -np.inf)
    np.minimum.at(lo, group, value)
    np.maximum.at(hi, group, value)
    return {
        "start": starts,
        "min": lo,
        "max": hi,
        "avg": np.bincount(group, weights=value, minlength=len(starts)) / count,
        "count": count,
        "first": value[first],
        "last": value[np.cumsum(count) - 1],
    }


def _assert_buckets(store, key, ts, value, start, end, bucket) -> None:
    got = store.query_buckets(key, start, end, bucket)
    want = _expected_buckets(ts, value, start, end, bucket)
    where = f"bucket={bucket} start={start} end={end}"
    assert got.start.dtype == np.int64, where
    assert got.start.tolist() == want["start"].tolist(), where
    assert set(got.columns) == set(AGGREGATES), where
    assert got.columns["count"].tolist() == want["count"].tolist(), where
    for agg in ("min", "max", "first", "last"):
        np.testing.assert_array_equal(got.columns[agg], want[agg], err_msg=f"{agg} {where}")
    # atol: a mean near 0 of large values cancels; summation order differs per backend.
    np.testing.assert_allclose(got.columns["avg"], want["avg"], rtol=1e-9, atol=1e-9, err_msg=where)


def _assert_chart(store, key, ts, value, start, end, width) -> None:
    got = store.query_chart(key, start, end, width)
    where = f"width={width} start={start} end={end}"
    m = (ts >= start) & (ts < end)
    rts, rv = ts[m], value[m]
    assert got.ts.dtype == np.int64 and got.value.dtype == np.float64, where
    assert len(got.ts) <= 2 * width + 2, f"{len(got.ts)} points for {where}"
    assert np.all(np.diff(got.ts) >= 0), f"not in time order: {where}"
    if not len(rts):
        assert len(got.ts) == 0, where
        return
    # Every chart point is a real point of the range.
    real = dict(zip(rts.tolist(), rv.tolist(), strict=True))
    for t, v in zip(got.ts.tolist(), got.value.tolist(), strict=True):
        assert real.get(t) == v, f"({t}, {v}) is not a raw point: {where}"
    # The extremes survive at their true time.
    assert got.value.min() == rv.min() and got.value.max() == rv.max(), where
    for extreme in (rv.min(), rv.max()):  # at a time where the raw data has it (ties: any)
        assert np.isin(got.ts[got.value == extreme], rts[rv == extreme]).any(), where
    pixel_us = max(1, -(-(end - start) // width))
    if np.bincount((rts - start) // pixel_us).max() == 1:
        # At most one point per pixel: the chart is the raw data.
        assert got.ts.tolist() == np.sort(rts).tolist(), where
    else:
        # It draws the whole range, not just part of it.
        span = end - start
        assert got.ts[0] - rts.min() <= span // width * 2 + HOUR, where
        assert rts.max() - got.ts[-1] <= span // width * 2 + HOUR, where


# --------------------------------------------------------------------------------------- checks


def check_empty_results(make_store: MakeStore, reopen: Reopen = None) -> None:
    with _opened(make_store) as store:
        store.append(PointBatch.of_series(K, [], []))  # an empty batch is a no-op
        raw = store.query_raw(K, 0, T0 + DAY)
        assert len(raw.ts) == 0 and raw.ts.dtype == np.int64 and raw.value.dtype == np.float64
        b = store.query_buckets(K, 0, T0, HOUR)
        assert len(b.start) == 0 and set(b.columns) == set(AGGREGATES)
        assert all(len(c) == 0 for c in b.columns.values())
        assert len(store.query_chart(K, 0, T0, 500).ts) == 0
        assert store.latest("plant") == {}
        assert store.series("plant") == []
        assert store.delete_before("plant", T0) == 0
        store.append(PointBatch.of_series(K, [T0, T0 + S], [1.0, 2.0]))
        # Ranges that hold nothing, including start >= end.
        assert len(store.query_raw(K, T0 + 2 * S, T0 + DAY).ts) == 0
        assert len(store.query_raw(K, T0 + S, T0).ts) == 0
        assert len(store.query_raw(K, T0, T0).ts) == 0
        assert len(store.query_buckets(K, T0 + S, T0, MIN).start) == 0
        assert len(store.query_chart(K, T0 + S, T0, 100).ts) == 0
        assert len(store.query_raw(SeriesKey("plant", "pump-1", "nope"), 0, T0 + DAY).ts) == 0
        assert store.latest("other") == {} and store.series("other") == []
        # The widest possible range works (the store clamps it, nothing overflows).
        lo, hi = -(2**63), 2**63 - 1
        assert store.query_raw(K, lo, hi).value.tolist() == [1.0, 2.0]
        assert store.query_buckets(K, lo, hi, DAY).columns["count"].tolist() == [2]
        assert store.query_buckets(K, lo, hi, HOUR).columns["count"].tolist() == [2]
        assert sorted(store.query_chart(K, lo, hi, 1000).value.tolist()) == [1.0, 2.0]


def check_raw_range_is_half_open_and_ordered(make_store: MakeStore, reopen: Reopen = None) -> None:
    with _opened(make_store) as store:
        ts = T0 + np.arange(100, dtype=np.int64) * S
        value = np.arange(100, dtype=np.float64) * 1.5
        store.append(PointBatch.of_series(K, ts[50:][::-1], value[50:][::-1]))
        store.append(PointBatch.of_series(K, ts[:50][::-1], value[:50][::-1]))
        got = store.query_raw(K, int(ts[10]), int(ts[20]))
        assert got.ts.tolist() == ts[10:20].tolist()  # start included, end excluded
        assert got.value.tolist() == value[10:20].tolist()
        got = store.query_raw(K, int(ts[10]) + 1, int(ts[20]) + 1)
        assert got.ts.tolist() == ts[11:21].tolist()
        everything = store.query_raw(K, 0, 2**62)
        assert everything.ts.tolist() == ts.tolist()
        assert store.query_raw(K, 0, 2**62, limit=7).ts.tolist() == ts[:7].tolist()
        assert store.query_raw(K, int(ts[90]), 2**62, limit=100).ts.tolist() == ts[90:].tolist()


def check_series_are_isolated(make_store: MakeStore, reopen: Reopen = None) -> None:
    keys = [
        SeriesKey("plant", "pump-1", "temperature"),
        SeriesKey("plant", "pump-1", "pressure"),
        SeriesKey("plant", "pump-2", "temperature"),
        SeriesKey("farm", "pump-1", "temperature"),  # same device and metric, other project
        SeriesKey("farm", "sensor", "temperature"),
    ]
    ts = T0 + np.arange(200, dtype=np.int64) * 10 * S
    data = {k: (ts + i, np.full(200, float(i))) for i, k in enumerate(keys)}
    with _opened(make_store) as store:
        store.append(_batch(data))
        for i, k in enumerate(keys):
            raw = store.query_raw(k, 0, 2**62)
            assert raw.ts.tolist() == (ts + i).tolist(), k
            assert set(raw.value.tolist()) == {float(i)}, k
            b = store.query_buckets(k, 0, 2**62, DAY)
            assert b.columns["count"].tolist() == [200], k
            assert b.columns["max"].tolist() == [float(i)], k
            chart = store.query_chart(k, T0, T0 + DAY, 50)
            assert set(chart.value.tolist()) == {float(i)}, k
        assert store.series("plant") == sorted(keys[:3])
        assert store.series("farm") == sorted(keys[3:])
        assert store.series("plant", "pump-1") == sorted(keys[:2])
        assert store.series("farm", "pump-1") == [keys[3]]
        last = int(ts[-1])
        assert store.latest("plant") == {k: (last + i, float(i)) for i, k in enumerate(keys[:3])}
        assert store.latest("plant", "pump-2") == {keys[2]: (last + 2, 2.0)}
        assert store.latest("farm", "pump-1") == {keys[3]: (last + 3, 3.0)}
        assert store.latest("plant", "ghost") == {}
        # Retention in one project leaves the other alone.
        assert store.delete_before("farm", 2**63 - 1) == 400
        assert store.series("farm") == [] and store.latest("farm") == {}
        assert store.series("plant") == sorted(keys[:3])
        assert len(store.query_raw(keys[0], 0, 2**62).ts) == 200


def check_duplicates_in_one_batch_keep_the_last(
    make_store: MakeStore, reopen: Reopen = None
) -> None:
    other = SeriesKey("plant", "pump-1", "pressure")
    with _opened(make_store) as store:
        # Interleaved series, out of order, each (series, ts) up to three times.
        index = np.array([0, 1, 0, 0, 1, 0, 1], np.int32)
        ts = np.array([T0 + S, T0 + S, T0, T0 + S, T0 + S, T0, T0], np.int64)
        value = np.array([1.0, 10.0, 2.0, 3.0, 11.0, 4.0, 12.0])
        store.append(PointBatch((K, other), index, ts, value))
        assert store.query_raw(K, 0, 2**62).ts.tolist() == [T0, T0 + S]
        assert store.query_raw(K, 0, 2**62).value.tolist() == [4.0, 3.0]
        assert store.query_raw(other, 0, 2**62).value.tolist() == [12.0, 11.0]
        for bucket in (S // 10, MIN, HOUR, DAY):
            b = store.query_buckets(K, 0, 2**62, bucket)
            assert int(b.columns["count"].sum()) == 2, bucket
            assert b.columns["min"].min() == 3.0 and b.columns["max"].max() == 4.0, bucket
        b = store.query_buckets(K, 0, 2**62, DAY)
        assert (b.columns["first"][0], b.columns["last"][0], b.columns["avg"][0]) == (4.0, 3.0, 3.5)
        assert store.latest("plant") == {K: (T0 + S, 3.0), other: (T0 + S, 11.0)}
        # A batch whose duplicates also replace a stored point: its last one wins.
        store.append(PointBatch.of_series(K, [T0 + 2 * S, T0 + S, T0 + 2 * S], [5.0, 6.0, 7.0]))
        assert store.query_raw(K, 0, 2**62).value.tolist() == [4.0, 6.0, 7.0]
        assert store.query_buckets(K, 0, 2**62, HOUR).columns["count"].sum() == 3
        assert store.latest("plant", "pump-1")[K] == (T0 + 2 * S, 7.0)


def check_bucket_alignment(make_store: MakeStore, reopen: Reopen = None) -> None:
    with _opened(make_store) as store:
        store.append(PointBatch.of_series(K, [-5, 5, 12, 19, 20], [1.0, 2.0, 3.0, 4.0, 5.0]))
        b = store.query_buckets(K, -100, 100, 10)
        assert b.start.tolist() == [-10, 0, 10, 20]  # epoch-aligned, also before the epoch
        assert b.columns["count"].tolist() == [1, 1, 2, 1]
        assert b.columns["first"].tolist() == [1.0, 2.0, 3.0, 5.0]
        assert b.columns["last"].tolist() == [1.0, 2.0, 4.0, 5.0]
        assert b.columns["avg"].tolist() == [1.0, 2.0, 3.5, 5.0]
        # A range that starts mid-bucket still labels the bucket by its aligned start.
        b = store.query_buckets(K, 13, 100, 10, ("count", "min"))
        assert b.start.tolist() == [10, 20] and set(b.columns) == {"count", "min"}
        assert b.columns["count"].tolist() == [1, 1] and b.columns["min"].tolist() == [4.0, 5.0]
        assert b.columns["count"].dtype == np.int64 and b.columns["min"].dtype == np.float64


def check_buckets_match_raw_for_all_aggregates(
    make_store: MakeStore, reopen: Reopen = None
) -> None:
    ts, value = _walk(seed=1)
    with _opened(make_store) as store:
        _append_shuffled(store, K, ts, value, chunks=12, seed=2)
        lo, hi = int(ts[0]), int(ts[-1]) + 1
        ranges = [
            (0, 2**62),
            (lo, hi),
            (lo + 17 * MIN + 3, hi - 5 * HOUR - 11),  # unaligned edges: partial tier buckets
            (T0 + DAY, T0 + 2 * DAY),
            (T0 + DAY + 30 * S, T0 + DAY + 50 * MIN),  # shorter than a tier bucket
        ]
        buckets = (10 * S, MIN, 7 * MIN, 90 * MIN, HOUR, 2 * HOUR, DAY, 7 * S + 3)
        for start, end in ranges:
            for bucket in buckets:
                _assert_buckets(store, K, ts, value, start, end, bucket)


def check_chart_is_bounded_and_keeps_extremes(make_store: MakeStore, reopen: Reopen = None) -> None:
    ts, value = _walk(seed=3)
    with _opened(make_store) as store:
        _append_shuffled(store, K, ts, value, chunks=6, seed=4)
        lo, hi = int(ts[0]), int(ts[-1]) + 1
        cases = [
            (lo, hi, 1000),  # all levels: raw
            (lo, hi, 300),  # minute rollups
            (lo, hi, 20),  # hour rollups
            (lo - 5 * DAY, hi + 5 * DAY, 100),
            (lo + 7 * MIN + 1, hi - 3 * HOUR - 1, 200),  # unaligned
            (T0 + DAY, T0 + DAY + 10 * MIN, 2000),  # zoomed in: fewer points than pixels
            (T0 + DAY, T0 + DAY + 10 * MIN, 10),
            (T0 + DAY, T0 + DAY + 1, 10),
            (lo, hi, 1),
        ]
        for start, end, width in cases:
            _assert_chart(store, K, ts, value, start, end, width)


def check_latest_is_the_newest_point(make_store: MakeStore, reopen: Reopen = None) -> None:
    other = SeriesKey("plant", "pump-1", "pressure")
    with _opened(make_store) as store:
        store.append(PointBatch.of_series(K, [T0 + 10 * S, T0 + 5 * S], [10.0, 5.0]))
        store.append(PointBatch.of_series(other, [T0], [1.0]))
        assert store.latest("plant") == {K: (T0 + 10 * S, 10.0), other: (T0, 1.0)}
        store.append(PointBatch.of_series(K, [T0 + 7 * S], [7.0]))  # late, older point
        assert store.latest("plant", "pump-1")[K] == (T0 + 10 * S, 10.0)
        store.append(PointBatch.of_series(K, [T0 + 11 * S], [11.0]))
        assert store.latest("plant")[K] == (T0 + 11 * S, 11.0)
        t, v = store.latest("plant", "pump-1")[K]
        assert type(t) is int and type(v) is float  # plain Python numbers, JSON-ready


def check_usage_counts_per_project(make_store: MakeStore, reopen: Reopen = None) -> None:
    """``usage`` (optional port): points per project, those since a minute-aligned time,
    the newest stamp; after retention too; projects without data are absent."""
    with _opened(make_store) as store:
        reader: object = store
        if not isinstance(reader, UsageReader):
            return
        usage = reader.usage
        assert usage(0) == {}
        ts, value = _walk(seed=11, days=0.5)
        _append_shuffled(store, K, ts, value, chunks=3, seed=12)
        pressure = SeriesKey("plant", "pump-2", "pressure")
        store.append(PointBatch.of_series(pressure, [T0, T0 + S], [1.0, 2.0]))
        other = SeriesKey("other", "pump-9", "temperature")
        store.append(PointBatch.of_series(other, [T0 + 5 * S], [3.0]))
        since = T0 - T0 % MIN + 2 * HOUR
        got = usage(since)
        plant_recent = int(np.sum(ts >= since))
        assert got == {
            "plant": ProjectUsage(len(ts) + 2, plant_recent, int(ts[-1])),
            "other": ProjectUsage(1, 0, T0 + 5 * S),
        }, got
        store.delete_before("plant", since)
        assert usage(since)["plant"] == ProjectUsage(plant_recent, plant_recent, int(ts[-1]))


def check_retention(make_store: MakeStore, reopen: Reopen = None) -> None:
    ts, value = _walk(seed=5)
    short = SeriesKey("plant", "pump-2", "temperature")
    kept = SeriesKey("other", "pump-9", "temperature")
    with _opened(make_store) as store:
        _append_shuffled(store, K, ts, value, chunks=4, seed=6)
        store.append(PointBatch.of_series(short, [T0, T0 + S], [1.0, 2.0]))
        store.append(PointBatch.of_series(kept, [T0, T0 + S], [1.0, 2.0]))
        cut = T0 + DAY + 37 * MIN + 13 * S + 5  # inside a minute and an hour bucket
        gone = store.delete_before("plant", cut)
        assert gone == int(np.sum(ts < cut)) + 2
        m = ts >= cut
        ts, value = ts[m], value[m]
        assert store.query_raw(K, 0, 2**62).ts.tolist() == ts.tolist()
        for bucket in (MIN, HOUR, DAY, 90 * MIN):
            _assert_buckets(store, K, ts, value, 0, 2**62, bucket)
        _assert_chart(store, K, ts, value, T0, T0 + 4 * DAY, 20)
        _assert_chart(store, K, ts, value, T0, T0 + 4 * DAY, 300)
        assert store.series("plant") == [K]  # a series with nothing left is gone
        assert set(store.latest("plant")) == {K}
        assert store.latest("other") == {kept: (T0 + S, 2.0)}
        assert store.delete_before("plant", cut) == 0  # idempotent
        # New data after retention is stored and rolled up like any other.
        store.append(PointBatch.of_series(short, [cut + HOUR], [4.0]))
        assert store.query_buckets(short, 0, 2**62, HOUR).columns["count"].tolist() == [1]


def check_durable_across_reopen(make_store: MakeStore, reopen: Reopen = None) -> None:
    if reopen is None:
        return  # not a persistent adapter
    ts, value = _walk(seed=7, days=1.5)
    other = SeriesKey("farm", "pump-3", "flow")
    store = make_store()
    try:
        _append_shuffled(store, K, ts, value, chunks=3, seed=8)
        store.append(PointBatch.of_series(other, [T0], [42.0]))
        store = reopen(store)
        assert store.query_raw(K, 0, 2**62).ts.tolist() == ts.tolist()
        assert store.query_raw(K, 0, 2**62).value.tolist() == value.tolist()
        _assert_buckets(store, K, ts, value, 0, 2**62, HOUR)
        _assert_chart(store, K, ts, value, int(ts[0]), int(ts[-1]) + 1, 50)
        assert store.latest("farm") == {other: (T0, 42.0)}
        assert store.series("plant") == [K]
        # The series catalog continues where it left off.
        new = SeriesKey("farm", "pump-4", "flow")
        store.append(PointBatch.of_series(new, [T0 + S], [43.0]))
        store.append(PointBatch.of_series(other, [T0 + S], [44.0]))
        store = reopen(store)
        assert store.latest("farm") == {other: (T0 + S, 44.0), new: (T0 + S, 43.0)}
        assert store.query_raw(other, 0, 2**62).value.tolist() == [42.0, 44.0]
    finally:
        store.close()


def check_large_batch(make_store: MakeStore, reopen: Reopen = None) -> None:
    keys = [SeriesKey("plant", f"dev-{i}", "v") for i in range(10)]
    n = 50_000  # 500k points in one append
    with _opened(make_store) as store:
        rng = np.random.default_rng(9)
        idx = np.repeat(np.arange(10, dtype=np.int32), n)
        ts = np.tile(T0 + np.arange(n, dtype=np.int64) * S, 10)
        value = rng.normal(size=10 * n)
        store.append(PointBatch(tuple(keys), idx, ts, value))
        for i in (0, 9):
            raw = store.query_raw(keys[i], 0, 2**62)
            assert len(raw.ts) == n
            np.testing.assert_array_equal(raw.value, value[i * n : (i + 1) * n])
        b = store.query_buckets(keys[3], 0, 2**62, DAY)
        assert int(b.columns["count"].sum()) == n
        assert len(store.series("plant")) == 10


def check_many_new_series_in_one_batch(make_store: MakeStore, reopen: Reopen = None) -> None:
    """A fleet's first readings: one batch brings thousands of series never seen before, mixed
    with known ones, in no particular order. Every point lands in its own series, and a store
    that is reopened keeps every id and hands out new ones without reusing any."""
    rng = np.random.default_rng(21)
    known = [SeriesKey("fleet", f"old-{i}", "v") for i in range(3)]
    fresh = [SeriesKey("fleet", f"dev-{i // 4}", f"m{i % 4}") for i in range(10_000)]
    keys = tuple(rng.permutation(np.array(known + fresh, dtype=object)).tolist())
    keys = tuple(SeriesKey(*k) for k in keys)
    with_index = {k: i for i, k in enumerate(keys)}
    store = make_store()
    try:
        store.append(_batch({k: (np.array([T0]), np.array([-1.0])) for k in known}))
        # Two points per series, the points shuffled across the whole batch.
        idx = np.repeat(np.arange(len(keys), dtype=np.int32), 2)
        ts = T0 + S + np.tile(np.array([0, S], dtype=np.int64), len(keys))
        value = np.arange(len(idx), dtype=np.float64)
        order = rng.permutation(len(idx))
        store.append(PointBatch(keys, idx[order], ts[order], value[order]))

        def newest(key: SeriesKey) -> tuple[int, float]:
            return T0 + 2 * S, float(2 * with_index[key] + 1)

        expected = {k: newest(k) for k in keys}
        assert store.latest("fleet") == expected
        assert len(store.series("fleet")) == len(keys)
        for key in (known[0], fresh[0], fresh[-1], keys[len(keys) // 2]):
            i = with_index[key]
            raw = store.query_raw(key, T0 + S, 2**62)
            assert raw.ts.tolist() == [T0 + S, T0 + 2 * S]
            assert raw.value.tolist() == [2.0 * i, 2.0 * i + 1]
        if reopen is None:
            return
        store = reopen(store)
        assert store.latest("fleet") == expected
        # After reopening: known series take new points, new ones get ids of their own.
        more = [SeriesKey("fleet", f"dev-{i}", "extra") for i in range(500)]
        batch = {k: (np.array([T0 + 3 * S]), np.array([7.0])) for k in more + fresh[:100]}
        store.append(_batch(batch))
        got = store.latest("fleet")
        assert len(got) == len(keys) + len(more)
        assert all(got[k] == (T0 + 3 * S, 7.0) for k in more + fresh[:100])
        assert all(got[k] == expected[k] for k in fresh[100:])
    finally:
        store.close()


def check_concurrent_reads_during_writes(make_store: MakeStore, reopen: Reopen = None) -> None:
    errors: list[BaseException] = []
    done = threading.Event()
    with _opened(make_store) as store:

        def write():
            try:
                for i in range(20):
                    ts = T0 + (i * 1000 + np.arange(1000, dtype=np.int64)) * S
                    store.append(PointBatch.of_series(K, ts, np.full(1000, float(i))))
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
            finally:
                done.set()

        def read():
            try:
                seen = counted = 0
                while not done.is_set():
                    n = len(store.query_raw(K, 0, 2**62).ts)
                    assert n % 1000 == 0 and n >= seen, n  # whole batches only, never going back
                    seen = n
                    # Rollups too: nothing counted twice or missed while they are maintained.
                    c = int(store.query_buckets(K, 0, 2**62, HOUR).columns["count"].sum())
                    assert c % 1000 == 0 and c >= counted, c
                    counted = c
                    assert len(store.query_chart(K, 0, 2**62, 100).ts) <= 200
                    store.latest("plant")
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=f) for f in (write, read, read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(store.query_raw(K, 0, 2**62).ts) == 20_000


def check_bad_arguments_are_rejected(make_store: MakeStore, reopen: Reopen = None) -> None:
    with _opened(make_store) as store:
        store.append(PointBatch.of_series(K, [T0], [1.0]))
        for call in (
            lambda: store.query_buckets(K, 0, T0, 0),
            lambda: store.query_buckets(K, 0, T0, -5),
            lambda: store.query_buckets(K, 0, T0, HOUR, ("median",)),
            lambda: store.query_buckets(K, 0, T0, HOUR, ()),
            lambda: store.query_chart(K, 0, T0, 0),
        ):
            try:
                call()
            except InvalidInput:
                continue
            raise AssertionError("expected InvalidInput")
        for bad in (np.nan, np.inf, -np.inf):
            try:
                store.append(PointBatch.of_series(K, [T0 + S, T0 + 2 * S], [2.0, bad]))
            except InvalidInput:
                continue
            raise AssertionError(f"a {bad} value was accepted")
        try:
            store.append(PointBatch.of_series(K, [2**63 - 1], [1.0]))
            raise AssertionError("a timestamp beyond year 146,000 was accepted")
        except InvalidInput:
            pass
        assert store.query_raw(K, 0, 2**62).value.tolist() == [1.0]  # nothing half-written


def _assert_holds(
    store: SeriesStore, key: SeriesKey, ts: np.ndarray, value: np.ndarray, quick: bool = False
) -> None:
    """Every query path agrees with the brute-force answer over exactly these points
    (``quick``: whole range, fewer bucket sizes and widths)."""
    order = np.argsort(ts)
    ts, value = ts[order], value[order]
    raw = store.query_raw(key, 0, 2**62)
    assert raw.ts.tolist() == ts.tolist(), f"{key}: {len(raw.ts)} raw points, want {len(ts)}"
    np.testing.assert_array_equal(raw.value, value, err_msg=str(key))
    lo, hi = int(ts[0]), int(ts[-1]) + 1
    if quick:
        for bucket in (MIN, HOUR, 7 * S + 3):
            _assert_buckets(store, key, ts, value, 0, 2**62, bucket)
        for width in (1, 20):
            _assert_chart(store, key, ts, value, lo, hi, width)
        return
    for start, end in ((0, 2**62), (lo + 17 * MIN + 3, hi - 2 * HOUR - 11)):
        for bucket in (MIN, 7 * MIN, HOUR, 90 * MIN, DAY, 7 * S + 3):
            _assert_buckets(store, key, ts, value, start, end, bucket)
    for width in (1, 20, 300, 2000):  # hour tier, minute tier, raw points
        _assert_chart(store, key, ts, value, lo, hi, width)
    _assert_chart(store, key, ts, value, lo + 7 * MIN + 1, hi - HOUR - 1, 200)


def _stored(model: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array(sorted(model), np.int64)
    return ts, np.array([model[t] for t in ts.tolist()], np.float64)


def check_resent_batch_is_stored_once(make_store: MakeStore, reopen: Reopen = None) -> None:
    pump2 = SeriesKey("plant", "pump-2", "temperature")
    ts, value = _walk(seed=11, days=1.5)
    batch = _batch({K: (ts, value), pump2: (ts, value * 2)})
    store = make_store()
    try:
        store.append(batch)
        store.append(batch)  # the PUBACK was lost: the device sends the batch again
        _assert_holds(store, K, ts, value)
        _assert_holds(store, pump2, ts, value * 2)
        last = (int(ts[-1]), float(value[-1]))
        assert store.latest("plant") == {K: last, pump2: (last[0], last[1] * 2)}
        if reopen is not None:  # re-sent again after a restart of the store
            store = reopen(store)
            store.append(batch)
            _assert_holds(store, K, ts, value)
        # Half of it once more, shuffled, in small pieces.
        _append_shuffled(store, K, ts[: len(ts) // 2], value[: len(ts) // 2], chunks=5, seed=12)
        _assert_holds(store, K, ts, value)
        assert store.latest("plant", "pump-1") == {K: last}
    finally:
        store.close()


def check_late_resend_of_an_old_range(make_store: MakeStore, reopen: Reopen = None) -> None:
    """An edge agent re-sends a past hour range after newer data: some values corrected,
    some points never stored before; every tier bucket it touches is recomputed."""
    ts, value = _walk(seed=13, days=3)
    model = dict(zip(ts.tolist(), value.tolist(), strict=True))
    rng = np.random.default_rng(14)
    store = make_store()
    try:
        for part in np.array_split(np.arange(len(ts)), 6):  # in time order, as live data comes
            store.append(PointBatch.of_series(K, ts[part], value[part]))
        first = T0 + DAY + 13 * MIN + 7 * S
        old = ts[(ts >= first) & (ts < first + 5 * HOUR)]
        fixed = value[(ts >= first) & (ts < first + 5 * HOUR)].copy()
        changed = rng.random(len(old)) < 0.2
        fixed[changed] += rng.choice([-700.0, 3.0, 700.0], int(changed.sum()))
        gaps = old[::5] + S // 2  # readings the store never had
        resend_ts = np.concatenate([old, gaps])
        resend_value = np.concatenate([fixed, rng.normal(0, 1, len(gaps))])
        order = rng.permutation(len(resend_ts))
        store.append(PointBatch.of_series(K, resend_ts[order], resend_value[order]))
        model.update(zip(resend_ts.tolist(), resend_value.tolist(), strict=True))
        _assert_holds(store, K, *_stored(model))
        # A re-send that overlaps the newest points and goes past them in the same batch.
        tail = np.concatenate([ts[-30:], ts[-1] + np.arange(1, 11, dtype=np.int64) * S])
        tail_value = rng.normal(0, 1, len(tail))
        store.append(PointBatch.of_series(K, tail, tail_value))
        model.update(zip(tail.tolist(), tail_value.tolist(), strict=True))
        _assert_holds(store, K, *_stored(model))
        assert store.latest("plant") == {K: (int(tail[-1]), float(tail_value[-1]))}
        if reopen is not None:
            store = reopen(store)
            _assert_holds(store, K, *_stored(model))
            again = ts[100:2000]  # the newest-point knowledge survived the restart
            store.append(PointBatch.of_series(K, again, np.full(len(again), 0.5)))
            model.update(dict.fromkeys(again.tolist(), 0.5))
            _assert_holds(store, K, *_stored(model))
    finally:
        store.close()


def check_replaced_value_changes_aggregates(make_store: MakeStore, reopen: Reopen = None) -> None:
    ts = T0 + np.arange(3 * 60, dtype=np.int64) * S  # three minutes, across bucket edges
    model = dict.fromkeys(ts.tolist(), 1.0)
    with _opened(make_store) as store:
        store.append(PointBatch.of_series(K, ts, np.ones(len(ts))))
        for t, v in [
            (ts[30], 100.0),  # a new maximum ...
            (ts[30], -5.0),  # ... that must not linger in any tier once replaced
            (ts[0], 7.0),  # the first point of the range
            (ts[-1], 9.0),  # the newest point: latest changes too
            (ts[90], 1.0),  # the same value again: nothing changes
        ]:
            store.append(PointBatch.of_series(K, [t], [v]))
            model[int(t)] = v
            _assert_holds(store, K, *_stored(model))
        b = store.query_buckets(K, 0, 2**62, DAY)
        assert b.columns["count"].tolist() == [len(ts)]
        assert (b.columns["min"][0], b.columns["max"][0]) == (-5.0, 9.0)
        assert (b.columns["first"][0], b.columns["last"][0]) == (7.0, 9.0)
        np.testing.assert_allclose(b.columns["avg"], [(len(ts) - 3 + 11.0) / len(ts)])
        assert store.latest("plant") == {K: (int(ts[-1]), 9.0)}


def check_same_timestamp_in_another_series_is_unaffected(
    make_store: MakeStore, reopen: Reopen = None
) -> None:
    pressure = SeriesKey("plant", "pump-1", "pressure")
    farm = SeriesKey("farm", "pump-1", "temperature")  # same device and metric, other project
    ts = T0 + np.arange(600, dtype=np.int64) * 10 * S
    with _opened(make_store) as store:
        store.append(_batch({K: (ts, np.full(600, 1.0)), farm: (ts, np.full(600, 3.0))}))
        store.append(PointBatch.of_series(pressure, ts, np.full(600, 2.0)))
        store.append(PointBatch.of_series(pressure, ts[:300], np.full(300, 20.0)))  # replaced
        store.append(PointBatch.of_series(farm, ts[100:200], np.full(100, 30.0)))
        _assert_holds(store, K, ts, np.full(600, 1.0))
        _assert_holds(store, pressure, ts, np.r_[np.full(300, 20.0), np.full(300, 2.0)])
        _assert_holds(
            store, farm, ts, np.r_[np.full(100, 3.0), np.full(100, 30.0), np.full(400, 3.0)]
        )
        assert store.latest("plant") == {K: (int(ts[-1]), 1.0), pressure: (int(ts[-1]), 2.0)}
        assert store.latest("farm") == {farm: (int(ts[-1]), 3.0)}


def check_matches_a_dict_model(make_store: MakeStore, reopen: Reopen = None) -> None:
    """Property test: random batches with colliding timestamps, across series, against a
    ``{(series, ts): value}`` dict where the last write wins."""
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st
    except ImportError as e:  # a test dependency (the ``test`` extra), not a runtime one
        raise AssertionError("check_matches_a_dict_model needs hypothesis installed") from e

    point = st.tuples(st.integers(0, 2), st.integers(-200, 400), st.integers(-50, 50)).map(
        # Series, ~3.3 hours in 20 s steps (many collisions), and a value that differs between
        # timestamps (so the chart's "raw data when it fits" rule is exact), not between writes.
        lambda p: (p[0], T0 + p[1] * 20 * S, p[2] + p[1] / 1000)
    )
    examples = iter(range(10**6))
    with _opened(make_store) as store:

        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,  # the same examples every run: a failure reproduces
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(st.lists(point, min_size=1, max_size=40), min_size=1, max_size=6))
        def run(batches: list[list[tuple[int, int, float]]]) -> None:
            project = f"model-{next(examples)}"  # a fresh project per example, one store
            keys = [SeriesKey(project, "dev", m) for m in ("a", "b", "c")]
            model: dict[tuple[int, int], float] = {}
            for batch in batches:
                index, ts, value = (np.array(c) for c in zip(*batch, strict=True))
                store.append(PointBatch(tuple(keys), index.astype(np.int32), ts, value))
                model.update(((i, t), v) for i, t, v in batch)
                counted = sum(
                    int(store.query_buckets(k, 0, 2**62, HOUR).columns["count"].sum()) for k in keys
                )
                assert counted == len(model), (counted, len(model))
            newest = {}
            for i, key in enumerate(keys):
                mine = {t: v for (j, t), v in model.items() if j == i}
                if mine:
                    _assert_holds(store, key, *_stored(mine), quick=True)
                    newest[key] = (max(mine), mine[max(mine)])
                else:
                    assert len(store.query_raw(key, 0, 2**62).ts) == 0
            assert store.latest(project) == newest

        run()


STORE_CHECKS = (
    check_empty_results,
    check_raw_range_is_half_open_and_ordered,
    check_series_are_isolated,
    check_duplicates_in_one_batch_keep_the_last,
    check_bucket_alignment,
    check_buckets_match_raw_for_all_aggregates,
    check_chart_is_bounded_and_keeps_extremes,
    check_latest_is_the_newest_point,
    check_usage_counts_per_project,
    check_retention,
    check_durable_across_reopen,
    check_large_batch,
    check_many_new_series_in_one_batch,
    check_concurrent_reads_during_writes,
    check_bad_arguments_are_rejected,
    check_resent_batch_is_stored_once,
    check_late_resend_of_an_old_range,
    check_replaced_value_changes_aggregates,
    check_same_timestamp_in_another_series_is_unaffected,
    check_matches_a_dict_model,
)


def check_raw_counts(make_store: MakeStore) -> None:
    """For a store that is also ``RawCounts``: ``count_raw`` gives, per wanted series and span,
    as many points as ``query_raw`` returns (spans differ per series; unknown series and empty
    spans count 0; a key may be asked twice)."""
    from atoll.store.port import RawCounts

    store = make_store()
    assert isinstance(store, RawCounts)
    rng = np.random.default_rng(5)
    keys = [SeriesKey("plant", f"pump-{i}", m) for i in range(6) for m in ("t", "p")]
    ts = T0 + np.sort(rng.integers(0, HOUR, 600))
    store.append(
        PointBatch(
            tuple(keys), rng.integers(0, len(keys), 600).astype(np.int32), ts, rng.normal(size=600)
        )
    )
    store.append(PointBatch.of_series(keys[0], [T0 + 2 * HOUR], [1.0]))  # a later append
    want = [*keys, keys[3], SeriesKey("plant", "nobody", "t"), keys[1]]
    start = [T0 + int(a) for a in rng.integers(-MIN, HOUR, len(want))]
    end = [a + int(d) for a, d in zip(start, rng.integers(0, 3 * HOUR, len(want)), strict=True)]
    start[-1] = end[-1]  # an empty span
    expected = [len(store.query_raw(k, a, z).ts) for k, a, z in zip(want, start, end, strict=True)]
    assert sum(expected) > 100 and expected[-2:] == [0, 0]
    assert store.count_raw(want, start, end) == expected
    assert store.count_raw([], [], []) == []


def check_store(make_store: MakeStore, reopen: Reopen = None) -> None:
    """Run every check; raises ``AssertionError`` naming the first that fails."""
    for check in STORE_CHECKS:
        try:
            check(make_store, reopen)
        except AssertionError as e:
            raise AssertionError(f"{check.__name__}: {e}") from e
