"""Rules on the real detection service's output: telemetry → detector → anomaly.* → alarm."""

from __future__ import annotations

import asyncio

import numpy as np

from atoll.bus.memory import MemoryBus
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry
from atoll.rules.service import RulesService

T0 = 1_800_000_000_000_000


async def test_an_anomaly_flagged_by_a_detector_raises_an_alarm():
    bus = MemoryBus()
    detect = DetectionService(bus, None, group=None, default="ewma")
    rules = RulesService(bus, tick_interval=0)
    await detect.start()
    await rules.start()
    await rules.create_rule(
        {
            "name": "Odd temperature",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "anomaly", "metric": "t"},
        }
    )
    rng = np.random.default_rng(7)
    normal = (20 + rng.normal(0, 0.2, 300)).tolist()
    ts = [T0 + i * 1_000_000 for i in range(301)]
    await bus.publish(
        "telemetry.p.d1", encode_telemetry("p", "d1", ["t"], [0] * 300, ts[:300], normal)
    )
    await bus.publish("telemetry.p.d1", encode_telemetry("p", "d1", ["t"], [0], ts[300:], [45.0]))
    for _ in range(1500):
        if rules.alarms.list():
            break
        await asyncio.sleep(0.01)
    (alarm,) = rules.alarms.list()
    assert (alarm.device, alarm.metric, alarm.status) == ("d1", "t", "active")
    assert "flagged by its detector" in alarm.detail
    assert rules.stats["anomalies"] >= 300  # an event per scored reading, low scores included
    await rules.stop()
    await detect.stop()
    await bus.close()
