"""Alarms end to end on the memory bus: lifecycle, one per (rule, device), escalation, repeats."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from atoll.core.errors import Conflict, InvalidInput
from atoll.core.events import AnomalyEvent, encode_anomalies
from atoll.rules import db
from atoll.rules.conditions import US
from atoll.rules.service import RulesService

from .conftest import SENT, T0

HOT = {
    "name": "Hot",
    "project": "p",
    "target": {"devices": ["d1", "d2"]},
    "condition": {"type": "threshold", "metric": "t", "value": 30, "clear": 25},
    "notify": {"channels": ["ops"], "on": ["raised", "acknowledged", "cleared", "escalated"]},
}


async def test_raise_once_per_rule_and_device_then_auto_clear(harness):
    svc = harness.svc
    await svc.create_rule(HOT)
    await harness.send("d1", 0, t=31)
    await harness.send("d1", 1, t=35)  # still hot: same alarm
    await harness.send("d2", 2, t=40)  # other device: its own alarm
    open_ = svc.alarms.list(status=["active"])
    assert sorted(a.device for a in open_) == ["d1", "d2"]
    a1 = next(a for a in open_ if a.device == "d1")
    assert a1.value == 31 and "d1.t = 31 > 30" in a1.detail and a1.raised_at == T0
    assert a1.metric == "t"
    await harness.send("d1", 3, t=27)  # inside the hysteresis band: stays
    assert svc.alarms.get(a1.id).status == "active"
    await harness.send("d1", 4, t=24)
    a1 = svc.alarms.get(a1.id)
    assert (a1.status, a1.acknowledged, a1.cleared_by) == ("cleared", False, "system")
    assert [e.kind for e in svc.alarms.history(a1.id)] == ["raised", "cleared"]
    # A new excursion is a new alarm.
    await harness.send("d1", 5, t=50)
    assert len(svc.alarms.list(device="d1")) == 2
    assert [(e["event"], e["alarm"]["device"]) for e in harness.events] == [
        ("raised", "d1"),
        ("raised", "d2"),
        ("cleared", "d1"),
        ("raised", "d1"),
    ]
    assert [n.event for n in harness.sent] == ["raised", "raised", "cleared", "raised"]
    assert all(d["ok"] for d in svc.notifier.deliveries("p"))


async def test_ack_comment_clear_and_history(harness):
    svc = harness.svc
    await svc.create_rule(HOT)
    await harness.send("d1", 0, t=31)
    (alarm,) = svc.alarms.list()
    harness.clock.set(T0 + 60 * US)
    acked = await svc.acknowledge(alarm.id, "alice", comment="on my way")
    assert (acked.status, acked.acknowledged, acked.acknowledged_by) == (
        "acknowledged",
        True,
        "alice",
    )
    with pytest.raises(Conflict):
        await svc.acknowledge(alarm.id, "bob")
    await svc.comment(alarm.id, "bob", "valve replaced")
    with pytest.raises(InvalidInput):
        await svc.comment(alarm.id, "bob", "   ")
    harness.clock.set(T0 + 120 * US)
    cleared = await svc.clear(alarm.id, "bob")
    assert (cleared.status, cleared.acknowledged, cleared.cleared_by) == ("cleared", True, "bob")
    with pytest.raises(Conflict):
        await svc.clear(alarm.id, "bob")
    hist = [(e.kind, e.actor, e.ts) for e in svc.alarms.history(alarm.id)]
    assert hist == [
        ("raised", "system", T0),
        ("acknowledged", "alice", T0 + 60 * US),
        ("commented", "alice", T0 + 60 * US),
        ("commented", "bob", T0 + 60 * US),
        ("cleared", "bob", T0 + 120 * US),
    ]
    assert [c.text for c in svc.alarms.comments(alarm.id)] == ["on my way", "valve replaced"]
    # Cleared by hand while still hot: no new alarm until the condition ends and comes back.
    await harness.send("d1", 200, t=40)
    assert len(svc.alarms.list()) == 1
    await harness.send("d1", 201, t=10)
    await harness.send("d1", 202, t=40)
    assert len(svc.alarms.list()) == 2
    assert "(by alice)" in next(n.text for n in harness.sent if n.event == "acknowledged")


async def test_cleared_unacknowledged_can_be_acknowledged_later(harness):
    svc = harness.svc
    await svc.create_rule(HOT)
    await harness.send("d1", 0, t=31)
    await harness.send("d1", 1, t=1)
    (alarm,) = svc.alarms.list(status=["cleared"])
    assert not alarm.acknowledged
    alarm = await svc.acknowledge(alarm.id, "carol")
    assert (alarm.status, alarm.acknowledged) == ("cleared", True)


async def test_escalation_after_timeout_unless_acknowledged(harness):
    svc = harness.svc
    rule = {
        **HOT,
        "severity": "minor",
        "escalation": [
            {"after": "10m", "severity": "major"},
            {"after": "30m", "severity": "critical", "channels": ["boss"]},
        ],
    }
    await svc.create_rule(rule)
    await harness.send("d1", 0, t=31)
    await harness.send("d2", 0, t=31)
    d2 = svc.alarms.open_for("hot", "d2")
    await svc.acknowledge(d2.id, "alice")
    await harness.tick(599)
    assert svc.alarms.open_for("hot", "d1").severity == "minor"
    await harness.tick(600)
    a = svc.alarms.open_for("hot", "d1")
    assert (a.severity, a.escalation_level) == ("major", 1)
    await harness.tick(1200)
    assert svc.alarms.open_for("hot", "d1").escalation_level == 1  # nothing new due
    assert SENT[harness.box + "#boss"] == []
    await harness.tick(1800)
    a = svc.alarms.open_for("hot", "d1")
    assert (a.severity, a.escalation_level) == ("critical", 2)
    assert [n.event for n in SENT[harness.box + "#boss"]] == ["escalated"]
    assert svc.alarms.open_for("hot", "d2").severity == "minor"  # acknowledged: never escalates
    kinds = [(e.kind, e.severity) for e in svc.alarms.history(a.id)]
    assert kinds == [("raised", "minor"), ("escalated", "major"), ("escalated", "critical")]
    assert [e["alarm"]["severity"] for e in harness.events if e["event"] == "escalated"] == [
        "major",
        "critical",
    ]


async def test_escalation_after_downtime_applies_every_missed_step(harness):
    svc = harness.svc
    await svc.create_rule(
        {
            **HOT,
            "escalation": [
                {"after": 60, "severity": "major"},
                {"after": 120, "severity": "critical"},
            ],
        }
    )
    await harness.send("d1", 0, t=31)
    await harness.tick(3600)
    a = svc.alarms.open_for("hot", "d1")
    assert (a.severity, a.escalation_level) == ("critical", 2)


async def test_repeated_notifications_while_active_stop_on_ack(harness):
    svc = harness.svc
    await svc.create_rule({**HOT, "notify": {"channels": ["ops"], "repeat_every": "5m"}})
    await harness.send("d1", 0, t=31)
    for s in (100, 299, 300, 400, 599, 600, 900):
        await harness.tick(s)
    repeats = [n for n in harness.sent if n.event == "repeat"]
    assert len(repeats) == 3  # at 300, 600, 900
    a = svc.alarms.open_for("hot", "d1")
    assert a.notifications == 4 and a.last_notified_at == T0 + 900 * US
    await svc.acknowledge(a.id, "alice")
    await harness.tick(1500)
    assert len([n for n in harness.sent if n.event == "repeat"]) == 3


async def test_no_data_alarm_raised_by_the_timer(harness):
    svc = harness.svc
    await svc.create_rule(
        {
            "name": "Offline",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "no_data", "timeout": "2m"},
        }
    )
    await harness.send("d1", 0, t=1)
    await harness.tick(119)
    assert svc.alarms.list() == []
    await harness.tick(120)
    (a,) = svc.alarms.list()
    assert a.status == "active" and "no data from d1 for 2m" in a.detail and a.metric is None
    await harness.send("d1", 130, t=1)
    assert svc.alarms.get(a.id).status == "cleared"


async def test_anomaly_events_from_the_bus(harness):
    svc = harness.svc
    await svc.create_rule(
        {
            "name": "Odd",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "anomaly", "metric": "t", "value": 0.9},
        }
    )
    event = AnomalyEvent("p", "d1", "t", T0, 0.97)
    await harness.bus.publish(event.subject, encode_anomalies([event]))
    await harness.bus.publish("anomaly.p.d1", b"not json")
    for _ in range(200):
        if svc.stats["anomalies"] and svc.stats["bad_messages"]:
            break
        await asyncio.sleep(0.005)
    (a,) = svc.alarms.list()
    assert a.value == pytest.approx(0.97) and svc.stats["bad_messages"] == 1


async def test_rule_changes_and_deletes_close_orphaned_alarms(harness):
    svc = harness.svc
    await svc.create_rule(HOT)
    await harness.send("d2", 0, t=31)
    await svc.put_rule({**HOT, "id": "hot", "target": {"device": "d1"}})
    assert svc.alarms.list(device="d2")[0].cleared_by == "system"
    await harness.send("d1", 1, t=31)
    await svc.delete_rule("hot")
    assert svc.alarms.list(status=["active"]) == []


async def test_rule_must_name_existing_channels(harness):
    with pytest.raises(
        InvalidInput, match=r"notify.channels\[0\]: project 'p' has no channel named 'nope'"
    ):
        await harness.svc.create_rule({**HOT, "notify": {"channels": ["nope"]}})
    await harness.svc.create_rule(HOT)
    with pytest.raises(Conflict, match="used by rules"):
        harness.svc.delete_channel("p", "ops")


async def test_restart_keeps_open_alarms_and_clears_them_on_evidence(tmp_path):
    from atoll.bus.memory import MemoryBus
    from atoll.bus.port import Message
    from atoll.ingest.events import encode_telemetry
    from atoll.rules.clock import FakeClock

    def reading(t: float) -> Message:
        return Message("telemetry.p.d1", encode_telemetry("p", "d1", ["t"], [0], [T0], [t]))

    url = f"sqlite:///{tmp_path}/rules.db"
    bus, clock = MemoryBus(), FakeClock(T0)
    svc = RulesService(bus, db=url, clock=clock, tick_interval=0)
    await svc.create_rule({**HOT, "notify": {}})
    await svc._on_telemetry(reading(31))
    (a,) = svc.alarms.list()
    # A new process on the same database: rules and the open alarm come back.
    svc2 = RulesService(bus, db=url, clock=clock, tick_interval=0)
    assert "hot" in svc2.engine.rules
    assert svc2.alarms.open_for("hot", "d1").id == a.id
    await svc2.tick()  # no evidence yet: the alarm stays
    await svc2._on_telemetry(reading(31))  # still hot: still one alarm
    assert [x.status for x in svc2.alarms.list()] == ["active"]
    await svc2._on_telemetry(reading(10))
    assert svc2.alarms.get(a.id).status == "cleared"
    await bus.close()


def test_database_allows_one_open_alarm_per_rule_and_device():
    engine = db.connect(None)
    row = dict(
        project="p",
        rule_id="r",
        rule_name="r",
        device="d",
        severity="major",
        status="active",
        acknowledged=False,
        raised_at=1,
        detail="",
    )
    with engine.begin() as c:
        c.execute(sa.insert(db.alarms).values(**row))
        c.execute(sa.insert(db.alarms).values(**{**row, "status": "cleared"}))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
        c.execute(sa.insert(db.alarms).values(**{**row, "status": "acknowledged"}))


def test_an_older_database_gains_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE TABLE rules_alarms (id INTEGER PRIMARY KEY, project TEXT NOT NULL, "
                "rule_id TEXT NOT NULL, rule_name TEXT NOT NULL, device TEXT NOT NULL, "
                "severity TEXT NOT NULL, status TEXT NOT NULL, acknowledged BOOLEAN NOT NULL, "
                "value FLOAT, detail TEXT NOT NULL, raised_at BIGINT NOT NULL, "
                "acknowledged_at BIGINT, acknowledged_by TEXT, cleared_at BIGINT, cleared_by TEXT, "
                "escalation_level INTEGER NOT NULL, last_notified_at BIGINT, "
                "notifications INTEGER NOT NULL)"
            )
        )
    engine.dispose()
    cols = {c["name"] for c in sa.inspect(db.connect(url)).get_columns("rules_alarms")}
    assert "metric" in cols


async def test_a_failed_database_write_is_retried_by_the_next_reading(harness):
    svc = harness.svc
    await svc.create_rule(HOT)
    real = svc.alarms.raise_

    def broken(*a, **kw):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    svc.alarms.raise_ = broken
    await harness.send("d1", 0, t=31)
    assert svc.stats["errors"] == 1 and svc.alarms.list() == []
    svc.alarms.raise_ = real
    await harness.send("d1", 1, t=32)
    (a,) = svc.alarms.list()
    assert a.value == 32


async def test_an_escalation_restarts_the_repeat_timer(harness):
    svc = harness.svc
    await svc.create_rule(
        {
            **HOT,
            "notify": {"channels": ["ops"], "repeat_every": "5m"},
            "escalation": [{"after": "5m", "severity": "critical"}],
        }
    )
    await harness.send("d1", 0, t=31)
    await harness.tick(300)  # escalation and repeat both due: one notification, not two
    assert [n.event for n in harness.sent] == ["raised", "escalated"]
    await harness.tick(600)
    assert [n.event for n in harness.sent] == ["raised", "escalated", "repeat"]


async def test_rules_changed_through_another_process_reach_the_lease_holder(tmp_path):
    """The process evaluating takes in rules another process's API created, changed or
    deleted, at its next timer pass."""
    from atoll.bus.memory import MemoryBus
    from atoll.rules.clock import FakeClock

    url = f"sqlite:///{tmp_path}/rules.db"
    clock = FakeClock(T0)
    holder = RulesService(MemoryBus(), db=url, clock=clock, tick_interval=0)
    api = RulesService(None, db=url, clock=clock, tick_interval=0)  # e.g. a standby's API
    await holder.tick()
    assert holder.leader
    await api.create_rule({**HOT, "notify": {}})
    await holder.tick()
    assert holder.engine.rules["hot"].condition.value == 30  # type: ignore[union-attr]
    clock.advance(1)
    await api.put_rule({**HOT, "notify": {}, "condition": {**HOT["condition"], "value": 40}})
    await holder.tick()
    assert holder.engine.rules["hot"].condition.value == 40  # type: ignore[union-attr]
    await api.delete_rule("hot")
    await holder.tick()
    assert "hot" not in holder.engine.rules
    await holder.bus.close()  # type: ignore[union-attr]


async def test_an_alarm_cleared_while_the_timer_pass_announces_gets_nothing_more(tmp_path):
    """Announcing one alarm's escalation awaits the bus; a reading handled meanwhile clears
    another alarm. That one gets no escalation and no repeat after its clear."""
    from atoll.bus.memory import MemoryBus
    from atoll.rules.alarms import SYSTEM
    from atoll.rules.clock import FakeClock
    from atoll.rules.model import ChannelSpec

    class ClearingBus(MemoryBus):
        """Clears d2's alarm while d1's escalation is being published."""

        svc: RulesService | None = None

        async def publish(self, subject: str, data: bytes) -> None:
            await super().publish(subject, data)
            svc = self.svc
            if svc is not None and b'"escalated"' in data and b'"d1"' in data:
                d2 = svc.alarms.open_for("hot", "d2")
                if d2 is not None:
                    svc.alarms.clear(d2.id, SYSTEM, svc.clock.now_us(), "condition ended")

    box = f"clearing-{tmp_path.name}"
    bus, clock = ClearingBus(), FakeClock(T0)
    svc = RulesService(bus, db=f"sqlite:///{tmp_path}/rules.db", clock=clock, tick_interval=0)
    bus.svc = svc
    svc.put_channel(ChannelSpec(name="ops", project="p", type="recorder", config={"box": box}))
    rule = {
        **HOT,
        "notify": {"channels": ["ops"], "on": [], "repeat_every": "5m"},
        "escalation": [{"after": "10m", "severity": "critical", "channels": ["ops"]}],
    }
    await svc.create_rule(rule)
    await svc._apply(svc.engine.on_telemetry("p", "d1", T0, {"t": 40}))
    await svc._apply(svc.engine.on_telemetry("p", "d2", T0, {"t": 40}))
    clock.set(T0 + 600 * US)
    await svc.tick()
    await svc.notifier.drain()
    d2 = svc.alarms.list(device="d2")[0]
    assert d2.status == "cleared"
    assert [e.kind for e in svc.alarms.history(d2.id)] == ["raised", "cleared"]
    assert [(n.event, n.alarm["device"]) for n in SENT[box]] == [("escalated", "d1")]
    await bus.close()
