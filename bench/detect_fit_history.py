"""Fitting on stored history in the platform: what a series' first fit costs, and whether the other
series wait for it.

    .venv/bin/python bench/detect_fit_history.py --json bench/results/detect_fit_history.json

A DuckDB store holds ``--days`` of 1 Hz history of one series (a daily cycle, a 60 s machine cycle,
noise and a slow walk). The detection service meets that series (its first live reading): it reads
the last ``history_window`` of stored history, at most ``max_history`` readings, and fits
``fitted`` on it in its fit thread. Meanwhile ``--others`` series of other devices send one
reading per second each; the bench records how late their anomaly events arrive (publish to
event, the worst and the 99th percentile while the fit runs) against the same measure with no
fit running. Also reported: the fit's wall and CPU time split into reading the store and fitting
(measured again outside the service, same history), and ``FittedDetector.fit`` on the whole
``--days`` (no cap) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from atoll.bus.memory import MemoryBus
from atoll.core.events import decode_anomalies
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.fitted import FittedDetector
from atoll.detect.replay import warm_up
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry
from atoll.platform import tune_interpreter
from atoll.store import open_store

S = 1_000_000
KEY = SeriesKey("bench", "machine", "temp")


def history(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (
        50
        + 5 * np.sin(2 * np.pi * t / 86_400)
        + 1.5 * np.sin(2 * np.pi * t / 60)
        + np.cumsum(rng.normal(0, 0.002, n))
        + rng.normal(0, 0.1, n)
    )


async def lateness(svc, bus, others: int, seconds: float, start: int) -> list[float]:
    """Publish one reading per other series per (simulated) second for ``seconds`` of wall
    time; the delays from publish to event."""
    sent: dict[tuple[str, int], float] = {}
    delays: list[float] = []

    async def got(msg) -> None:
        now = time.perf_counter()
        for e in decode_anomalies(msg.data):
            t = sent.pop((e.device, e.ts), None)
            if t is not None:
                delays.append(now - t)

    sub = await bus.subscribe("anomaly.bench.>", got)
    rng = np.random.default_rng(1)
    step = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        ts = start + step * S
        for d in range(others):
            sent[(f"other{d}", ts)] = time.perf_counter()
            await bus.publish(
                f"telemetry.bench.other{d}",
                encode_telemetry(
                    "bench", f"other{d}", ["load"], [0], [ts], [float(20 + rng.normal())]
                ),
            )
        step += 1
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await sub.unsubscribe()
    return delays


async def run(args) -> dict:
    n = int(args.days * 86_400)
    warm_up(["ensemble"])  # kernels compiled (or loaded) before anything is timed
    small = FittedDetector()
    small.fit(history(5000))
    small.detect_many(history(500, seed=2))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"duckdb:///{Path(tmp) / 'series.duckdb'}")
        t_end = 1_764_000_000 * S
        ts = t_end - (n - np.arange(n, dtype=np.int64)) * S
        values = history(n)
        for lo in range(0, n, 200_000):
            store.append(
                PointBatch.of_series(KEY, ts[lo : lo + 200_000], values[lo : lo + 200_000])
            )
        bus = MemoryBus()
        svc = DetectionService(bus, store, group=None, refit_interval=0)
        await svc.start()
        await svc.ready.wait()
        # Other series are met first (and found to have no history), then measured without a fit.
        quiet = await lateness(svc, bus, args.others, 3.0, t_end)
        quiet = await lateness(svc, bus, args.others, args.window, t_end + 10_000 * S)
        c0 = time.process_time()
        t0 = time.perf_counter()
        await bus.publish(
            "telemetry.bench.machine",
            encode_telemetry("bench", "machine", ["temp"], [0], [t_end], [float(values[-1])]),
        )
        during_task = asyncio.create_task(
            lateness(svc, bus, args.others, args.window, t_end + 100_000 * S)
        )
        while svc.stats["fits"] < 1:
            await asyncio.sleep(0.01)
        fit_wall = time.perf_counter() - t0
        fit_cpu = time.process_time() - c0  # the whole process: the others' scoring included
        during = await during_task
        record = svc.models.current(KEY)
        await svc.stop()

        # The same fit outside the service: reading the store, then fitting.
        t0, c0 = time.perf_counter(), time.process_time()
        start = t_end - int(svc.history_window * S)
        got_ts, got_x = svc._read_one(KEY, start, t_end)
        read_wall, read_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        FittedDetector().fit(got_x, got_ts)
        fit_only_wall, fit_only_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        FittedDetector().fit(values, ts)
        whole_wall, whole_cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()

    def pct(xs: list[float], q: float) -> float:
        return 1000 * float(np.percentile(xs, q)) if xs else float("nan")

    return {
        "history_days": args.days,
        "history_readings": n,
        "fitted_on_readings": record.rows if record else None,
        "service_fit_seconds": svc.stats["fit_seconds"],
        "first_reading_to_fitted_wall_s": fit_wall,
        "process_cpu_s_meanwhile": fit_cpu,
        "store_read_wall_s": read_wall,
        "store_read_cpu_s": read_cpu,
        "fit_wall_s": fit_only_wall,
        "fit_cpu_s": fit_only_cpu,
        "fit_whole_history_uncapped_wall_s": whole_wall,
        "fit_whole_history_uncapped_cpu_s": whole_cpu,
        "others": args.others,
        "others_event_delay_ms_without_fit": {"p99": pct(quiet, 99), "max": pct(quiet, 100)},
        "others_event_delay_ms_during_fit": {"p99": pct(during, 99), "max": pct(during, 100)},
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    tune_interpreter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--others", type=int, default=200, help="other series sending meanwhile")
    p.add_argument("--window", type=float, default=3.0, help="seconds of others' traffic measured")
    p.add_argument("--json")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
