"""End to end on the memory bus with the real clock and timer loop: ingest → bus → rules → alarm."""

from __future__ import annotations

import asyncio

import orjson

from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry.models import DeviceIdentity
from atoll.rules.directory import StaticDirectory
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore


async def test_reading_published_to_alarm_raised_and_cleared(tmp_path):
    bus, store = MemoryBus(), MemoryStore()
    pipeline = IngestPipeline(store, bus, None, flush_interval=0.05)
    svc = RulesService(
        bus,
        db=f"sqlite:///{tmp_path}/rules.db",
        store=store,
        directory=StaticDirectory({"p": {"m1": "motor"}}),
        tick_interval=0.05,
    )
    await pipeline.start()
    await svc.start()
    await svc.load_yaml("""
project: p
rules:
  - name: Vibration
    target: {device_type: motor}
    condition: {type: threshold, metric: vib, value: 7, clear: 5}
  - name: Silent
    target: {device: m1}
    condition: {type: no_data, timeout: 1.5}
""")
    events: asyncio.Queue = asyncio.Queue()

    async def on_alarm(msg):
        await events.put(orjson.loads(msg.data))

    await bus.subscribe("alarm.p", on_alarm)
    me = DeviceIdentity("m1", "p", "t")

    async def next_event(rule="vibration"):
        # Only the events of one rule, so timing under load cannot reorder what we check.
        while True:
            e = await asyncio.wait_for(events.get(), 15.0)
            if e["alarm"]["rule_id"] == rule:
                return e

    # How fast is bench/alarm_latency.py's business; here only that it happens, in order.
    await pipeline.submit_telemetry(me, orjson.dumps({"values": {"vib": 9.5}}), "test")
    e = await next_event()
    assert (e["event"], e["alarm"]["rule_id"], e["alarm"]["device"]) == (
        "raised",
        "vibration",
        "m1",
    )
    assert store.latest("p", "m1")  # stored before it was evaluated
    await pipeline.submit_telemetry(me, orjson.dumps({"values": {"vib": 4}}), "test")
    e = await next_event()
    assert (e["event"], e["alarm"]["status"]) == ("cleared", "cleared")
    # Then silence: the timer loop (not a reading) raises the heartbeat alarm.
    e = await next_event("silent")
    assert (e["event"], e["alarm"]["rule_id"]) == ("raised", "silent")
    assert "no data from m1 for 1.5s" in e["alarm"]["detail"]
    await svc.stop()
    await pipeline.stop()
    await bus.close()
