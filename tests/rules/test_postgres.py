"""The rules tables and alarm lifecycle on PostgreSQL (a database made for this session)."""

from __future__ import annotations

import os
import secrets

import psycopg
import pytest
import sqlalchemy as sa

from atoll.rules import db
from atoll.rules.clock import FakeClock
from atoll.rules.service import RulesService

PG = os.environ.get("ATOLL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
T0 = 1_800_000_000_000_000


@pytest.fixture(scope="module")
def pg_url():
    name = f"atoll_rules_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc}); set ATOLL_TEST_PG")
    admin.execute(f'CREATE DATABASE "{name}"')
    p = psycopg.conninfo.conninfo_to_dict(PG)
    yield f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


async def test_alarm_lifecycle_on_postgresql(pg_url):
    clock = FakeClock(T0)
    svc = RulesService(None, db=pg_url, clock=clock, tick_interval=0)
    assert svc.db.dialect.name == "postgresql"
    await svc.create_rule({"name": "Hot", "project": "p", "target": {"device": "d1"},
                           "condition": {"type": "threshold", "metric": "t", "value": 1},
                           "escalation": [{"after": 60, "severity": "critical"}]})
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
        "raised", "escalated", "acknowledged", "commented", "cleared"]
    # A second service on the same database sees the rule.
    assert "hot" in RulesService(None, db=svc.db, clock=clock, tick_interval=0).engine.rules
    # The partial unique index holds on PostgreSQL too.
    row = dict(project="p", rule_id="r", rule_name="r", device="d", severity="major",
               status="active", acknowledged=False, raised_at=1, detail="")
    with svc.db.begin() as c:
        c.execute(sa.insert(db.alarms).values(**row))
    with pytest.raises(sa.exc.IntegrityError), svc.db.begin() as c:
        c.execute(sa.insert(db.alarms).values(**{**row, "status": "acknowledged"}))
    svc.db.dispose()
