"""Benchmark: N simulated devices from ONE process against a local Mosquitto.

Starts its own Mosquitto on an ephemeral port with a password file holding every device's
secret and the per-device ACL, then measures:

1. connect: time for all devices to connect with their own credentials (CONNACK received);
2. live: readings at ``--rate`` per device per second, paced by the wall clock, for
   ``--duration`` seconds: achieved acknowledged msgs/s, points/s, how far the sender fell behind;
3. flood: the same fleet sending as fast as the broker acknowledges (virtual time) for
   ``--flood`` virtual seconds: the ceiling of one process.

CPU is this process's user+system time over the phase's wall time (1.0 = one core busy).

    .venv/bin/python bench/sim_devices.py --devices 10000 --rate 1 --duration 20 \
        --json bench/results/sim_devices.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from atoll.sim import Fleet, SimDevice
from atoll.sim.mosquitto import Mosquitto
from atoll.sim.mqtt import MqttFleet

TEMPLATES = ["manufacturing", "retail", "healthcare", "finance", "construction"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _phase(mf: MqttFleet, broker_pid: int, **run) -> dict:
    before = (mf.stats.published, mf.stats.acked, mf.stats.points)
    c0, b0, w0 = _cpu(), _proc_cpu(broker_pid), time.perf_counter()
    stats = await mf.run(**run)
    wall = time.perf_counter() - w0
    published = stats.published - before[0]
    acked = stats.acked - before[1]
    points = stats.points - before[2]
    return {
        "wall_s": round(wall, 2),
        "published": published,
        "acked": acked,
        "msgs_per_s": round(acked / wall, 1),
        "points_per_s": round(points / wall, 1),
        "behind_s_at_end": round(stats.behind_s, 2),
        "sim_cpu_cores": round((_cpu() - c0) / wall, 2),
        "broker_cpu_cores": round((_proc_cpu(broker_pid) - b0) / wall, 2),
    }


async def main(args: argparse.Namespace) -> dict:
    t = time.perf_counter()
    plan = Fleet.build(TEMPLATES, args.devices, seed=args.seed)
    devices = [
        SimDevice(d.device_id, d.template, d.device_type, secrets.token_urlsafe(24))
        for d in plan.devices
    ]
    fleet = Fleet(devices, seed=args.seed, rate=args.rate)
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="atoll-bench-sim-") as tmp:
        t = time.perf_counter()
        broker = Mosquitto(tmp, {d.device_id: d.secret for d in devices}).start()
        broker_s = time.perf_counter() - t
        try:
            async with MqttFleet(fleet, broker.url) as mf:
                c0, w0 = _cpu(), time.perf_counter()
                stats = await mf.connect(timeout=300)
                connect = {
                    "connected": stats.connected,
                    "refused": stats.refused,
                    "connect_s": round(stats.connect_s, 2),
                    "connects_per_s": round(stats.connected / stats.connect_s, 1),
                    "sim_cpu_cores": round((_cpu() - c0) / (time.perf_counter() - w0), 2),
                }
                print(f"connect: {connect}", file=sys.stderr)
                live = await _phase(mf, broker.proc.pid, duration=args.duration, speed=1.0)
                print(f"live: {live}", file=sys.stderr)
                flood = await _phase(mf, broker.proc.pid, duration=args.flood, speed=0)
                print(f"flood: {flood}", file=sys.stderr)
                lost = mf.stats.lost
        finally:
            broker.stop()
    return {
        "benchmark": "sim_devices",
        "command": "python bench/sim_devices.py " + " ".join(sys.argv[1:]),
        "machine": "2-core python-svc",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "devices": args.devices,
        "rate_per_device": args.rate,
        "templates": TEMPLATES,
        "fleet_build_s": round(build_s, 2),
        "broker_setup_s": round(broker_s, 2),
        "connect": connect,
        "live": live,
        "flood": flood,
        "connections_lost": lost,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=1.0, help="readings per second per device")
    p.add_argument("--duration", type=float, default=20.0, help="live phase, seconds")
    p.add_argument("--flood", type=float, default=10.0, help="flood phase, virtual seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the result here")
    a = p.parse_args()
    result = asyncio.run(main(a))
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text + "\n")
