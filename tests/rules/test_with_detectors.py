"""Rules on the real detection service's output: telemetry → detector → anomaly.* → alarm."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from atoll.bus.memory import MemoryBus
from atoll.core import topics
from atoll.core.events import AnomalyEvent, decode_anomalies
from atoll.core.points import PointBatch, SeriesKey
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


async def test_the_rules_read_the_events_the_detection_service_publishes():
    """One ``AnomalyEvent`` from producer to consumers: what ``process`` returns is what the
    bus carries, what any subscriber decodes, and what the rules judge."""
    bus = MemoryBus()
    detect = DetectionService(bus, None, group=None, default="ewma")
    rules = RulesService(bus, tick_interval=0)
    await rules.start()
    await rules.create_rule(
        {
            "name": "Scored high",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "anomaly", "metric": "t", "value": 0.9999},
        }
    )
    carried: list[tuple[str, AnomalyEvent]] = []

    async def collect(msg) -> None:
        carried.extend((msg.subject, e) for e in decode_anomalies(msg.data))

    await bus.subscribe(topics.ALL_ANOMALIES, collect)
    rng = np.random.default_rng(7)
    values = np.r_[20 + rng.normal(0, 0.2, 300), 45.0]
    ts = T0 + np.arange(301) * 1_000_000
    published = await detect.process(PointBatch.of_series(SeriesKey("p", "d1", "t"), ts, values))
    for _ in range(1500):
        if rules.stats["anomalies"] >= len(published) and len(carried) >= len(published):
            break
        await asyncio.sleep(0.01)

    assert len(published) == 301 and all(type(e) is AnomalyEvent for e in published)
    assert [e for _, e in carried] == published
    assert {s for s, _ in carried} == {published[0].subject} == {topics.bus_anomaly("p", "d1")}
    assert [e.ts for e in published] == ts.tolist()  # µs in, µs out
    assert rules.stats["anomalies"] == len(published) and rules.stats["bad_messages"] == 0
    spike = published[-1]
    assert [e for e in published if e.score >= 0.9999] == [spike]
    (alarm,) = rules.alarms.list()
    assert (alarm.device, alarm.metric, alarm.value) == ("d1", "t", pytest.approx(spike.score))
    await rules.stop()
    await detect.stop()
    await bus.close()
