"""Store measurements shared by ``bench/chart_query.py`` and the ingest benchmark.

>>> from atoll.store.memory import MemoryStore
>>> r = bulk_append_rate(MemoryStore(), points=10_000, chunk=5_000)
>>> r["points"], r["appends"]
(10000, 2)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from atoll.core.points import PointBatch, SeriesKey
from atoll.store.port import Buckets, Series, SeriesStore

SECOND = 1_000_000
DAY = 86_400 * SECOND
#: 2026-01-01T00:00:00Z, so "1 year" of data is a calendar year.
T0 = 1_767_225_600 * SECOND
KEY = SeriesKey("bench", "meter-1", "power")


def synthetic(start_index: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1 Hz points from second ``start_index``: a daily cycle, noise and rare spikes."""
    i = np.arange(start_index, start_index + n, dtype=np.int64)
    rng = np.random.default_rng(seed + start_index)
    value = 50 + 20 * np.sin(i * (2 * np.pi / 86_400)) + rng.normal(0, 2, n)
    spikes = rng.random(n) < 1e-5
    value[spikes] += 80
    return T0 + i * SECOND, value


def bulk_append_rate(
    store: SeriesStore, points: int = 2_000_000, chunk: int = 500_000, key: SeriesKey = KEY
) -> dict[str, float]:
    """Raw store bulk-append rate: append ``points`` 1 Hz points of one series in ``chunk``-sized
    batches; only the ``append`` calls are timed (data generation is not)."""
    spent, appends = 0.0, 0
    for first in range(0, points, chunk):
        ts, value = synthetic(first, min(chunk, points - first))
        batch = PointBatch.of_series(key, ts, value)
        t = time.perf_counter()
        store.append(batch)
        spent += time.perf_counter() - t
        appends += 1
    return {
        "points": points,
        "chunk": chunk,
        "appends": appends,
        "seconds": round(spent, 3),
        "points_per_second": round(points / spent),
    }


def time_query(call: Callable[[], Series | Buckets], runs: int = 7) -> dict[str, float]:
    """Median and spread of ``runs`` calls (after one warm-up call), in milliseconds."""
    out = call()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t) * 1000)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "points_returned": len(out.ts) if isinstance(out, Series) else len(out.start),
    }
