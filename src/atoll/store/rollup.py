"""Per-bucket partial aggregates of raw points, computed in numpy.

A rollup row summarises the points of one series in one epoch-aligned bucket: min and max
with their timestamps, sum, count, first and last. Rows for the same bucket combine
(min of mins, sum of sums, earliest first, ...), so partial rows from separate appends,
late points included, add up to the exact answer.
"""

from __future__ import annotations

import numpy as np

COLUMNS = (
    "sid",
    "b",
    "vmin",
    "tmin",
    "vmax",
    "tmax",
    "vsum",
    "n",
    "tfirst",
    "vfirst",
    "tlast",
    "vlast",
)


def _first_hit(hit: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the first ``True`` at or after each group start (every group has one)."""
    idx = np.flatnonzero(hit)
    return idx[np.searchsorted(idx, starts)]


def of_points(
    sid: np.ndarray, ts: np.ndarray, value: np.ndarray, width: int
) -> dict[str, np.ndarray]:
    """Rollup rows of finite points, one per (series, bucket) present, in ``COLUMNS`` order.

    >>> r = of_points(np.array([1, 1, 1]), np.array([5, 12, 19]), np.array([2.0, 3.0, 1.0]), 10)
    >>> r["b"].tolist(), r["vmin"].tolist(), r["tmin"].tolist(), r["vlast"].tolist()
    ([0, 10], [2.0, 1.0], [5, 19], [2.0, 1.0])
    """
    sid = np.asarray(sid, np.int32)
    ts = np.asarray(ts, np.int64)
    value = np.asarray(value, np.float64)
    n = len(ts)
    if n == 0:
        return {c: np.empty(0, np.float64 if c[0] == "v" else np.int64) for c in COLUMNS}
    # Batches usually arrive grouped by series and in time order (stores sort them to find
    # repeated timestamps); sort only when they are not. Shifted views: no diff arrays.
    if not (np.all(sid[1:] >= sid[:-1]) and np.all((ts[1:] >= ts[:-1]) | (sid[1:] > sid[:-1]))):
        order = np.lexsort((ts, sid))  # stable: equal timestamps keep their arrival order
        sid, ts, value = sid[order], ts[order], value[order]
    b = ts - ts % width  # numpy's % floors, so pre-epoch buckets align too
    starts = np.flatnonzero(np.r_[True, (sid[1:] != sid[:-1]) | (b[1:] != b[:-1])])
    ends = np.r_[starts[1:], n] - 1
    counts = np.diff(np.r_[starts, n])
    group = np.repeat(np.arange(len(starts)), counts)
    vmin = np.minimum.reduceat(value, starts)
    vmax = np.maximum.reduceat(value, starts)
    imin = _first_hit(value == vmin[group], starts)
    imax = _first_hit(value == vmax[group], starts)
    return {
        "sid": sid[starts],
        "b": b[starts],
        "vmin": vmin,
        "tmin": ts[imin],
        "vmax": vmax,
        "tmax": ts[imax],
        "vsum": np.add.reduceat(value, starts),
        "n": counts.astype(np.int64),
        "tfirst": ts[starts],
        "vfirst": value[starts],
        "tlast": ts[ends],
        "vlast": value[ends],
    }


def latest_of(rows: dict[str, np.ndarray]) -> dict[int, tuple[int, float]]:
    """Newest ``(ts, value)`` per series id in rollup rows."""
    out: dict[int, tuple[int, float]] = {}
    order = np.lexsort((rows["tlast"], rows["sid"]))
    sid = rows["sid"][order]
    last = np.r_[np.flatnonzero(np.diff(sid)), len(sid) - 1] if len(sid) else []
    for i in last:
        j = order[i]
        out[int(rows["sid"][j])] = (int(rows["tlast"][j]), float(rows["vlast"][j]))
    return out
