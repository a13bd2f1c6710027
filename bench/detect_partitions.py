"""Detection on NATS JetStream: share of readings scored and throughput, before partitions
(one group subscription spread over the workers) vs partitioned by device.

    .venv/bin/python bench/detect_partitions.py --json bench/results/detect_partitions.json

A 3-node JetStream cluster (``nats-server`` processes on free ports, R3 stream and buckets) and
worker processes (``atoll.testing.detect_worker``, ``ewma`` detector, no store). For each mode a
fresh stream; the workers start and settle, then two publishers ("two ingest nodes") publish
``--devices`` devices' telemetry, each device's messages alternating between the publishers (as an
MQTT shared subscription spreads one device's messages over nodes), so consecutive messages of a
device can arrive in either order. Every anomaly event is collected (a durable consumer); a
reading is *scored* when an event carries its (device, timestamp). The clock runs from the first
publish until the last event (or until nothing new came for ``--idle`` seconds). CPU: the
workers' user+system seconds over the run (from ``/proc``).

Modes: ``group`` (before: ``--workers`` workers on one durable group consumer), ``partitioned``
with 1 and with ``--workers`` workers (64 partitions, leases, checkpoints, reorder buffer of
``--lateness`` s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.progress import Progress

from atoll.bus.nats import NatsBus
from atoll.core.events import decode_anomalies
from atoll.ingest.events import encode_telemetry
from atoll.testing.nats_server import NatsCluster

T0 = 1_764_000_000_000_000
SEC = 1_000_000


def _workers(url: str, n: int, mode: str, lateness: float, logs: Path) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "atoll.testing.detect_worker", url, "--member", f"w{i}"]
            + ["--mode", mode, "--lateness", str(lateness), "--lease", "6", "--checkpoint", "5"],
            stdout=subprocess.PIPE,
            stderr=open(logs / f"{mode}-{n}-w{i}.log", "w"),  # noqa: SIM115
            text=True,
        )
        for i in range(n)
    ]


def _cpu(proc: subprocess.Popen) -> float:
    try:
        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


async def run_mode(
    cluster: NatsCluster, mode: str, workers: int, args: argparse.Namespace, logs: Path
) -> dict:
    root = "b" + uuid.uuid4().hex[:8]
    url = f"{cluster.url}?stream=S{root}&prefix={root}&replicas=3&timeout=15"
    bus = NatsBus.from_url(url)
    await bus.connect()
    scored: set[tuple[str, int]] = set()
    events = 0
    last_event = time.perf_counter()

    async def on_anomaly(msg) -> None:
        nonlocal events, last_event
        got = decode_anomalies(msg.data)
        events += len(got)
        scored.update((e.device, e.ts) for e in got)
        last_event = time.perf_counter()

    await bus.subscribe("anomaly.>", on_anomaly, group="bench")
    procs = _workers(url, workers, mode, args.lateness, logs)
    try:
        for p in procs:
            line = await asyncio.to_thread(p.stdout.readline)  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise RuntimeError(f"worker did not start (see {logs})")
        await asyncio.sleep(args.settle)  # partitions spread over the workers
        cpu0 = [_cpu(p) for p in procs]
        # Publisher k publishes message m of every device when m % 2 == k.
        per_msg = args.readings
        sent = args.devices * args.messages * per_msg

        async def publisher(k: int) -> None:
            for m in range(k, args.messages, 2):
                for d in range(args.devices):
                    ts = [T0 + (m * per_msg + i) * SEC for i in range(per_msg)]
                    await bus.publish(
                        f"telemetry.bench.dev{d}",
                        encode_telemetry(
                            "bench",
                            f"dev{d}",
                            ["temp"],
                            [0] * per_msg,
                            ts,
                            [20.0 + ((m + i) % 11) * 0.1 for i in range(per_msg)],
                        ),
                    )

        t0 = time.perf_counter()
        await asyncio.gather(publisher(0), publisher(1))
        published_s = time.perf_counter() - t0
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{mode} x{workers}: scoring", total=sent)
            while len(scored) < sent and time.perf_counter() - last_event < args.idle:
                progress.update(task, completed=len(scored))
                await asyncio.sleep(0.2)
        took = max(last_event, t0) - t0
        cpu = sum(_cpu(p) - c for p, c in zip(procs, cpu0, strict=True))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await asyncio.to_thread(p.wait, 30)
        await bus.close()
    return {
        "mode": mode,
        "workers": workers,
        "readings_published": sent,
        "readings_scored": len(scored),
        "share_scored": round(len(scored) / sent, 4),
        "events": events,
        "repeats": events - len(scored),
        "publish_seconds": round(published_s, 2),
        "seconds": round(took, 2),
        "scored_per_s": round(len(scored) / took, 1) if took > 0 else None,
        "worker_cpu_seconds": round(cpu, 2),
        "cpu_us_per_scored": round(cpu / len(scored) * 1e6, 1) if scored else None,
    }


async def main(args: argparse.Namespace) -> dict:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        with NatsCluster(Path(tmp) / "nats", size=3) as cluster:
            for mode, n in (
                ("group", args.workers),
                ("partitioned", 1),
                ("partitioned", args.workers),
            ):
                r = await run_mode(cluster, mode, n, args, logs)
                print(json.dumps(r))
                results.append(r)
    return {
        "benchmark": "detect_partitions",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "params": {
            k: getattr(args, k)
            for k in ("devices", "messages", "readings", "workers", "lateness", "idle")
        },
        "results": results,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--messages", type=int, default=40, help="per device")
    ap.add_argument("--readings", type=int, default=10, help="per message")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lateness", type=float, default=2.0)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")
