"""Store benchmark: bulk append of 1 year of 1 Hz data, then chart queries at three zooms.

    .venv/bin/python bench/chart_query.py --json bench/results/chart_query.json
    .venv/bin/python bench/chart_query.py --store memory:// --days 30   # other adapters

Writes one JSON document; docs/BENCHMARKS.md ("Store") records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime

from atoll.bench.store import DAY, KEY, T0, bulk_append_rate, time_query
from atoll.store import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--store", help="store URL (default: a DuckDB file in a temp dir)")
    ap.add_argument("--days", type=int, default=365, help="days of 1 Hz data (default 365)")
    ap.add_argument("--chunk", type=int, default=604_800, help="points per append (default 1 week)")
    ap.add_argument("--widths", default="1000,2000", help="chart widths in pixels")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per query (median reported)")
    args = ap.parse_args()

    tmp = None
    url = args.store
    if url is None:
        tmp = tempfile.mkdtemp(prefix="atoll-bench-")
        url = f"duckdb://{tmp}/series.duckdb"
    store = open_store(url)
    try:
        points = args.days * 86_400
        t = time.perf_counter()
        append = bulk_append_rate(store, points=points, chunk=args.chunk)
        append["wall_seconds_incl_generation"] = round(time.perf_counter() - t, 1)
        print(f"append: {append['points_per_second']:,} points/s ({points:,} points)", flush=True)
        if hasattr(store, "compact"):
            t = time.perf_counter()
            store.compact()
            append["final_compaction_seconds"] = round(time.perf_counter() - t, 3)

        end = T0 + args.days * DAY
        zooms = {"1 day": DAY, "1 week": 7 * DAY, "1 year": 365 * DAY}
        charts = []
        for label, span in zooms.items():
            if span > args.days * DAY:
                continue
            for width in [int(w) for w in args.widths.split(",")]:
                r = time_query(
                    lambda s=span, w=width: store.query_chart(KEY, end - s, end, w), args.runs
                )
                charts.append({"range": label, "width": width, **r})
                print(f"chart {label:>6} width {width}: {r['median_ms']} ms median", flush=True)
        buckets = {
            "1 year of 1 day buckets": time_query(
                lambda: store.query_buckets(KEY, end - 365 * DAY, end, DAY), args.runs
            ),
            "1 day of 1 min buckets": time_query(
                lambda: store.query_buckets(KEY, end - DAY, end, 60_000_000), args.runs
            ),
            # Same per-pixel min/max as the year chart, but the bucket (a pixel + 1 µs) is no
            # multiple of a tier, so every raw point is scanned: what the tiers save.
            "1 year min/max in 1000 buckets from raw points (no tier)": time_query(
                lambda: store.query_buckets(
                    KEY, end - 365 * DAY, end, 365 * DAY // 1000 + 1, ("min", "max")
                ),
                max(1, args.runs // 3),
            ),
            "1 hour raw": time_query(lambda: store.query_raw(KEY, end - DAY // 24, end), args.runs),
        }
        for label, r in buckets.items():
            print(f"{label}: {r['median_ms']} ms median", flush=True)
        result = {
            "benchmark": "store.chart_query",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": "2-core python-svc",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "store": url.split("://")[0],
            "days": args.days,
            "append": append,
            "chart": charts,
            "other_queries": buckets,
        }
        if tmp:
            result["file_mb"] = round(
                sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)) / 1e6, 1
            )
    finally:
        store.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
