"""``forecast`` conditions on the real pieces: a SQLite registry (rules tables and the model
registry in one database, as the platform runs them), a memory store and bus, the rules service
with a fake clock and a one-minute cadence, the default forecaster (statsforecast).

A freezer case sits at -20 °C with a daily swing; when its compressor dies it warms 3 °C an
hour. The rule says "the forecast crosses -15 °C within 2 h"."""

from __future__ import annotations

import numpy as np
import pytest
from argon2 import PasswordHasher

from atoll.bus.memory import MemoryBus
from atoll.core.points import PointBatch, SeriesKey
from atoll.registry import Registry
from atoll.rules.clock import FakeClock
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore

MIN = 60_000_000
DAY = 1440 * MIN
T0 = 1_767_225_600_000_000 + 3 * DAY + 30 * MIN + 17_000_000  # 3 days and a half hour in
KEY = SeriesKey("p", "f1", "temp")
RULE = {
    "name": "Freezer warming",
    "project": "p",
    "target": {"device": "f1"},
    "condition": {
        "type": "forecast",
        "metric": "temp",
        "above": -15,
        "within": "2h",
        "every": "1m",
        "confirm": 2,
    },
}


def freezer(store, start: int, end: int, *, dead_at: int | None = None, key=KEY):
    """One reading a minute in ``[start, end)``; warming 3 °C an hour from ``dead_at``."""
    ts = np.arange(start, end, MIN, dtype=np.int64)
    rng = np.random.default_rng(start % 1000)
    v = -20.0 + 0.5 * np.sin(2 * np.pi * (ts % DAY) / DAY) + rng.normal(0.0, 0.05, len(ts))
    if dead_at is not None:
        v = v + np.clip((ts - dead_at) / 3_600e6, 0.0, None) * 3.0
    store.append(PointBatch.of_series(key, ts, v))
    return v


class Env:
    def __init__(self, svc: RulesService, clock: FakeClock, store, registry) -> None:
        self.svc, self.clock, self.store, self.registry = svc, clock, store, registry

    async def evaluate_at(self, now: int) -> None:
        """A timer pass at ``now`` and the forecasts it started."""
        self.clock.set(now)
        await self.svc.tick()
        await self.svc.forecasts_settled()
        await self.svc.notifier.drain()

    def alarms(self):
        return self.svc.alarms.open_alarms()

    def stored(self):
        return self.svc.forecasts.list("freezer-warming")


@pytest.fixture
async def env(tmp_path):
    registry = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    registry.create_project(registry.bootstrap().tenant, "P", project_id="p")
    store, bus, clock = MemoryStore(), MemoryBus(), FakeClock(T0)
    svc = RulesService(
        bus, db=registry.engine, store=store, clock=clock, tick_interval=0, catalog=registry
    )
    await svc.start()
    yield Env(svc, clock, store, registry)
    await svc.stop()
    await bus.close()
    registry.close()


async def test_a_warming_freezer_raises_before_it_crosses_and_names_the_model(env):
    dead = T0 - 40 * MIN  # -20 → about -18 now: -15 is about an hour away
    v = freezer(env.store, T0 - 3 * DAY, T0, dead_at=dead)
    assert v[-1] < -17
    await env.svc.create_rule(RULE)

    await env.evaluate_at(T0)
    assert env.alarms() == [], "one crossing forecast is not enough (confirm: 2)"
    (first,) = env.stored()
    assert first["status"] == "crosses" and first["crossing_ts"] is not None

    # Half a minute later: not due yet (every: 1m), nothing fitted.
    await env.evaluate_at(T0 + MIN // 2)
    assert len(env.stored()) == 1
    now_v = freezer(env.store, T0, T0 + MIN, dead_at=dead)
    await env.evaluate_at(T0 + MIN)
    (alarm,) = env.alarms()
    assert now_v[-1] < -15, "raised before the freezer crossed"
    assert alarm.metric == "temp" and "f1.temp forecast crosses -15 (above) in about" in (
        alarm.detail
    )
    fc = alarm.context["forecast"]
    assert fc["crosses"] is True and T0 < fc["ts"] <= T0 + MIN + 2 * 60 * MIN
    # It says when: the mean path's crossing within about an hour or two (3 °C/h from -18).
    assert 20 <= (fc["ts"] - (T0 + MIN)) / MIN <= 150, fc
    assert fc["earliest"] <= fc["ts"]

    # Each stored forecast carries its model's registry record: one query says which.
    rows = env.stored()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"crosses"}
    assert rows[0]["id"] == fc["id"] and rows[0]["model"].startswith("auto:")
    (model,) = env.registry.list_models("p", ref=rows[0]["model_id"])
    assert (model.kind, model.scope, model.state) == ("forecaster", "series:f1/temp", "active")
    assert model.version == rows[0]["model_version"] == rows[1]["model_version"] == 1
    assert model.algorithm == "auto" and model.approved_by == "system"
    assert model.params["kind"] == "auto" and model.params["library"].startswith("statsforecast")
    assert model.code_version and model.code_version != "unknown"
    # Its path is kept too.
    full = env.svc.forecasts.get(rows[0]["id"])
    assert full is not None and len(full["path"]["mean"]) == len(full["path"]["ts"]) > 0


async def test_the_alarm_clears_when_the_forecast_no_longer_crosses(env):
    dead = T0 - 40 * MIN
    freezer(env.store, T0 - 3 * DAY, T0, dead_at=dead)
    await env.svc.create_rule(RULE)
    await env.evaluate_at(T0)
    await env.evaluate_at(T0 + MIN)
    assert len(env.alarms()) == 1
    # Repaired: back at -20 for the next hour and a half, steady.
    freezer(env.store, T0, T0 + 90 * MIN)
    await env.evaluate_at(T0 + 90 * MIN)
    assert len(env.alarms()) == 1, "one clear forecast is not enough (confirm: 2)"
    await env.evaluate_at(T0 + 91 * MIN)
    assert env.alarms() == []
    assert [r["status"] for r in env.stored()[:2]] == ["clear", "clear"]


async def test_a_steady_freezer_raises_nothing(env):
    freezer(env.store, T0 - 3 * DAY, T0)
    await env.svc.create_rule(RULE)
    for k in range(3):
        await env.evaluate_at(T0 + k * MIN)
    assert env.alarms() == []
    rows = env.stored()
    assert [r["status"] for r in rows] == ["clear"] * 3
    assert all(r["crossing_ts"] is None and r["model_id"] for r in rows)


async def test_too_little_history_is_a_reason_not_a_crash(env):
    freezer(env.store, T0 - 5 * MIN, T0)  # five readings
    await env.svc.create_rule(RULE)
    await env.evaluate_at(T0)
    await env.evaluate_at(T0 + MIN)
    assert env.alarms() == [] and env.svc.stats["errors"] == 0
    rows = env.stored()
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert "a forecast needs" in rows[0]["reason"] and rows[0]["model_id"] is None
    assert env.svc.engine.state("freezer-warming", "f1") is None  # unknown, not "fine"
    # A device with no data at all: the same, with its own reason.
    await env.svc.create_rule({**RULE, "name": "Ghost", "target": {"device": "f9"}})
    await env.evaluate_at(T0 + 2 * MIN)
    (ghost,) = env.svc.forecasts.list("ghost")
    assert ghost["status"] == "skipped" and "no data" in ghost["reason"]


async def test_forecasts_run_off_the_event_loop_once_per_cadence(env):
    freezer(env.store, T0 - 3 * DAY, T0)
    await env.svc.create_rule(RULE)
    env.clock.set(T0)
    await env.svc.tick()
    # The pass returned with the fit still under way in its worker thread.
    task = env.svc._forecasting
    assert task is not None and not task.done()
    await env.svc.tick()  # a second pass meanwhile starts nothing more
    await env.svc.forecasts_settled()
    assert len(env.stored()) == 1


async def test_partitioned_only_the_owner_forecasts_and_hands_the_state_over(tmp_path):
    from atoll.bus.partitions import MemoryCheckpointStore, MemoryPartitions, partition_of

    count = 8
    registry = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    registry.create_project(registry.bootstrap().tenant, "P", project_id="p")
    store, bus, clock = MemoryStore(), MemoryBus(), FakeClock(T0)
    checkpoints = MemoryCheckpointStore()
    dead = T0 - 40 * MIN
    other = "f3" if partition_of("f3", count) != partition_of("f1", count) else "f4"
    assert partition_of(other, count) != partition_of("f1", count)
    for device in ("f1", other):
        freezer(store, T0 - 3 * DAY, T0, dead_at=dead, key=SeriesKey("p", device, "temp"))

    def service() -> RulesService:
        return RulesService(
            bus,
            db=registry.engine,
            store=store,
            clock=clock,
            tick_interval=0,
            catalog=registry,
            partitions=MemoryPartitions(bus, count),
            checkpoints=checkpoints,
            checkpoint_interval=0,
        )

    a = service()
    await a.create_rule({**RULE, "target": {"devices": ["f1", other]}})
    await a.start()
    part = a.partitioned
    assert part is not None
    try:
        part.applied.pop(partition_of(other, count))  # another process's partition
        for k in range(2):
            clock.set(T0 + k * MIN)
            await a.tick()
            await a.forecasts_settled()
        assert [x.device for x in a.alarms.open_alarms()] == ["f1"]
        assert {r["device"] for r in a.forecasts.list("freezer-warming")} == {"f1"}
    finally:
        await a.stop()  # hands its partitions over: checkpointed

    b = service()
    await b.start()
    try:
        assert b.stats.get("restored", 0) >= 1
        (leaf,) = b.engine._instances["freezer-warming"]["f1"].forecasts
        assert leaf.on and leaf.next_at == T0 + 2 * MIN and leaf.result["crosses"] is True
        # Not due again before `every` has passed since the last evaluation.
        before = len(b.forecasts.list("freezer-warming", device="f1"))
        clock.set(T0 + MIN + MIN // 2)
        await b.tick()
        await b.forecasts_settled()
        assert len(b.forecasts.list("freezer-warming", device="f1")) == before
        assert [x.device for x in b.alarms.open_alarms()] == ["f1"]
    finally:
        await b.stop()
        await bus.close()
        registry.close()
