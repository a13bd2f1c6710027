"""Detection on NATS JetStream: share of readings scored and throughput, before partitions
(one group subscription spread over the workers) vs partitioned by device.

    .venv/bin/python bench/detect_partitions.py --json bench/results/detect_partitions.json

A 3-node JetStream cluster (``nats-server`` processes on free ports, R3 stream and buckets) and
worker processes (``atoll.testing.detect_worker``, ``ewma`` detector, no store). For each mode a
fresh stream; the workers start and settle, then two publishers ("two ingest nodes") publish
``--devices`` devices' telemetry (``--readings`` per message, ``--spacing-ms`` apart), each
device's messages alternating between the publishers (as an MQTT shared subscription spreads one
device's messages over nodes), the second meeting the devices in reverse order, so consecutive
messages of a device reach the stream in either order. Every anomaly event is collected (a
durable consumer); a reading is *scored* when an event carries its (device, timestamp). The
clock runs from the first publish until the last event (or until nothing new came for
``--idle`` seconds). CPU: the workers' user+system seconds over the run (from ``/proc``).

Each mode runs twice: *live* (the workers run while the readings are published: the rate is
bounded by the publishers) and *backlog* (the workers start, settle and stop, the readings are
published, the workers start again: the clock runs from the first event to the last, and CPU
counts from their start, restoring included: detection's own rate).

Modes: ``group`` (before: ``--workers`` workers on one durable group consumer), ``partitioned``
with 1 and with ``--workers`` workers (64 partitions, leases, checkpoints, reorder buffer of
``--lateness`` s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
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


async def _start(url: str, n: int, mode: str, args: argparse.Namespace, logs: Path, status):
    procs = _workers(url, n, mode, args.lateness, logs)
    for p in procs:
        line = await asyncio.to_thread(p.stdout.readline)  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise RuntimeError(f"worker did not start (see {logs})")

    def drain(i: int, p: subprocess.Popen) -> None:
        for line in p.stdout:  # type: ignore[union-attr]
            with contextlib.suppress(ValueError):
                status[i] = json.loads(line)

    for i, p in enumerate(procs):
        threading.Thread(target=drain, args=(i, p), daemon=True).start()
    return procs


async def _stop(procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    """SIGTERM (a worker hands its partitions over); one that has not exited after ``timeout``
    dumps its stacks into its log (SIGUSR1) and is killed."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            await asyncio.to_thread(p.wait, timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGUSR1)
            await asyncio.sleep(1)
            p.kill()
            p.wait()
            print(f"worker {p.pid} did not stop in {timeout} s; killed")


async def run_mode(
    cluster: NatsCluster,
    mode: str,
    workers: int,
    args: argparse.Namespace,
    logs: Path,
    backlog: bool,
) -> dict:
    """``backlog``: the workers start, stop, the readings are published, the workers start
    again and the clock runs from the first event to the last (detection's own rate). Else the
    workers run while the readings are published (live)."""
    root = "b" + uuid.uuid4().hex[:8]
    url = f"{cluster.url}?stream=S{root}&prefix={root}&replicas=3&timeout=15"
    bus = NatsBus.from_url(url)
    await bus.connect()
    scored: set[tuple[str, int]] = set()
    events = 0
    first_event = last_event = 0.0

    async def on_anomaly(msg) -> None:
        nonlocal events, first_event, last_event
        got = decode_anomalies(msg.data)
        events += len(got)
        scored.update((e.device, e.ts) for e in got)
        last_event = time.perf_counter()
        first_event = first_event or last_event

    await bus.subscribe("anomaly.>", on_anomaly, group="bench")
    status: dict[int, dict] = {}
    procs = await _start(url, workers, mode, args, logs, status)
    try:
        await asyncio.sleep(args.settle)  # partitions spread over the workers
        if backlog:
            await _stop(procs)  # the group consumer and the partitions' consumers stay
        cpu0 = [_cpu(p) for p in procs]
        per_msg = args.readings
        sent = args.devices * args.messages * per_msg
        step = int(args.spacing_ms * 1000)

        async def publisher(k: int) -> None:
            # Publisher k publishes message m of every device when m % 2 == k; the second
            # meets the devices in the other order: a device's consecutive messages reach the
            # stream in either order (up to one message apart).
            devices = range(args.devices) if k == 0 else range(args.devices - 1, -1, -1)
            for m in range(k, args.messages, 2):
                for d in devices:
                    ts = [T0 + (m * per_msg + i) * step for i in range(per_msg)]
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
        if backlog:
            status.clear()
            procs = await _start(url, workers, mode, args, logs, status)
            cpu0 = [0.0] * len(procs)  # from their start: restoring and catching up count
        last_event = max(last_event, time.perf_counter())
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{mode} x{workers}: scoring", total=sent)
            while len(scored) < sent and time.perf_counter() - last_event < args.idle:
                progress.update(task, completed=len(scored))
                await asyncio.sleep(0.2)
        took = last_event - (first_event if backlog else t0)
        await asyncio.sleep(1.5)  # one more status line from each worker
        cpu = sum(_cpu(p) - c for p, c in zip(procs, cpu0, strict=True))
    finally:
        await _stop(procs)
        await bus.close()
    return {
        "mode": mode,
        "workers": workers,
        "phase": "backlog" if backlog else "live",
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
        "skipped_late": sum(st.get("skipped_late", 0) for st in status.values()),
    }


async def main(args: argparse.Namespace) -> dict:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tempfile.mkdtemp(prefix="detect-partitions-logs-"))  # kept: workers' logs
        print(f"worker logs: {logs}")
        with NatsCluster(Path(tmp) / "nats", size=3) as cluster:
            for backlog in (False, True):
                for mode, n in (
                    ("group", args.workers),
                    ("partitioned", 1),
                    ("partitioned", args.workers),
                ):
                    r = await run_mode(cluster, mode, n, args, logs, backlog)
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
            for k in (
                "devices",
                "messages",
                "readings",
                "spacing_ms",
                "workers",
                "lateness",
                "idle",
            )
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
    ap.add_argument("--spacing-ms", type=float, default=50.0, help="between a device's readings")
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")
