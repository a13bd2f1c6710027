"""Gateway ingest: points per second a gateway gets stored through ``gateway/telemetry``
(embedded broker, the default DuckDB store), next to the same points sent by one device on
its own ``telemetry`` topic. Rate limits are off unless ``--rate-limits``.

    .venv/bin/python bench/gateway_ingest.py --json bench/results/gateway_ingest.json

One paho client (QoS 1, ``--inflight`` messages in flight) sends ``--messages`` messages. A
gateway message holds ``--children`` children's parts of ``--readings`` readings each (one
metric); the plain device's message holds the same readings as one batch. Timed from the first
publish to the last PUBACK (every PUBACK means stored), then the store is asked how many points
it holds. Children are registered (typed) before, untimed. This measures the platform side an
edge agent drains its backlog into (issue #15 asks >= 50 k points/s to a local platform).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from argon2 import PasswordHasher

from atoll.config import Settings
from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.platform import Platform

T0_MS = 1_795_428_000_000


def messages(kind: str, n: int, children: int, readings: int) -> list[tuple[str, bytes]]:
    out = []
    for m in range(n):
        base = T0_MS + m * readings * 10
        if kind == "gateway":
            body = {
                f"c{c}": [
                    {"ts": base + r * 10, "values": {"force": (m + r + c) % 100}}
                    for r in range(readings)
                ]
                for c in range(children)
            }
            out.append((topics.gateway_telemetry("gw"), json.dumps(body).encode()))
        else:
            # The same number of points from one device: children x readings distinct stamps.
            first = T0_MS + m * children * readings  # 1 ms apart, no stamp twice
            body = [
                {"ts": first + i, "values": {"force": (m + i) % 100}}
                for i in range(children * readings)
            ]
            out.append((topics.telemetry("solo"), json.dumps(body).encode()))
    return out


def send(port: int, user: str, secret: str, payloads, inflight: int) -> float:
    done = threading.Event()
    acked = 0
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, secret)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)

    def on_publish(client, userdata, mid, rc, props):
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.on_publish = on_publish
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    assert connected.wait(10)
    t = time.perf_counter()
    for topic, data in payloads:
        c.publish(topic, data, qos=1)
    assert done.wait(600), f"{acked} of {len(payloads)} acknowledged"
    elapsed = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    return elapsed


async def run(args) -> dict:
    home = Path(tempfile.mkdtemp(prefix="atoll-gw-bench-"))
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    limits = {} if args.rate_limits else {"quota_device_rate": 0, "quota_tenant_rate": 0}
    settings = Settings(home=home, http_port=0, mqtt_port=0, services=[], **limits)
    p = Platform(settings, password_hasher=fast)
    await p.start()
    try:
        reg = p.registry
        reg.create_project("default", "Bench", project_id="bench")
        reg.create_device_type("bench", "press", [{"name": "force", "min": 0, "max": 100}])
        _, gw = reg.register_device("bench", device_id="gw", kind="gateway")
        _, solo = reg.register_device("bench", device_id="solo", device_type="press")
        reg.register_devices(
            "bench",
            [
                {"device_id": f"c{i}", "device_type": "press", "parent": "gw"}
                for i in range(args.children)
            ],
        )
        port = p.mqtt.port
        total = args.messages * args.children * args.readings
        out = {}
        for kind, user, secret in (("gateway", "gw", gw.secret), ("device", "solo", solo.secret)):
            payloads = messages(kind, args.messages, args.children, args.readings)
            size = sum(len(d) for _, d in payloads) / len(payloads)
            elapsed = await asyncio.to_thread(send, port, user, secret, payloads, args.inflight)
            devices = ["solo"] if kind == "device" else [f"c{i}" for i in range(args.children)]
            stored = sum(
                p.store.query_raw(SeriesKey("bench", d, "force"), 0, 2**62).value.size
                for d in devices
            )
            out[kind] = {
                "messages": len(payloads),
                "bytes_per_message": round(size),
                "points": total,
                "stored": int(stored),
                "seconds": round(elapsed, 3),
                "points_per_second": round(total / elapsed),
                "messages_per_second": round(len(payloads) / elapsed, 1),
            }
        return out
    finally:
        await p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--children", type=int, default=50)
    ap.add_argument("--readings", type=int, default=20)
    ap.add_argument("--inflight", type=int, default=20)
    ap.add_argument(
        "--rate-limits",
        action="store_true",
        help="keep the default rate limits (1,000 points/s a device, 10,000 a tenant); "
        "off by default, to measure what the platform can take",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {
        "benchmark": "gateway_ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": host.python_version(), "os": host.platform()},
        "params": vars(args) | {"json": str(args.json) if args.json else None},
        "results": asyncio.run(run(args)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
