"""Why the simulator drives paho clients from one asyncio loop: the same devices and messages
through amqtt's asyncio client and through ``atoll.sim.mqtt.MqttFleet`` (paho), one run.

Both connect N devices with their own credentials to a local Mosquitto and publish M QoS 1
messages as fast as acknowledged. CPU is this process's user+system time per phase.

    .venv/bin/python bench/sim_mqtt_clients.py --devices 500 --messages 10000 \
        --json bench/results/sim_mqtt_clients.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from amqtt.client import MQTTClient

from atoll.sim import Fleet, SimDevice
from atoll.sim.mosquitto import Mosquitto
from atoll.sim.mqtt import MqttFleet


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _amqtt(broker: Mosquitto, devices: list[SimDevice], messages: int) -> dict:
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    t, c0 = time.perf_counter(), _cpu()
    clients = []
    for d in devices:
        c = MQTTClient(client_id=d.device_id, config={"auto_reconnect": False, "keep_alive": 60})
        await c.connect(f"mqtt://{d.device_id}:{d.secret}@127.0.0.1:{broker.port}/")
        clients.append(c)
    connect = {"s": round(time.perf_counter() - t, 2), "cpu_s": round(_cpu() - c0, 2)}
    payload = json.dumps(
        {
            "ts": 1_700_000_000_000,
            "values": {"temperature": -20.1, "door": False, "compressor_power": 310.2},
        }
    ).encode()
    per = messages // len(devices)

    async def publish(d: SimDevice, c: MQTTClient) -> None:
        for _ in range(per):
            await c.publish(f"atoll/v1/devices/{d.device_id}/telemetry", payload, qos=1)

    t, c0 = time.perf_counter(), _cpu()
    await asyncio.gather(*(publish(d, c) for d, c in zip(devices, clients, strict=True)))
    wall, cpu = time.perf_counter() - t, _cpu() - c0
    for c in clients:
        await c.disconnect()
    return {
        "connect": connect,
        "messages": per * len(devices),
        "msgs_per_s": round(per * len(devices) / wall, 1),
        "cpu_us_per_msg": round(cpu / (per * len(devices)) * 1e6, 1),
    }


async def _paho(broker: Mosquitto, devices: list[SimDevice], messages: int) -> dict:
    fleet = Fleet(devices, seed=1, rate=1.0)
    async with MqttFleet(fleet, broker.url) as mf:
        t, c0 = time.perf_counter(), _cpu()
        await mf.connect()
        connect = {"s": round(time.perf_counter() - t, 2), "cpu_s": round(_cpu() - c0, 2)}
        t, c0 = time.perf_counter(), _cpu()
        stats = await mf.run(duration=messages / len(devices), speed=0)
        wall, cpu = time.perf_counter() - t, _cpu() - c0
    return {
        "connect": connect,
        "messages": stats.acked,
        "msgs_per_s": round(stats.acked / wall, 1),
        "cpu_us_per_msg": round(cpu / stats.acked * 1e6, 1),
        "note": "includes generating the readings (signal models) and JSON",
    }


async def main(args: argparse.Namespace) -> dict:
    plan = Fleet.build("retail", args.devices, seed=1)
    devices = [
        SimDevice(d.device_id, d.template, d.device_type, f"secret-{i}")
        for i, d in enumerate(plan.devices)
    ]
    out = {
        "benchmark": "sim_mqtt_clients",
        "machine": "2-core python-svc",
        "command": "python bench/sim_mqtt_clients.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "devices": args.devices,
    }
    with tempfile.TemporaryDirectory(prefix="atoll-bench-clients-") as tmp:
        with Mosquitto(Path(tmp) / "a", {d.device_id: d.secret for d in devices}) as broker:
            out["amqtt"] = await _amqtt(broker, devices, args.messages)
        with Mosquitto(Path(tmp) / "p", {d.device_id: d.secret for d in devices}) as broker:
            out["paho_one_loop"] = await _paho(broker, devices, args.messages)
    out["cpu_ratio_amqtt_over_paho"] = round(
        out["amqtt"]["cpu_us_per_msg"] / out["paho_one_loop"]["cpu_us_per_msg"], 2
    )
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=500)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    result = asyncio.run(main(a))
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text + "\n")
