"""Store A/B: live and bulk append latency of this tree's store against an older revision's,
alternating appends in one process, so both see the same machine load.

    git archive <rev> src | tar -x -C /tmp/baseline
    .venv/bin/python bench/store_ab.py --baseline /tmp/baseline/src \
        --json bench/results/store_ab.json
    .venv/bin/python bench/store_ab.py --baseline ... --store postgresql://postgres@127.0.0.1:5432/<db>

The baseline's ``atoll/store`` package is loaded as ``atoll_baseline_store`` (its imports of
``atoll.store`` rewritten; everything else comes from this tree). Workloads:

* ``live``: ``--series`` series, ``--batch-seconds`` s per append, series interleaved the way
  ingest batches arrive, always newer than what is stored (the fast path);
* ``bulk``: one series, one day of 1 Hz points (86,400) per append.

Per workload: each side's median and total rate, and the median of the per-round ratios
``current / baseline`` (rounds alternate which side goes first).
"""

from __future__ import annotations

import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from store_resend import interleaved, live_options, write_result

from atoll.bench.store import synthetic
from atoll.core.points import PointBatch, SeriesKey
from atoll.store import open_store


def _baseline(src: Path, into: Path):
    """``open_store`` of the baseline revision under ``src``."""
    package = into / "atoll_baseline_store"
    shutil.copytree(src / "atoll" / "store", package)
    for f in package.glob("*.py"):
        f.write_text(f.read_text().replace("atoll.store", "atoll_baseline_store"))
    sys.path.insert(0, str(into))
    return importlib.import_module("atoll_baseline_store").open_store


def _race(stores: dict, batches: list[PointBatch]) -> dict:
    """Append each batch to both stores, alternating which goes first; summarise."""
    ms: dict[str, list[float]] = {name: [] for name in stores}
    names = list(stores)
    for i, batch in enumerate(batches):
        for name in names if i % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            stores[name].append(batch)
            ms[name].append((time.perf_counter() - t) * 1000)
    points = sum(len(b) for b in batches)
    out = {
        name: {
            "median_ms": round(statistics.median(v), 3),
            "points_per_second": round(points / (sum(v) / 1000)),
        }
        for name, v in ms.items()
    }
    ratios = [c / b for c, b in zip(ms["current"], ms["baseline"], strict=True)]
    out["appends"], out["points_per_append"] = len(batches), points // len(batches)
    out["median_ratio_current_to_baseline"] = round(statistics.median(ratios), 3)
    return out


def main() -> None:
    ap = live_options(__doc__, live=400)
    ap.add_argument("--baseline", required=True, help="src/ directory of the older revision")
    ap.add_argument("--bulk", type=int, default=30, help="bulk (1-day) appends per side")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="atoll-ab-") as tmp:
        baseline_open = _baseline(Path(args.baseline), Path(tmp))
        if args.store:
            sep = "&" if "?" in args.store else "?"
            urls = {side: f"{args.store}{sep}schema=ab_{side}" for side in ("baseline", "current")}
        else:
            urls = {side: f"duckdb://{tmp}/{side}.duckdb" for side in ("baseline", "current")}
        stores = {
            "baseline": baseline_open(urls["baseline"]),
            "current": open_store(urls["current"]),
        }
        try:
            keys = [SeriesKey("bench", f"meter-{i}", "power") for i in range(args.series)]
            step = args.batch_seconds
            live = [interleaved(keys, i * step, step) for i in range(args.live)]
            measured = {"live": _race(stores, live)}
            bulk_key = SeriesKey("bench", "bulk", "power")
            bulk = [
                PointBatch.of_series(bulk_key, *synthetic(d * 86_400, 86_400))
                for d in range(args.bulk)
            ]
            measured["bulk"] = _race(stores, bulk)
        finally:
            for store in stores.values():
                store.close()
    for name, r in measured.items():
        print(
            f"{name}: baseline {r['baseline']['median_ms']} ms, current {r['current']['median_ms']}"
            f" ms median per append of {r['points_per_append']} points;"
            f" median ratio {r['median_ratio_current_to_baseline']}",
            flush=True,
        )
    write_result(args.json, "store.ab", urls["current"], measured)


if __name__ == "__main__":
    main()
