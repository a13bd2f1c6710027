"""The detection service on partitions, with the in-process adapters: reordered readings are
judged in time order, and a partition's state and position move to its next owner."""

from __future__ import annotations

import asyncio

import msgspec

from atoll.bus.memory import MemoryBus
from atoll.bus.partitions import MemoryCheckpointStore, MemoryPartitions, partition_of
from atoll.core.events import decode_anomalies
from atoll.core.points import SeriesKey
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry

T0 = 1_764_000_000_000_000
SEC = 1_000_000


class _Events:
    def __init__(self):
        self.got = []

    async def __call__(self, msg):
        self.got += decode_anomalies(msg.data)

    async def wait_for(self, n, steps=3000):
        for _ in range(steps):
            if len(self.got) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.got)} of {n} readings scored")


async def _publish(bus, device, seconds, values=None):
    ts = [T0 + int(s * SEC) for s in seconds]
    vals = values if values is not None else [20.0 + 0.01 * (i % 7) for i in range(len(ts))]
    await bus.publish(
        f"telemetry.p.{device}",
        encode_telemetry("p", device, ["temp"], [0] * len(ts), ts, vals),
    )


async def test_reordered_readings_are_all_scored_in_time_order():
    bus = MemoryBus()
    events = _Events()
    await bus.subscribe("anomaly.>", events)
    svc = DetectionService(
        bus, None, default="ewma", partitions=MemoryPartitions(bus, 8), lateness=0.3
    )
    await svc.start()
    # Each message's readings arrive before the readings of the one before: all within 0.3 s.
    order = [s for block in range(20) for s in (block * 0.1 + 0.05, block * 0.1)]
    for s in order:
        await _publish(bus, "d1", [s])
    await events.wait_for(len(order))
    await svc.stop()
    await bus.close()
    ts = [e.ts for e in events.got]
    assert ts == sorted(ts) and len(set(ts)) == len(order), "every reading, once, in order"
    assert svc.stats["skipped_late"] == 0


async def test_stop_judges_what_the_reorder_buffer_holds_without_checkpoints():
    bus = MemoryBus()
    events = _Events()
    await bus.subscribe("anomaly.>", events)
    svc = DetectionService(
        bus, None, default="ewma", partitions=MemoryPartitions(bus, 8), lateness=60.0
    )
    await svc.start()
    await _publish(bus, "d1", [1, 2, 3])
    for _ in range(100):
        if svc.stats["messages"]:
            break
        await asyncio.sleep(0.01)
    assert events.got == []  # held: nothing 60 s newer came, nothing waited 60 s
    await svc.stop()
    await asyncio.sleep(0.05)
    await bus.close()
    assert [e.ts for e in events.got] == [T0 + s * SEC for s in (1, 2, 3)]


async def test_next_owner_restores_state_and_position():
    bus = MemoryBus()
    events = _Events()
    await bus.subscribe("anomaly.>", events)
    ckpt = MemoryCheckpointStore()
    first = DetectionService(
        bus, None, default="ewma", partitions=MemoryPartitions(bus, 8), checkpoints=ckpt
    )
    await first.start()
    await _publish(bus, "d1", list(range(100)))
    await _publish(bus, "d2", list(range(100)))
    await events.wait_for(200)
    learned = first.series[SeriesKey("p", "d1", "temp")].detector.state()
    await first.stop()  # hands every partition over: checkpoints
    assert first.series == {}, "a revoked partition is forgotten"
    p1 = partition_of("d1", 8)
    seq, _ = await ckpt.load(f"detect.p{p1}")
    assert seq == 1, "the checkpoint carries the position applied with the state"

    second = DetectionService(
        bus, None, default="ewma", partitions=MemoryPartitions(bus, 8), checkpoints=ckpt
    )
    await second.start()
    t = second.series[SeriesKey("p", "d1", "temp")]
    assert t.last_ts == T0 + 99 * SEC
    assert msgspec.msgpack.encode(t.detector.state()) == msgspec.msgpack.encode(learned)
    # A repeat of what the first owner judged is skipped; what follows is judged.
    await _publish(bus, "d1", [50, 100, 101])
    await events.wait_for(202)
    await asyncio.sleep(0.1)
    await second.stop()
    await bus.close()
    assert sorted(e.ts for e in events.got[200:]) == [T0 + 100 * SEC, T0 + 101 * SEC]
