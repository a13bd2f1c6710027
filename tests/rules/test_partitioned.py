"""Rules on partitions, in one process (``MemoryPartitions``, memory checkpoints, SQLite): state
handed over with its position, a batch delivered again changing nothing twice, replayed messages
not acted on again, timers only for what is owned, conditional alarm transitions, and rule
changes reaching every rules process through the bus. The cluster (NATS, PostgreSQL, kill -9)
is in ``test_partitioned_nats.py``."""

from __future__ import annotations

import asyncio

import pytest

from atoll.bus.memory import MemoryBus
from atoll.bus.partitions import (
    Delivery,
    Leader,
    MemoryCheckpointStore,
    MemoryLeaseStore,
    MemoryPartitions,
    partition_of,
)
from atoll.core.errors import Conflict
from atoll.ingest.events import encode_telemetry
from atoll.rules.alarms import SYSTEM
from atoll.rules.clock import FakeClock
from atoll.rules.engine import project_key
from atoll.rules.service import RulesService

from .conftest import T0

COUNT = 8
HOT = {
    "name": "Hot",
    "project": "p",
    "target": {"devices": ["d1", "d2"]},
    "condition": {"type": "threshold", "metric": "temp", "value": 100, "clear": 90},
}


def _reading(device: str, temp: float, at_us: int = T0) -> bytes:
    return encode_telemetry("p", device, ["temp"], [0], [at_us], [temp])


def _delivery(device: str, temp: float, seq: int, *, replay: bool = False) -> Delivery:
    return Delivery(
        f"telemetry.p.{device}",
        _reading(device, temp, T0 + seq),
        partition_of(device, COUNT),
        seq,
        replay,
    )


def _service(bus, db, clock, checkpoints, **kw) -> RulesService:
    return RulesService(
        bus,
        db=db,
        clock=clock,
        tick_interval=0,
        partitions=MemoryPartitions(bus, COUNT),
        checkpoints=checkpoints,
        checkpoint_interval=0,
        **kw,
    )


async def _until(cond, what: str, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


async def test_a_new_owner_restores_the_rule_state_with_its_position(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    checkpoints = MemoryCheckpointStore()
    a = _service(bus, db, clock, checkpoints)
    await a.create_rule(HOT)
    await a.start()
    await bus.publish("telemetry.p.d1", _reading("d1", 150))
    await _until(lambda: a.stats["readings"] == 1, "the reading evaluated")
    await a.stop()  # hands every partition over: checkpointed with its position
    (alarm,) = a.alarms.list()
    p = partition_of("d1", COUNT)
    seq, _ = await checkpoints.load(f"rules.p{p}")  # type: ignore[misc]
    assert seq == 1

    b = _service(bus, db, clock, checkpoints)
    await b.start()
    try:
        assert b.stats["restored"] >= 1
        # 95 is between the clear level and the limit: the restored latch is still on.
        await bus.publish("telemetry.p.d1", _reading("d1", 95, T0 + 1))
        await _until(lambda: b.stats["readings"] == 1, "the reading evaluated")
        assert b.alarms.get(alarm.id).status == "active"
        await bus.publish("telemetry.p.d1", _reading("d1", 80, T0 + 2))
        await _until(lambda: b.stats["readings"] == 2, "the reading evaluated")
        assert b.alarms.get(alarm.id).status == "cleared"
    finally:
        await b.stop()
    assert [x.id for x in b.alarms.list()] == [alarm.id]


async def test_without_the_checkpoint_the_same_reading_would_clear_it(tmp_path):
    """The counterpart of the test above: a fresh engine takes 95 for 'not hot'."""
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    await a.create_rule(HOT)
    await a.start()
    await a.partitioned.deliver(partition_of("d1", COUNT), [_delivery("d1", 150, 1)])  # type: ignore[union-attr]
    a.partitioned.svc.engine.restart(lambda key: True)  # type: ignore[union-attr]
    await a.partitioned.deliver(partition_of("d1", COUNT), [_delivery("d1", 95, 2)])  # type: ignore[union-attr]
    await a.stop()
    (alarm,) = a.alarms.list()
    assert alarm.status == "cleared"


async def test_a_batch_delivered_again_raises_and_clears_nothing_twice(tmp_path):
    """An owner evaluated a batch (raise, clear, raise) and died before acknowledging it: the
    next owner, from an older checkpoint, evaluates it again as live messages."""
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    await a.create_rule(HOT)
    await a.start()
    p = partition_of("d1", COUNT)
    batch = [_delivery("d1", 150, 10), _delivery("d1", 50, 11), _delivery("d1", 160, 12)]
    try:
        await a.partitioned.deliver(p, batch)  # type: ignore[union-attr]
        first = [(x.id, x.status, x.raised_seq) for x in a.alarms.list()]
        assert sorted(s for _, s, _ in first) == ["active", "cleared"]
        a.engine.restart(lambda key: True)  # the next owner's fresh state
        await a.partitioned.deliver(p, batch)  # type: ignore[union-attr]
        assert [(x.id, x.status, x.raised_seq) for x in a.alarms.list()] == first
        # And the state caught up: the alarm raised at 12 clears on the next cool reading.
        await a.partitioned.deliver(p, [_delivery("d1", 50, 13)])  # type: ignore[union-attr]
        assert {x.status for x in a.alarms.list()} == {"cleared"}
        assert a.stats["raised"] == 2 and a.stats["cleared"] == 2
    finally:
        await a.stop()


async def test_replayed_messages_feed_the_state_but_change_no_alarm(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    await a.create_rule(HOT)
    await a.start()
    p = partition_of("d1", COUNT)
    try:
        await a.partitioned.deliver(p, [_delivery("d1", 150, 1, replay=True)])  # type: ignore[union-attr]
        assert a.alarms.list() == [] and a.stats["replayed"] == 1
        assert a.engine.state("hot", "d1") is True  # the previous owner raised it
    finally:
        await a.stop()


async def test_timers_run_only_for_the_partitions_owned_here(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    silent = {
        "name": "Silent",
        "project": "p",
        "target": {"devices": ["d1", "d2"]},
        "condition": {"type": "no_data", "timeout": 60},
    }
    await a.create_rule(silent)
    await a.start()
    part = a.partitioned
    assert part is not None and partition_of("d1", COUNT) != partition_of("d2", COUNT)
    try:
        part.applied.pop(partition_of("d2", COUNT))  # d2's partition is another process's
        clock.advance(61)
        await a.tick()
        assert [x.device for x in a.alarms.list()] == ["d1"]
    finally:
        await a.stop()


async def test_escalation_and_repeat_go_only_to_the_owner_and_never_after_the_clear(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    rule = {**HOT, "escalation": [{"after": 60, "severity": "critical"}]}
    await a.create_rule(rule)
    await a.start()
    try:
        p = partition_of("d1", COUNT)
        await a.partitioned.deliver(p, [_delivery("d1", 150, 1)])  # type: ignore[union-attr]
        (alarm,) = a.alarms.list()
        a.partitioned.applied.pop(p)  # type: ignore[union-attr]  # not ours any more
        clock.advance(61)
        await a.tick()
        assert a.alarms.get(alarm.id).escalation_level == 0
        # The database decides: one escalation from level 0, whoever asks twice.
        assert a.alarms.escalate(alarm.id, 1, "critical", clock.now_us(), "late") is not None
        assert a.alarms.escalate(alarm.id, 1, "critical", clock.now_us(), "late") is None
        # A repeat claims "still active, last notified at X": never after the clear.
        last = alarm.raised_at
        a.alarms.clear(alarm.id, SYSTEM, clock.now_us(), "condition ended")
        assert a.alarms.notified(alarm.id, clock.now_us(), last=last) is None
        with pytest.raises(Conflict):
            a.alarms.clear(alarm.id, SYSTEM, clock.now_us(), "again")
        assert [e.kind for e in a.alarms.history(alarm.id)] == ["raised", "escalated", "cleared"]
    finally:
        await a.stop()


async def test_a_cross_device_rule_is_evaluated_under_its_project_key(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    both = {
        "name": "Both hot",
        "project": "p",
        "target": {"device": "d1"},
        "condition": {
            "type": "all",
            "conditions": [
                {"type": "threshold", "metric": "temp", "value": 100},
                {"type": "threshold", "device": "d2", "metric": "temp", "value": 100},
            ],
        },
    }
    await a.create_rule(both)
    assert a.engine.key("both-hot", "d1") == project_key("p")
    await a.start()
    try:
        await bus.publish("telemetry.p.d1", _reading("d1", 150))
        await bus.publish("telemetry.p.d2", _reading("d2", 150))
        await _until(lambda: len(a.alarms.list()) == 1, "the cross-device alarm")
        (alarm,) = a.alarms.list()
        assert alarm.device == "d1"
    finally:
        await a.stop()


async def test_rule_changes_reach_every_rules_process_through_the_bus(tmp_path):
    db, clock, bus = f"sqlite:///{tmp_path}/r.db", FakeClock(T0), MemoryBus()
    a = _service(bus, db, clock, None)
    b = _service(bus, db, clock, None)
    api = RulesService(bus, db=db, clock=clock, tick_interval=0, evaluate=False)
    for s in (a, b, api):
        await s.start()
    try:
        await api.create_rule(HOT)  # through a node that evaluates nothing
        await _until(lambda: "hot" in a.engine.rules and "hot" in b.engine.rules, "reloaded")
        clock.advance(1)
        await api.put_rule({**HOT, "condition": {**HOT["condition"], "value": 120}})
        await _until(
            lambda: all(s.engine.rules["hot"].condition.value == 120 for s in (a, b)),  # type: ignore[union-attr]
            "reloaded after the change",
        )
        await api.delete_rule("hot")
        await _until(lambda: "hot" not in a.engine.rules and "hot" not in b.engine.rules, "gone")
        assert api.stats["readings"] == 0 and api.partitioned is None
    finally:
        for s in (a, b, api):
            await s.stop()


async def test_the_leader_lease_has_one_holder_and_passes_on_when_released():
    leases = MemoryLeaseStore(ttl=5.0)
    one, two = Leader(leases, "leader", "one"), Leader(leases, "leader", "two")
    assert await one.leading() and not await two.leading()
    assert await one.leading()  # renewed
    await one.release()
    assert await two.leading() and not await one.leading()
