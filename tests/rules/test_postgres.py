"""The rules tables and alarm lifecycle on PostgreSQL (a database made for this session)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from atoll.rules import db
from atoll.rules.clock import FakeClock
from atoll.rules.service import RulesService
from atoll.testing.postgres import database_fixture

T0 = 1_800_000_000_000_000


pg_url = database_fixture("atoll_rules", scope="module")


async def test_alarm_lifecycle_on_postgresql(pg_url):
    clock = FakeClock(T0)
    svc = RulesService(None, db=pg_url, clock=clock, tick_interval=0)
    assert svc.db.dialect.name == "postgresql"
    await svc.create_rule(
        {
            "name": "Hot",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "threshold", "metric": "t", "value": 1},
            "escalation": [{"after": 60, "severity": "critical"}],
        }
    )
    await svc._apply(svc.engine.on_telemetry("p", "d1", T0, {"t": 5}))
    (a,) = svc.alarms.list()
    clock.advance(60)
    await svc.tick()
    assert svc.alarms.get(a.id).severity == "critical"
    await svc.acknowledge(a.id, "alice", comment="ok")
    await svc._apply(svc.engine.on_telemetry("p", "d1", T0 + 61_000_000, {"t": 0}))
    a = svc.alarms.get(a.id)
    assert (a.status, a.acknowledged, a.cleared_by) == ("cleared", True, "system")
    assert [e.kind for e in svc.alarms.history(a.id)] == [
        "raised",
        "escalated",
        "acknowledged",
        "commented",
        "cleared",
    ]
    # A second service on the same database sees the rule.
    assert "hot" in RulesService(None, db=svc.db, clock=clock, tick_interval=0).engine.rules
    # The partial unique index holds on PostgreSQL too.
    row = {
        "project": "p",
        "rule_id": "r",
        "rule_name": "r",
        "device": "d",
        "severity": "major",
        "status": "active",
        "acknowledged": False,
        "raised_at": 1,
        "detail": "",
    }
    with svc.db.begin() as c:
        c.execute(sa.insert(db.alarms).values(**row))
    with pytest.raises(sa.exc.IntegrityError), svc.db.begin() as c:
        c.execute(sa.insert(db.alarms).values(**{**row, "status": "acknowledged"}))
    svc.db.dispose()


def test_nodes_creating_the_rules_tables_at_once_on_a_fresh_database_all_start():
    """Several nodes running the rules service, started together on an empty database: the
    tables are created once (concurrent CREATE TABLE of one name fail on the catalog)."""
    import threading

    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_fresh_rules", skip_if_unreachable=True) as url:
        go, engines, failed = threading.Barrier(4), [], []

        def start() -> None:
            go.wait()
            try:
                engines.append(db.connect(url))
            except Exception as e:  # noqa: BLE001 - the assertion below names it
                failed.append(e)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for engine in engines:
            engine.dispose()
        assert not failed and len(engines) == 4


async def test_timers_lease_and_raising_are_exclusive_across_processes_on_postgresql(pg_url):
    """Eight rules processes' worth of engines race for the timers lease and to raise one
    alarm: one of each wins; the lease moves on only once released or expired."""
    from concurrent.futures import ThreadPoolExecutor

    from atoll.rules.alarms import AlarmBook
    from atoll.rules.lease import Lease
    from atoll.rules.model import Rule

    engines = [db.connect(pg_url) for _ in range(8)]
    leases = [Lease(e, "race", f"holder-{i}", 15_000_000) for i, e in enumerate(engines)]
    books = [AlarmBook(e) for e in engines]
    rule = Rule.model_validate(
        {
            "id": "race",
            "name": "Race",
            "project": "p",
            "target": {"device": "d9"},
            "condition": {"type": "threshold", "metric": "t", "value": 1},
        }
    )
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda lease: lease.acquire(T0), leases))
        raised = list(pool.map(lambda b: b.raise_(rule, "d9", T0, 5.0, "hot"), books))
    assert won.count(True) == 1
    assert sum(a is not None for a in raised) == 1
    assert [a.device for a in books[0].open_alarms() if a.rule_id == "race"] == ["d9"]
    holder = won.index(True)
    other = leases[(holder + 1) % 8]
    assert leases[holder].acquire(T0 + 10_000_000)  # renewed
    assert not other.acquire(T0 + 20_000_000)  # renewed until T0 + 25 s
    assert other.acquire(T0 + 25_000_000)  # expired: taken over
    assert not leases[holder].acquire(T0 + 26_000_000)
    other.release()
    assert leases[holder].acquire(T0 + 27_000_000)  # released: free at once
    for e in engines:
        e.dispose()


async def test_forecast_conditions_store_their_forecasts_and_model_on_postgresql(pg_url):
    """The registry and the rules tables in one PostgreSQL database, as the platform runs them:
    a warming freezer raises, the forecasts are stored (their path as JSON) with their model."""
    from argon2 import PasswordHasher

    from atoll.bus.memory import MemoryBus
    from atoll.registry import Registry
    from atoll.store.memory import MemoryStore
    from tests.rules.test_forecast import DAY, MIN, RULE, freezer

    # Later than the other tests' clocks: the timers lease they took (module's database) is
    # theirs until it expires on our clock.
    t0 = T0 + 10 * DAY + 30 * MIN + 17_000_000
    registry = Registry(
        pg_url, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    registry.create_project(registry.bootstrap().tenant, "P", project_id="p")
    store, bus, clock = MemoryStore(), MemoryBus(), FakeClock(t0)
    freezer(store, t0 - 3 * DAY, t0, dead_at=t0 - 40 * MIN)
    svc = RulesService(
        bus, db=registry.engine, store=store, clock=clock, tick_interval=0, catalog=registry
    )
    assert svc.db.dialect.name == "postgresql"
    await svc.start()
    try:
        await svc.create_rule(RULE)
        for k in range(2):
            clock.set(t0 + k * MIN)
            await svc.tick()
            await svc.forecasts_settled()
        (alarm,) = [a for a in svc.alarms.open_alarms() if a.rule_id == "freezer-warming"]
        assert alarm.context["forecast"]["crosses"] is True
        rows = svc.forecasts.list("freezer-warming")
        assert [r["status"] for r in rows] == ["crosses", "crosses"]
        (model,) = registry.list_models("p", ref=rows[0]["model_id"])
        assert (model.kind, model.version, model.state) == ("forecaster", 1, "active")
        full = svc.forecasts.get(rows[0]["id"])
        assert full is not None and len(full["path"]["hi"]) == len(full["path"]["ts"]) > 0
    finally:
        await svc.stop()
        await bus.close()
        registry.close()
