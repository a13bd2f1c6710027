"""External MQTT ingest (Mosquitto + Atoll's shared-subscription workers): what a message
costs the Atoll node, and whether it is acknowledged only once on the bus.

A Mosquitto started here, one Atoll node (2 workers, the default rate limits, no services),
a DuckDB store, and the in-process bus or a ``nats-server -js`` started here. ``--devices``
``mosquitto_pub -l -q 1 -M 1000`` processes, one per device, each send ``--messages``
single-reading messages right after the node started (no identity cached: the burst a restart
sees). Reported per bus: persisted messages/s, the node's CPU per message (this process:
event loop, paho threads, writer thread), registry lookups per message (``device_identity``
calls), event-loop wake-ups from paho's threads per message (``None`` where the code has no
counter), and for NATS the telemetry events in the stream.

    .venv/bin/python bench/ingest_external.py --json bench/results/ingest_external.json
    # the code before a change, same script:
    PYTHONPATH=/path/to/old/src .venv/bin/python bench/ingest_external.py --json before.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import atoll
from atoll.bench.ingest import _lines_file, _until, _wait_for_login


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(tmp: Path, bus: str, devices: int, messages: int) -> dict[str, Any]:
    from argon2 import PasswordHasher

    from atoll.bench.broker import external_broker
    from atoll.config import Settings
    from atoll.platform import Platform
    from atoll.testing.nats_server import NatsServer

    mosquitto_pub = shutil.which("mosquitto_pub")
    assert mosquitto_pub, "apt-get install mosquitto-clients"
    broker_cm = external_broker(tmp / f"mosquitto-{bus}")
    broker = broker_cm.__enter__()
    port = broker.port
    nats = NatsServer(tmp / f"nats-{bus}").start() if bus == "nats" else None
    home = tmp / f"home-{bus}"
    try:
        settings = Settings(
            home=home,
            http_port=0,
            mqtt_mode="external",
            services=[],
            bus_url=f"{nats.url}?stream=BENCH" if nats else "memory://",
            mqtt_url=broker.mqtt_url,
            mqtt_workers=2,
            **broker.settings(),
        )
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        p = Platform(settings, password_hasher=hasher)
        await p.start()
        p.registry.create_project("default", "Bench", project_id="bench")
        creds = []
        for i in range(devices):
            _, c = p.registry.register_device("bench", device_id=f"x{i}")
            creds.append((c.device, c.secret))
        for dev, sec in creds:  # mosquitto reloads its password file on SIGHUP
            await asyncio.to_thread(_wait_for_login, port, dev, sec)
        await p.stop()
        # A fresh start: nothing cached, the devices' messages arrive at once.
        p = Platform(settings, password_hasher=hasher)
        await p.start()
        lookups = 0
        look_up = p.registry.device_identity

        def counting(device_id: str) -> Any:
            nonlocal lookups
            lookups += 1
            return look_up(device_id)

        p.registry.device_identity = counting  # type: ignore[method-assign]
        try:
            assert p.pipeline is not None
            stats = p.pipeline.stats
            lines = [_lines_file(tmp, messages, 30_000_000 + i * messages) for i in range(devices)]
            total = devices * messages
            c0, t0 = _cpu(), time.perf_counter()
            procs = [
                subprocess.Popen(
                    [
                        *(mosquitto_pub, "-p", str(port), "-i", dev, "-u", dev, "-P", sec),
                        *("-q", "1", "-M", "1000", "-t", f"atoll/v1/devices/{dev}/telemetry"),
                        "-l",
                    ],
                    stdin=open(f, "rb"),  # noqa: SIM115
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for (dev, sec), f in zip(creds, lines, strict=True)
            ]
            t1 = await _until(lambda: stats.messages >= total, timeout=600)
            cpu = _cpu() - c0
            for proc in procs:
                await asyncio.to_thread(proc.wait, 60)
            wakeups = getattr(p.mqtt, "wakeups", None)
            received = sum(p.mqtt.received.values())
        finally:
            await p.stop()
        events = None
        if nats is not None:
            import nats as nats_py

            nc = await nats_py.connect(nats.url)
            info = await nc.jetstream().stream_info("BENCH")
            events = info.state.messages
            await nc.close()
        return {
            "bus": bus,
            "devices": devices,
            "messages": total,
            "received": received,
            "seconds": round(t1 - t0, 3),
            "messages_per_second": round(total / (t1 - t0)),
            "cpu_us_per_message": round(cpu / total * 1e6, 1),
            "registry_lookups": lookups,
            "registry_lookups_per_message": round(lookups / total, 4),
            "wakeups": wakeups,
            "wakeups_per_message": None if wakeups is None else round(wakeups / received, 4),
            "bus_events": events,
            "commits": stats.commits,
        }
    finally:
        if nats is not None:
            nats.stop()
        broker_cm.__exit__(None, None, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--messages", type=int, default=2000, help="per device")
    ap.add_argument("--bus", choices=["memory", "nats", "both"], default="both")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    buses = ["memory", "nats"] if a.bus == "both" else [a.bus]
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": str(Path(atoll.__file__).parent),
        "load_1min": round(__import__("os").getloadavg()[0], 2),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for bus in buses:
            r = asyncio.run(run(Path(tmp), bus, a.devices, a.messages))
            print(json.dumps(r), flush=True)
            out["runs"].append(r)
    out["load_1min_end"] = round(__import__("os").getloadavg()[0], 2)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
