"""Bus benchmark: publish → handler throughput, in-process memory bus vs NATS JetStream.

    .venv/bin/python bench/bus_nats.py --json bench/results/bus_nats.json

For each bus and payload, one subscriber in a group (as the detection service subscribes to
``telemetry.>``) counts messages; the clock runs from the first publish until the handler has seen
the last one. Publishes are awaited one by one, as ingest does: on NATS each waits for the
JetStream PubAck (stored on disk). Payloads: a telemetry event of ``--points`` readings
(3 metrics, as ingest encodes it) and a small one (a single reading). The NATS server is a
throwaway ``nats-server -js`` on an ephemeral port with its store in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime

from atoll.bus.memory import MemoryBus
from atoll.bus.nats import NatsBus
from atoll.bus.port import Message, MessageBus
from atoll.ingest.events import encode_telemetry
from atoll.testing.nats_server import NatsServer

T0 = 1_764_000_000_000_000


def telemetry(points: int, device: int) -> bytes:
    metrics = ["temperature", "humidity", "pressure"]
    return encode_telemetry(
        "bench",
        f"d{device}",
        metrics,
        [i % 3 for i in range(points)],
        [T0 + i * 1_000_000 for i in range(points)],
        [20.0 + (i % 97) * 0.1 for i in range(points)],
    )


async def run(bus: MessageBus, payloads: list[bytes], tag: str, points: int) -> dict:
    n = len(payloads)
    seen = 0
    done = asyncio.Event()

    async def handler(msg: Message) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            done.set()

    sub = await bus.subscribe(f"telemetry.{tag}.>", handler, group="bench")
    publish_s: list[float] = []
    t0 = time.perf_counter()
    for i, data in enumerate(payloads):
        p0 = time.perf_counter()
        await bus.publish(f"telemetry.{tag}.d{i % 10}", data)
        publish_s.append(time.perf_counter() - p0)
    t_published = time.perf_counter() - t0
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    publish_s.sort()
    return {
        "messages": n,
        "payload_bytes": len(payloads[0]),
        "seconds": round(elapsed, 4),
        "messages_per_s": round(n / elapsed, 1),
        "points_per_s": round(n * points / elapsed),
        "mb_per_s": round(n * len(payloads[0]) / elapsed / 1e6, 2),
        "publish_seconds": round(t_published, 4),
        "publish_p50_ms": round(statistics.median(publish_s) * 1000, 3),
        "publish_p99_ms": round(publish_s[int(0.99 * (n - 1))] * 1000, 3),
    }


async def bench(args: argparse.Namespace, nats_url: str) -> dict:
    big = [telemetry(args.points, i % 10) for i in range(args.big)]
    small = [telemetry(1, i % 10) for i in range(args.small)]
    results: dict[str, dict] = {}
    for name in ("memory", "nats"):
        bus: MessageBus = MemoryBus() if name == "memory" else NatsBus(nats_url)
        for label, payloads, points in (
            (f"{args.points}_points", big, args.points),
            ("1_point", small, 1),
        ):
            tag = f"{name}{label.replace('_', '')}"
            await run(bus, payloads[: max(1, len(payloads) // 10)], tag + "w", points)  # warm-up
            results[f"{name}/{label}"] = await run(bus, payloads, tag, points)
            r = results[f"{name}/{label}"]
            print(
                f"{name:6} {label:12} {r['messages']:6} msgs  {r['messages_per_s']:9.1f} msg/s "
                f"{r['mb_per_s']:7.2f} MB/s  publish p50 {r['publish_p50_ms']} ms",
                flush=True,
            )
        await bus.close()
    ratios = {
        label: round(
            results[f"memory/{label}"]["messages_per_s"]
            / results[f"nats/{label}"]["messages_per_s"],
            1,
        )
        for label in (f"{args.points}_points", "1_point")
    }
    return {"results": results, "memory_over_nats": ratios}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000, help="readings per telemetry payload")
    ap.add_argument("--big", type=int, default=1000, help="messages with --points readings")
    ap.add_argument("--small", type=int, default=5000, help="messages with one reading")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer(tmp) as server:
        out = asyncio.run(bench(args, server.url))
    out = {
        "benchmark": "bus_nats",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "settings": vars(args),
        **out,
    }
    print(json.dumps(out["memory_over_nats"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
