"""Store benchmark: live in-order appends next to re-sends and late data.

    .venv/bin/python bench/store_resend.py --json bench/results/store_resend.json
    .venv/bin/python bench/store_resend.py --store postgresql://postgres@127.0.0.1:5432/<db> ...

``--series`` series get ``--days`` of 1 Hz history in bulk (untimed), then, timed per append:

* ``live``: ``--live`` appends of ``--batch-seconds`` seconds of every series, interleaved the
  way ingest batches arrive (one reading per series per second), each newer than the last:
  the fast path.
* ``lost_puback``: the same kind of live batch, then the identical batch again (a device that
  did not get its PUBACK); the second append is timed.
* ``late_resend``: an edge agent re-sends one hour of one series from the middle of the history
  after an outage, 10 % of the values corrected.
* ``batch_duplicates``: a live batch that holds every reading twice.

Each section reports the median and spread of its appends in ms and the points per second.
Run it on the code before and after a store change in one session to compare (same JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from atoll.bench.store import SECOND, synthetic
from atoll.core.points import PointBatch, SeriesKey
from atoll.store import open_store

HOUR = 3600 * SECOND


def interleaved(keys: list[SeriesKey], first_second: int, seconds: int) -> PointBatch:
    """``seconds`` seconds of every series from ``first_second``, one reading per series per
    second, series interleaved."""
    ts, value = synthetic(first_second, seconds)
    n = len(keys)
    noise = np.random.default_rng(first_second).normal(0, 1, n * seconds)
    return PointBatch(
        tuple(keys),
        np.tile(np.arange(n, dtype=np.int32), seconds),
        np.repeat(ts, n),
        np.repeat(value, n) + noise,
    )


def timed(store, batches: list[PointBatch], sent_before: bool = False) -> dict:
    """Append each batch, timing each ``append``; ``sent_before``: append it once untimed
    first (delivered, but the PUBACK was lost), so the timed append is the re-send."""
    ms, points = [], 0
    for batch in batches:
        if sent_before:
            store.append(batch)
        t = time.perf_counter()
        store.append(batch)
        ms.append((time.perf_counter() - t) * 1000)
        points += len(batch)
    return {
        "appends": len(ms),
        "points_per_append": points // len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "points_per_second": round(points / (sum(ms) / 1000)),
    }


def _live(keys: list[SeriesKey], now: int, step: int, count: int) -> list[PointBatch]:
    return [interleaved(keys, now + i * step, step) for i in range(count)]


def live_options(doc: str, live: int) -> argparse.ArgumentParser:
    """The options both store benchmarks take (``live``: default number of live appends)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--store", help="store or database URL (default: DuckDB in a temp dir)")
    ap.add_argument("--series", type=int, default=20, help="series (default 20)")
    ap.add_argument("--batch-seconds", type=int, default=5, help="seconds per live batch")
    ap.add_argument("--live", type=int, default=live, help=f"live appends (default {live})")
    return ap


def main() -> None:
    ap = live_options(__doc__, live=200)
    ap.add_argument("--days", type=int, default=2, help="days of 1 Hz history (default 2)")
    ap.add_argument("--late", type=int, default=20, help="timed late re-sends (1 hour each)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="atoll-bench-") as tmp:
        url = args.store or f"duckdb://{tmp}/series.duckdb"
        store = open_store(url)
        try:
            measured = _measure(store, args)
        finally:
            store.close()
    write_result(args.json, "store.resend", url, measured)


def write_result(path: str, benchmark: str, url: str, measured: dict) -> None:
    """The JSON document: what ran where and when (load average included), then ``measured``."""
    result = {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "store": url.split("://")[0],
        **measured,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


def _measure(store, args) -> dict:
    keys = [SeriesKey("bench", f"meter-{i}", "power") for i in range(args.series)]
    history = args.days * 86_400
    t = time.perf_counter()
    for first in range(0, history, 86_400):
        for key in keys:
            store.append(PointBatch.of_series(key, *synthetic(first, 86_400)))
    load_s = time.perf_counter() - t
    if hasattr(store, "compact"):
        store.compact()
    print(f"history: {history * len(keys):,} points in {load_s:.1f} s", flush=True)

    now, step, count = history, args.batch_seconds, args.live  # next second to append
    sections = {"live": timed(store, _live(keys, now, step, count))}
    now += step * count
    sections["lost_puback"] = timed(store, _live(keys, now, step, count), sent_before=True)
    now += step * count
    rng = np.random.default_rng(7)
    late = []
    for i in range(args.late):
        ts, value = synthetic(int(rng.integers(3600, history - 7200)), 3600)
        value[rng.random(3600) < 0.1] += 5.0  # corrected readings
        late.append(PointBatch.of_series(keys[i % len(keys)], ts, value))
    sections["late_resend"] = timed(store, late)
    doubled = [PointBatch.concat([b, b]) for b in _live(keys, now, step, count)]
    sections["batch_duplicates"] = timed(store, doubled)
    now += step * count
    for name, r in sections.items():
        print(
            f"{name}: {r['median_ms']} ms median per append of {r['points_per_append']} "
            f"points, {r['points_per_second']:,} points/s",
            flush=True,
        )
    hourly = store.query_buckets(keys[0], 0, 2**62, HOUR).columns["count"]
    return {
        "series": args.series,
        "history_points": history * len(keys),
        "history_load_seconds": round(load_s, 1),
        "batch_seconds": step,
        **sections,
        # What the store kept: with (series, ts) identity, exactly the distinct readings.
        "series_0_points_stored": int(hourly.sum()),
        "series_0_distinct_readings": now,
    }


if __name__ == "__main__":
    main()
