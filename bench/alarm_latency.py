"""Rules benchmark: time from a tripping reading to its alarm event, under background load.

    .venv/bin/python bench/alarm_latency.py --json bench/results/alarm_latency.json
    .venv/bin/python bench/alarm_latency.py --path ingest --seconds 10 --rate 2000

``--path bus`` starts the clock when the reading is published on the memory bus (as ingest
does after storing it); ``--path ingest`` when it is handed to the real ingest pipeline
(validate → group-committed append to a memory store → bus). The clock stops when the
``raised`` event arrives on ``alarm.{project}``, i.e. after the alarm is in SQLite (a file in a
temp dir). Meanwhile ``--devices`` devices send ``--rate`` readings/s in total that trip
nothing, and several rules watch every device. Writes one JSON document; docs/BENCHMARKS.md
("Rules") records a run.
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

import orjson

from atoll.bus.memory import MemoryBus
from atoll.ingest.events import encode_telemetry
from atoll.rules.directory import StaticDirectory
from atoll.rules.service import RulesService

PROJECT = "bench"


def rules(devices: int) -> list[dict]:
    every = {"device_type": "boiler"}
    return [
        {
            "name": "hot",
            "target": every,
            "condition": {"type": "threshold", "metric": "t", "value": 90, "clear": 85},
        },
        {
            "name": "hot for a while",
            "target": every,
            "condition": {"type": "threshold", "metric": "t", "value": 95, "for": "10m"},
        },
        {
            "name": "fast rise",
            "target": every,
            "condition": {"type": "rate", "metric": "t", "value": 1000, "per": 1},
        },
        {"name": "offline", "target": every, "condition": {"type": "no_data", "timeout": "1h"}},
        {
            "name": "hot and dry",
            "target": every,
            "condition": {
                "type": "all",
                "conditions": [
                    {"type": "threshold", "metric": "t", "value": 90},
                    {"type": "threshold", "metric": "h", "op": "<", "value": 5},
                ],
            },
        },
    ]


async def timer_pass(devices: int) -> dict:
    """Cost of one timer pass (``for``, ``no_data``, escalations) over a large fleet."""
    names = [f"t{i:06d}" for i in range(devices)]
    svc = RulesService(
        None, directory=StaticDirectory({PROJECT: {n: "boiler" for n in names}}), tick_interval=0
    )
    t = time.perf_counter()
    for r in rules(devices):
        await svc.create_rule({**r, "project": PROJECT})
    setup = time.perf_counter() - t
    passes = []
    for _ in range(7):
        t = time.perf_counter()
        await svc.tick()
        passes.append((time.perf_counter() - t) * 1000)
    return {
        "devices": devices,
        "rule_instances": devices * len(rules(devices)),
        "create_rules_s": round(setup, 2),
        "timer_pass_ms_median": round(statistics.median(passes), 1),
    }


async def run(args) -> dict:
    tmp = tempfile.mkdtemp(prefix="atoll-bench-rules-")
    bus = MemoryBus()
    names = [f"b{i:05d}" for i in range(args.devices)]
    directory = StaticDirectory({PROJECT: {n: "boiler" for n in names}})
    svc = RulesService(bus, db=f"sqlite:///{tmp}/rules.db", directory=directory, tick_interval=1.0)
    for r in rules(args.devices):
        await svc.create_rule({**r, "project": PROJECT})
    # Raw evaluation speed first: telemetry events handed straight to the service.
    from atoll.bus.port import Message

    msgs = [
        Message(
            f"telemetry.{PROJECT}.{n}",
            encode_telemetry(
                PROJECT,
                n,
                ["t", "h"],
                [0, 1],
                [1_800_000_000_000_000 + k] * 2,
                [20.0 + k % 5, 50.0],
            ),
        )
        for k, n in enumerate(names * max(1, args.throughput_n // len(names)))
    ]
    t = time.perf_counter()
    for m in msgs:
        await svc._on_telemetry(m)
    throughput = round(len(msgs) / (time.perf_counter() - t))
    await svc.start()

    pipeline = None
    if args.path == "ingest":
        from atoll.ingest.pipeline import IngestPipeline
        from atoll.registry.models import DeviceIdentity
        from atoll.store.memory import MemoryStore

        pipeline = IngestPipeline(MemoryStore(), bus, None)
        await pipeline.start()

    async def send(device: str, t: float, h: float = 50.0) -> None:
        if pipeline is None:
            now = time.time_ns() // 1000
            await bus.publish(
                f"telemetry.{PROJECT}.{device}",
                encode_telemetry(PROJECT, device, ["t", "h"], [0, 1], [now, now], [t, h]),
            )
        else:
            body = orjson.dumps({"values": {"t": t, "h": h}})
            await pipeline.submit_telemetry(DeviceIdentity(device, PROJECT, "t"), body, "bench")

    raised: dict[str, float] = {}

    async def on_alarm(msg) -> None:
        e = orjson.loads(msg.data)
        if e["event"] == "raised" and e["alarm"]["rule_id"] == "hot":
            raised[e["alarm"]["device"]] = time.perf_counter()

    await bus.subscribe(f"alarm.{PROJECT}", on_alarm)

    stop = asyncio.Event()
    sent = 0

    async def background() -> None:
        nonlocal sent
        interval = 0.01
        per_tick = max(1, int(args.rate * interval))
        i = 0
        next_t = time.perf_counter()
        while not stop.is_set():
            batch = [send(names[(i + k) % len(names)], 20.0 + (k % 10)) for k in range(per_tick)]
            i += per_tick
            await asyncio.gather(*batch)
            sent += per_tick
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))

    bg = asyncio.create_task(background())
    await asyncio.sleep(1.0)  # warm up
    latencies = []
    missed = 0
    t_start, sent0 = time.perf_counter(), sent
    trip = 0
    while time.perf_counter() - t_start < args.seconds:
        device = names[(trip * 7919) % len(names)]
        trip += 1
        raised.pop(device, None)
        t0 = time.perf_counter()
        await send(device, 99.0)
        while device not in raised and time.perf_counter() - t0 < 5:
            await asyncio.sleep(0.0005)
        if device in raised:
            latencies.append((raised[device] - t0) * 1000)
        else:
            missed += 1
        await send(device, 20.0)  # clear it again
        await asyncio.sleep(args.interval)
    elapsed = time.perf_counter() - t_start
    stop.set()
    await bg
    await svc.stop()
    if pipeline is not None:
        await pipeline.stop()
    await bus.close()

    q = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else latencies * 99
    )
    return {
        "benchmark": "alarm_latency",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": args.machine,
        "python": platform.python_version(),
        "path": args.path,
        "devices": args.devices,
        "rules": len(rules(args.devices)),
        "rule_instances": len(rules(args.devices)) * args.devices,
        "background_rate_target": args.rate,
        "background_readings_per_s": round((sent - sent0) / elapsed),
        "trips": len(latencies),
        "missed": missed,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(q[94], 2),
            "p99": round(q[98], 2),
            "max": round(max(latencies), 2),
        },
        "readings_evaluated": svc.stats["readings"],
        "service_messages_per_s_unloaded": throughput,
        "timer_pass": await timer_pass(args.tick_devices) if args.tick_devices else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="where to write the results")
    ap.add_argument("--path", choices=("bus", "ingest"), default="bus")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=2000, help="background readings per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.05, help="pause between trips (s)")
    ap.add_argument(
        "--tick-devices",
        type=int,
        default=10_000,
        help="fleet size for the timer-pass measurement (0: skip)",
    )
    ap.add_argument(
        "--throughput-n",
        type=int,
        default=20_000,
        help="messages for the raw evaluation-speed measurement",
    )
    ap.add_argument("--machine", default=os.environ.get("ATOLL_MACHINE", "2-core python-svc"))
    args = ap.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
