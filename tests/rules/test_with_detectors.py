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


async def test_an_anomaly_alarm_carries_the_explanation_of_the_reading_behind_it(tmp_path):
    """A model fitted on stored history flags a level shift; the alarm keeps what the model
    expected, what contributed and which model version judged it, and the API returns it."""
    from atoll.api.alarms import alarm_out
    from atoll.store.memory import MemoryStore

    bus, store = MemoryBus(), MemoryStore()
    key = SeriesKey("p", "d1", "t")
    t = np.arange(3400)
    values = 20 + 2 * np.sin(2 * np.pi * t / 60) + np.random.default_rng(3).normal(0, 0.05, 3400)
    values[3200:] += 6.0
    ts = T0 + t.astype(np.int64) * 1_000_000
    store.append(PointBatch.of_series(key, ts[:3000], values[:3000]))  # the stored history
    detect = DetectionService(bus, store, group=None, refit_interval=0)
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
    for lo in range(3000, 3400, 50):
        store.append(PointBatch.of_series(key, ts[lo : lo + 50], values[lo : lo + 50]))
        await bus.publish(
            "telemetry.p.d1",
            encode_telemetry(
                "p", "d1", ["t"], [0] * 50, ts[lo : lo + 50].tolist(), values[lo : lo + 50].tolist()
            ),
        )
    for _ in range(3000):
        if rules.alarms.list():
            break
        await asyncio.sleep(0.01)
    (alarm,) = rules.alarms.list()
    why = alarm.context["anomaly"]
    record = detect.models.current(key)
    assert why["model"] == {"id": record.id, "version": record.version} and why["is_anomaly"]
    assert why["metric"] == "t" and why["value"] > why["expected"]["t"]["hi"]
    assert abs(sum(c["share"] for c in why["contributors"]) - 1) < 1e-3
    assert why["ts"] >= ts[3200]
    out = alarm_out(rules.alarms.get(alarm.id))  # what GET /alarms/{id} answers
    assert out["context"]["anomaly"]["ts"].endswith("Z")
    await rules.stop()
    await detect.stop()
    await bus.close()
