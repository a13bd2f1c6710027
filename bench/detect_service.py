"""Detection service benchmark: readings/s through the platform's detection service.

    .venv/bin/python bench/detect_service.py --json bench/results/detect_service.json

``--devices`` devices with ``--metrics`` metrics each send messages of ``--per-message`` readings
per metric, published on a memory bus as ingest does after storing them. The service scores each
series with its detector (default: ``default``), appends the scores to a memory store, publishes
anomaly events, and learns. The clock runs from the first publish until the service has counted
every point's score (published, and appended to the store); ``points_per_cpu_second`` divides by the
process's CPU time instead (the store writer thread included), which a busy machine cannot inflate.
Also reports the learned state held per series, and the event loop's worst lag during the run
(``max_loop_lag_ms``: how late a 5 ms ticker woke up; ingest's acknowledgements share that loop).
The GIL switch interval is the one ``atoll up`` sets (``tune_interpreter``). ``--cold`` skips the
benchmark's own warm-up, so kernels are compiled (or loaded from numba's cache) by the service
itself; with ``NUMBA_CACHE_DIR`` pointing at an empty directory that is a fresh install's first
start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np

from atoll.bus.memory import MemoryBus
from atoll.detect.registry import resolve
from atoll.detect.replay import warm_up
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry
from atoll.platform import tune_interpreter
from atoll.store.memory import MemoryStore

T0 = 1_764_000_000_000_000


def messages(devices: int, metrics: int, per_message: int, rounds: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    names = [f"m{j}" for j in range(metrics)]
    out = []
    for r in range(rounds):
        ts = [T0 + (r * per_message + i) * 1_000_000 for i in range(per_message)]
        for d in range(devices):
            vals = (20 + rng.normal(0, 1, (metrics, per_message))).ravel().tolist()
            idx = np.repeat(np.arange(metrics), per_message).tolist()
            out.append(
                (
                    f"telemetry.bench.dev{d}",
                    encode_telemetry("bench", f"dev{d}", names, idx, ts * metrics, vals),
                )
            )
    return out


async def _ticker(lags: list[float], period: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - t - period)


async def run(args) -> dict:
    if not args.cold:
        warm_up([resolve(args.detector)])
    msgs = messages(args.devices, args.metrics, args.per_message, args.rounds)
    total = args.devices * args.metrics * args.per_message * args.rounds
    bus, store = MemoryBus(), MemoryStore()
    svc = DetectionService(bus, store, default=args.detector)
    lags: list[float] = []
    ticker = asyncio.create_task(_ticker(lags))
    await asyncio.sleep(0.02)
    await svc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    for subject, data in msgs:
        await bus.publish(subject, data)
    while svc.stats["stored"] < total:
        await asyncio.sleep(0.005)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ticker.cancel()
    await svc.stop()
    await bus.close()
    series = len(svc.series)
    return {
        "detector": resolve(args.detector),
        "devices": args.devices,
        "metrics_per_device": args.metrics,
        "series": series,
        "readings_per_message_per_metric": args.per_message,
        "messages": len(msgs),
        "points": total,
        "seconds": seconds,
        "points_per_second": total / seconds,
        "cpu_seconds": cpu,
        "points_per_cpu_second": total / cpu,
        "service_seconds": svc.stats["seconds"],
        "cold": args.cold,
        "max_loop_lag_ms": 1000 * max(lags, default=0.0),
        "p99_loop_lag_ms": 1000 * float(np.percentile(lags, 99)) if lags else 0.0,
        "load_average": os.getloadavg(),
        "state_bytes_per_series": svc.memory_bytes() / series,
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    tune_interpreter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="default")
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--metrics", type=int, default=4)
    p.add_argument("--per-message", type=int, default=10)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--cold", action="store_true", help="no warm-up by the benchmark (see above)")
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
