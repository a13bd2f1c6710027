"""How a store answers a query: argument checks, rollup-tier choice, pixel size.

Adapters with rollup tiers keep, per series and per tier bucket, the min/max (with
their timestamps), sum, count, first and last. A query is answered from the coarsest
tier that is still fine enough, plus raw points for the partial tier buckets at the
two edges of the range, so the answer is exact for ``start <= ts < end``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from atoll.core.errors import InvalidInput
from atoll.core.points import PointBatch
from atoll.store.port import AGGREGATES, Buckets, Series

MINUTE = 60_000_000
HOUR = 3_600_000_000
#: Rollup bucket widths in µs, finest first.
TIERS = (MINUTE, HOUR)

EMPTY_SERIES = Series(np.empty(0, np.int64), np.empty(0, np.float64))


def check_batch(batch: PointBatch) -> None:
    """Refuse what a store cannot keep faithfully, before anything is written."""
    if not np.all(np.isfinite(batch.value)):
        raise InvalidInput(
            "telemetry values must be finite numbers (no NaN or infinity)",
            hint="drop or replace non-finite readings before sending them",
        )
    if len(batch) and np.abs(batch.ts).max() >= TS_LIMIT:
        raise InvalidInput(
            "timestamp out of range", hint="timestamps are µs since 1970-01-01T00:00:00Z"
        )
    if len(batch) and (batch.key_index.min() < 0 or batch.key_index.max() >= len(batch.keys)):
        raise InvalidInput("PointBatch.key_index points outside PointBatch.keys")


def one_per_timestamp(
    sid: np.ndarray, ts: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch's points sorted by ``(sid, ts)`` with one point per ``(sid, ts)``: the last to
    arrive wins. An already sorted, duplicate-free batch (the usual case) comes back as is.

    >>> sid, ts, value = np.array([2, 1, 2]), np.array([5, 7, 5]), np.array([1.0, 2.0, 3.0])
    >>> s, t, v = one_per_timestamp(sid, ts, value)
    >>> s.tolist(), t.tolist(), v.tolist()
    ([1, 2], [7, 5], [2.0, 3.0])
    """
    # Sorted and unique: series ids never go down, and each step is a new series or a later ts.
    # (Comparisons of shifted views: no temporary diff arrays on this hot path.)
    later, same_or_up = ts[1:] > ts[:-1], sid[1:] >= sid[:-1]
    if same_or_up.all() and (later.all() or np.all(later | (sid[1:] > sid[:-1]))):
        return sid, ts, value
    order = np.lexsort((ts, sid))  # stable: equal (sid, ts) keep their arrival order
    sid, ts, value = sid[order], ts[order], value[order]
    last = np.r_[(sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1]), True]
    return sid[last], ts[last], value[last]


def series_runs(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, starts)`` of a batch sorted by series: each series id and where its run starts."""
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if len(sid) else np.empty(0, int)
    return sid[starts], starts


def reaching_back(ts: np.ndarray, starts: np.ndarray, stored: np.ndarray) -> np.ndarray | None:
    """Which points of a ``(sid, ts)``-sorted batch are not newer than their series' newest
    stored point (``stored``, one per run), so may replace one; ``None`` when none is (the
    fast path: a comparison per series, not per point)."""
    if not len(ts) or np.all(ts[starts] > stored):
        return None
    return ts <= np.repeat(stored, np.diff(np.r_[starts, len(ts)]))


def against_stored(
    sid: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    found: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """``(same, replaced)`` masks for the points of a ``(sid, ts)``-sorted, duplicate-free batch,
    given ``found``: the ``(sid, ts, value)`` arrays of the stored points at its keys, in any
    order. ``same``: stored once with this very value, nothing to write (a plain re-send).
    ``replaced``: stored with another value, or more than once (data from before points had an
    identity), so the stored versions must go.

    >>> same, replaced = against_stored(np.array([1, 1, 1]), np.array([5, 6, 7]),
    ...     np.array([1.0, 2.0, 3.0]), (np.array([1, 1]), np.array([6, 5]), np.array([9.0, 1.0])))
    >>> same.tolist(), replaced.tolist()
    ([True, False, False], [False, True, False])
    """
    n = len(ts)
    fsid, fts, fvalue = found
    stored = np.full(n, np.nan)
    copies = np.zeros(n, np.int64)
    if len(fts):
        # Sort the batch and the found rows together: each found row lands after its key.
        order = np.lexsort(
            (np.r_[np.zeros(n), np.ones(len(fts))], np.r_[ts, fts], np.r_[sid, fsid])
        )
        is_key = order < n
        key_at = np.maximum.accumulate(np.where(is_key, np.arange(len(order)), 0))
        rows = np.flatnonzero(~is_key)
        owner = order[key_at[rows]]
        stored[owner] = fvalue[order[rows] - n]
        copies = np.bincount(owner, minlength=n)
    same = (copies == 1) & (stored == value)
    return same, (copies > 0) & ~same


def touched_buckets(
    sid: np.ndarray, ts: np.ndarray, hit: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a ``(sid, ts)``-sorted batch: which points share a ``width`` bucket with a ``hit``
    point, and those buckets as ``(sid, b)`` arrays, sorted.

    >>> inside, s, b = touched_buckets(np.array([1, 1, 1, 2]), np.array([1, 5, 12, 3]),
    ...                                np.array([True, False, False, False]), 10)
    >>> inside.tolist(), s.tolist(), b.tolist()
    ([True, True, False, False], [1], [0])
    """
    b = ts - ts % width  # numpy's % floors, so pre-epoch buckets align too
    first = np.r_[True, (sid[1:] != sid[:-1]) | (b[1:] != b[:-1])]
    run = np.cumsum(first) - 1
    runs = np.unique(run[hit])
    at = np.flatnonzero(first)[runs]
    return np.isin(run, runs), sid[at], b[at]


#: Timestamps a store keeps: about ±146,000 years, so bucket arithmetic never overflows int64.
TS_LIMIT = 2**62


def clamp_ts(ts: int) -> int:
    """``ts`` limited to what a store can hold (nothing is stored beyond it anyway)."""
    if not isinstance(ts, (int, np.integer)):
        raise InvalidInput("timestamps must be integer µs since the epoch")
    return min(max(int(ts), -TS_LIMIT), TS_LIMIT)


def check_range(start: int, end: int) -> tuple[int, int]:
    """Integer ``(start, end)``, clamped to what a store can hold (so "from -inf" works)."""
    if not isinstance(start, (int, np.integer)) or not isinstance(end, (int, np.integer)):
        raise InvalidInput("start and end must be integer µs since the epoch")
    return max(int(start), -TS_LIMIT), min(int(end), TS_LIMIT)


def check_aggs(aggs: tuple[str, ...]) -> tuple[str, ...]:
    bad = [a for a in aggs if a not in AGGREGATES]
    if bad or not aggs:
        raise InvalidInput(
            f"unknown aggregate(s) {bad}" if bad else "no aggregate requested",
            hint=f"choose from {', '.join(AGGREGATES)}",
        )
    return tuple(aggs)


def check_bucket(bucket: int) -> None:
    if int(bucket) <= 0:
        raise InvalidInput(f"bucket must be a positive number of µs, got {bucket}")


def check_width(width: int) -> None:
    if int(width) <= 0:
        raise InvalidInput(f"width must be a positive number of pixels, got {width}")


def pixel_us(start: int, end: int, width: int) -> int:
    """Width of one chart pixel in µs (at least 1), so that the range spans <= width pixels."""
    return max(1, -(-(end - start) // width))


def chart_tier(start: int, end: int, width: int) -> int | None:
    """Coarsest tier whose buckets are no wider than a pixel (so it still gives >= width points)."""
    px = pixel_us(start, end, width)
    fitting = [t for t in TIERS if t <= px]
    return fitting[-1] if fitting else None


def bucket_tier(bucket: int) -> int | None:
    """Coarsest tier whose buckets nest exactly inside ``bucket``-wide epoch-aligned buckets."""
    fitting = [t for t in TIERS if bucket % t == 0]
    return fitting[-1] if fitting else None


def inner_span(start: int, end: int, tier: int | None) -> tuple[int, int]:
    """The tier-aligned part ``[a, z)`` of ``[start,
    end)``; raw covers ``[start, a)`` and ``[z, end)``."""
    if tier is None:
        return end, end
    a = -(-start // tier) * tier
    z = end // tier * tier
    return (a, z) if a < z else (end, end)


def empty_buckets(aggs: tuple[str, ...]) -> Buckets:
    return Buckets(
        np.empty(0, np.int64),
        {a: np.empty(0, np.int64 if a == "count" else np.float64) for a in aggs},
    )


def interleave_min_max(
    tmin: ArrayLike, vmin: ArrayLike, tmax: ArrayLike, vmax: ArrayLike
) -> Series:
    """Chart points from per-pixel extremes: both points in time order, one when they coincide."""
    tmin = np.asarray(tmin, np.int64)
    tmax = np.asarray(tmax, np.int64)
    same = tmin == tmax
    ts = np.concatenate([tmin, tmax[~same]])
    value = np.concatenate([np.asarray(vmin, np.float64), np.asarray(vmax, np.float64)[~same]])
    order = np.argsort(ts, kind="stable")
    return Series(ts[order], value[order])


def pixel_extremes(ts: np.ndarray, value: np.ndarray, start: int, px: int) -> Series:
    """Chart from time-sorted candidate points: the lowest and the highest point of every
    ``px``-wide pixel."""
    if not len(ts):
        return EMPTY_SERIES
    pixel = (ts - start) // px
    first = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    group = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(ts)]))
    lo = np.minimum.reduceat(value, first)
    hi = np.maximum.reduceat(value, first)
    # First index in each pixel that holds the pixel's min (max): every pixel has one.
    at_lo = np.flatnonzero(value == lo[group])
    at_hi = np.flatnonzero(value == hi[group])
    ilo = at_lo[np.searchsorted(at_lo, first)]
    ihi = at_hi[np.searchsorted(at_hi, first)]
    return interleave_min_max(ts[ilo], value[ilo], ts[ihi], value[ihi])


def buckets_of_points(
    ts: np.ndarray, value: np.ndarray, bucket: int, aggs: tuple[str, ...]
) -> Buckets:
    """Aggregates of time-sorted raw points per epoch-aligned ``bucket``."""
    if not len(ts):
        return empty_buckets(aggs)
    b = ts // bucket * bucket  # floor division, so pre-epoch buckets align too
    first = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    last = np.r_[first[1:] - 1, len(ts) - 1]
    count = np.diff(np.r_[first, len(ts)])
    cols: dict[str, Callable[[], np.ndarray]] = {
        "min": lambda: np.minimum.reduceat(value, first),
        "max": lambda: np.maximum.reduceat(value, first),
        "avg": lambda: np.add.reduceat(value, first) / count,
        "count": lambda: count.astype(np.int64),
        "first": lambda: value[first],
        "last": lambda: value[last],
    }
    return Buckets(b[first].copy(), {a: cols[a]() for a in aggs})
