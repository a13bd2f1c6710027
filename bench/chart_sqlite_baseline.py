"""Baseline for docs/STORAGE.md "why DuckDB": the same 1 Hz series in SQLite (stdlib).

    .venv/bin/python bench/chart_sqlite_baseline.py --json bench/results/sqlite_baseline.json

Straightforward SQLite: WAL, synchronous=FULL, a ``WITHOUT ROWID`` table keyed by
``(sid, ts)``, ``executemany`` per batch. Measures append rate, bytes per point and a
min/max-per-hour scan of all points (what a chart without rollups would need).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime

from atoll.bench.store import synthetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--chunk", type=int, default=500_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="atoll-sqlite-") as tmp:
        path = os.path.join(tmp, "series.db")
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute(
            "CREATE TABLE points (sid INTEGER, ts INTEGER, value REAL, PRIMARY KEY (sid, ts))"
            " WITHOUT ROWID"
        )
        spent = 0.0
        for first in range(0, args.points, args.chunk):
            ts, value = synthetic(first, min(args.chunk, args.points - first))
            t = time.perf_counter()
            with con:  # one transaction per batch, like DuckDBStore.append
                con.executemany(
                    "INSERT INTO points VALUES (1, ?, ?)",
                    zip(ts.tolist(), value.tolist(), strict=True),
                )
            spent += time.perf_counter() - t
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(path)
        t = time.perf_counter()
        rows = con.execute(
            "SELECT ts / 3600000000, min(value), max(value) FROM points WHERE sid = 1 GROUP BY 1"
        ).fetchall()
        scan = time.perf_counter() - t
        con.close()
    result = {
        "benchmark": "store.sqlite_baseline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "points": args.points,
        "append_points_per_second": round(args.points / spent),
        "bytes_per_point": round(size / args.points, 1),
        "hourly_min_max_scan_ms": round(scan * 1000, 1),
        "hours": len(rows),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
