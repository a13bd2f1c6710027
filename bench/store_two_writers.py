"""Two PostgreSQL store writers on the same series (two ingest nodes taking one fleet's
messages): how long they wait for each other.

Two processes, each a ``PostgresStore`` on one schema, append ``--batches`` batches of
``--series`` series x ``--points`` points each, every series in every batch, interleaved in
time (writer 0 stamps even microseconds, writer 1 odd ones: the stamp slots of two nodes).
Meanwhile this process samples ``pg_stat_activity`` every 5 ms and counts the samples in which
a writer's session waits for a lock, by wait event (``advisory``: the series locks;
``transactionid``/``tuple``: rows another writer holds until it commits).

    .venv/bin/python bench/store_two_writers.py --json bench/results/store_two_writers.json
    # the code before a change, same script:
    PYTHONPATH=/path/to/old/src .venv/bin/python bench/store_two_writers.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

import atoll
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.postgres import PostgresStore

S = 1_000_000


def writer(url: str, schema: str, me: int, a: argparse.Namespace, go: Any, out: Any) -> None:
    store = PostgresStore(url, schema=schema)
    keys = tuple(SeriesKey("bench", f"d{i}", "v") for i in range(a.series))
    pid = store._writer.info.backend_pid
    out.put(("pid", me, pid))
    go.wait()
    t0 = time.perf_counter()
    for b in range(a.batches):
        # a batch covers the next second: points 1 s / points apart, this writer's parity
        base = (1_700_000_000 + b) * S
        ts = base + np.arange(a.points, dtype=np.int64) * (S // a.points) * 2 + me
        store.append(
            PointBatch(
                keys,
                np.repeat(np.arange(a.series, dtype=np.int32), a.points),
                np.tile(ts, a.series),
                np.tile(ts / S, a.series),
            )
        )
    out.put(("done", me, time.perf_counter() - t0, getattr(store, "exclusive_appends", None)))
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--url",
        default=os.environ.get("ATOLL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    PostgresStore(a.url, schema=schema).close()  # the schema, before both start
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(a.url, schema, i, a, go, out)) for i in range(2)]
    for p in procs:
        p.start()
    pids = {}
    while len(pids) < 2:
        _, me, pid = out.get(timeout=60)
        pids[pid] = me
    waits: Counter[str] = Counter()
    samples = 0
    results: dict[int, dict[str, Any]] = {}
    load0 = os.getloadavg()[0]
    with psycopg.connect(a.url, autocommit=True) as conn:
        go.set()
        t0 = time.perf_counter()
        while any(p.is_alive() for p in procs) and len(results) < 2:
            rows = conn.execute(
                "SELECT pid, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = ANY(%s)",
                [list(pids)],
            ).fetchall()
            for _, kind, event in rows:
                samples += 1
                if kind == "Lock":
                    waits[event] += 1
            while not out.empty():
                _, me, secs, exclusive = out.get()
                results[me] = {"seconds": round(secs, 3), "exclusive_appends": exclusive}
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        while len(results) < 2:
            _, me, secs, exclusive = out.get(timeout=120)
            results[me] = {"seconds": round(secs, 3), "exclusive_appends": exclusive}
        for p in procs:
            p.join(30)
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    points = 2 * a.series * a.points * a.batches
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": str(Path(atoll.__file__).parent),
        "load_1min": round(load0, 2),
        "series": a.series,
        "points_per_series_per_batch": a.points,
        "batches_per_writer": a.batches,
        "seconds": round(wall, 3),
        "points_per_second": round(points / wall),
        "appends_per_second": round(2 * a.batches / wall, 1),
        "writer_samples": samples,
        "lock_wait_share": round(sum(waits.values()) / max(samples, 1), 3),
        "lock_waits_by_event": dict(waits),
        "writers": [results[0], results[1]],
    }
    print(json.dumps(report))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
