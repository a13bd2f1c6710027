"""The fitted detector's cost: fit time on a week of 1 Hz history, online speed, state size.

    .venv/bin/python bench/detect_fitted.py --json bench/results/detect_fitted.json

Issue #10's targets: fitting a week of 1 Hz history (604,800 points) in at most 10 s per series
on one core, scoring at least 100 k points/s per core, state at most 1 MB per series. For each
kind of series (``--kinds``) the bench fits ``atoll.detect.fitted.FittedDetector`` on a week of
synthetic history and scores ``--live`` fresh points from the same process (normal data), then
the same points made novel (``x * 3 + 5``: for most kinds every window far from the bank, the
full scan and a flag on every reading; the worst case for speed). Two variants of white noise:
``noise@fine`` fits at a finer bank resolution (0.15 instead of 0.25 of the threshold), so the
bank is larger before the all-novel stretch (the scan grows with it; the bank is coarsened
whenever it passes half its cap, 2,048); ``noise@drift`` accepts a flagged state after 1 % of
the history's length (drift rule), so the all-novel stretch is learned online: the bank grows,
is coarsened, and stays bounded. One process, one thread (numba kernels;
``NUMBA_NUM_THREADS`` does not matter: nothing runs in parallel). Times are wall-clock and
process CPU time; JIT compilation is done (or loaded from numba's cache) before timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from atoll.detect.fitted import FittedDetector

WEEK = 7 * 24 * 3600
KINDS = ("daily", "machine", "noise", "randwalk", "noise@fine", "noise@drift")
#: Detector parameters per kind suffix (``kind@variant``).
VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "fine": {"resolution": 0.15},
    "drift": {"accept_after": 0.01},
}


def series(kind: str, n: int, seed: int) -> np.ndarray:
    """A 1 Hz series of ``kind``: a daily sine, a machine (operating steps + 60 s cycle), white
    noise, or a random walk; each with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if kind == "daily":
        return np.sin(2 * np.pi * t / 86_400) + 0.05 * rng.standard_normal(n)
    if kind == "machine":
        steps = np.repeat(rng.uniform(0, 1, n // 600 + 1), 600)[:n]
        return steps + 0.2 * np.sin(2 * np.pi * t / 60) + 0.05 * rng.standard_normal(n)
    if kind == "noise":
        return rng.standard_normal(n)
    if kind == "randwalk":
        return np.cumsum(rng.standard_normal(n)) * 0.01
    raise ValueError(f"unknown kind {kind!r}")


def _timed(run) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = run()
    return out, time.perf_counter() - t0, time.process_time() - c0


def measure(name: str, history: int, live: int) -> dict[str, Any]:
    kind, _, variant = name.partition("@")
    params = VARIANTS[variant]
    ts_h = np.arange(history, dtype=np.int64) * 1_000_000
    ts_l = ts_h[-1] + 1_000_000 + np.arange(live, dtype=np.int64) * 1_000_000
    h = series(kind, history, seed=0)
    fresh = series(kind, live, seed=1)
    det = FittedDetector(**params)
    _, fit_s, fit_cpu = _timed(lambda: det.fit(h, ts_h))
    fitted = det.describe()
    state = det.state()
    worst = FittedDetector.from_state(state)
    (_, flags), score_s, score_cpu = _timed(lambda: det.detect_many(fresh, ts_l))
    (_, wflags), worst_s, worst_cpu = _timed(lambda: worst.detect_many(fresh * 3 + 5, ts_l))
    return {
        "kind": name,
        "params": params,
        "history_points": history,
        "live_points": live,
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "score_points_per_s": live / score_s,
        "score_points_per_cpu_s": live / score_cpu if score_cpu > 0 else None,
        "flag_rate_normal": float(flags.mean()),
        "worst_points_per_s": live / worst_s,
        "worst_points_per_cpu_s": live / worst_cpu if worst_cpu > 0 else None,
        "flag_rate_worst": float(wflags.mean()),
        "bank_after_fit": fitted["bank"],
        "bank_after_worst": worst.describe()["bank"],
        "coarsened_online_worst": worst.describe()["coarsened"],
        "state_bytes": len(state),
        "nbytes": det.nbytes(),
        "signals": fitted["signals"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated series kinds")
    ap.add_argument("--history", type=int, default=WEEK, help="history points (a week of 1 Hz)")
    ap.add_argument("--live", type=int, default=200_000, help="points scored online")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    warm = FittedDetector()  # compile (or load from numba's cache) before timing
    warm.fit(series("daily", 2000, 0))
    warm.detect_many(series("daily", 500, 1))
    rows = []
    load_before = os.getloadavg()
    for kind in args.kinds.split(","):
        row = measure(kind, args.history, args.live)
        rows.append(row)
        print(
            f"{kind:9s} fit {row['fit_s']:5.2f} s (CPU {row['fit_cpu_s']:5.2f} s)  "
            f"online {row['score_points_per_s']:>9,.0f} pts/s  "
            f"worst {row['worst_points_per_s']:>9,.0f} pts/s  "
            f"bank {row['bank_after_fit']}/{row['bank_after_worst']}  "
            f"state {row['state_bytes']:,} B  flags {row['flag_rate_normal']:.4f}",
            flush=True,
        )
    result = {
        "benchmark": "detect_fitted",
        "rows": rows,
        "targets": {"fit_s_per_week": 10.0, "points_per_s": 100_000, "state_bytes": 1_000_000},
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
