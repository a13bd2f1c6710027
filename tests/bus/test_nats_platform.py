"""Atoll's runtime on NATS JetStream (and, when reachable, PostgreSQL for store and registry):
telemetry sent over HTTP reaches the store, the detection service scores it, and its
anomaly-score events come back over NATS to another process's connection."""

import asyncio

import httpx
import orjson
import psycopg
import pytest
from argon2 import PasswordHasher

from atoll.bus.nats import NatsBus
from atoll.config import Settings
from atoll.core.points import SeriesKey
from atoll.platform import Platform
from atoll.testing.nats_server import NatsServer
from atoll.testing.postgres import database_fixture

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
T0_MS = 1_700_000_000_000


@pytest.fixture
def nats_url(tmp_path):
    # One server per test: the durable "detect"/"rules" groups must not carry over.
    with NatsServer(tmp_path / "nats") as server:
        yield server.url


pg_db = database_fixture("atoll_nats")


async def _run_and_check(settings: Settings, nats_url: str) -> None:
    watcher = NatsBus(nats_url)  # e.g. a console in another process
    events: list[dict] = []

    async def on_anomaly(msg):
        events.extend(orjson.loads(msg.data))

    p = Platform(settings, password_hasher=FAST)
    await p.start()
    try:
        assert isinstance(p.bus, NatsBus)
        await watcher.subscribe("anomaly.lab.*", on_anomaly)
        reg = p.registry
        reg.create_project("default", "Lab", project_id="lab")
        _, creds = reg.register_device("lab", device_id="pump1")
        readings = [{"ts": T0_MS + i * 1000, "values": {"flow": 10.0 + (i % 5)}} for i in range(50)]
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            r = await http.post(
                "/api/v1/ingest/telemetry", auth=("pump1", creds.secret), json=readings
            )
            assert r.status_code in (200, 201, 202), r.text
        key = SeriesKey("lab", "pump1", "flow")
        assert p.store.query_raw(key, 0, 2**62).value.tolist() == [
            10.0 + (i % 5) for i in range(50)
        ]

        # A fresh clone compiles the detector's kernels on the first message: seconds to a
        # minute on a loaded 2-core CI box.
        for _ in range(6000):
            if len(events) >= 50:
                break
            await asyncio.sleep(0.02)
        assert [e["ts"] for e in events] == [(T0_MS + i * 1000) * 1000 for i in range(50)]
        assert {(e["device"], e["metric"]) for e in events} == {("pump1", "flow")}
        assert all(0.0 <= e["score"] <= 1.0 for e in events)
    finally:
        await p.stop()  # the detection service flushes its scores to the store on stop
        await watcher.close()
    store_check = Platform(settings.model_copy(update={"services": []}), password_hasher=FAST)
    await store_check.start()
    try:
        scores = store_check.store.query_raw(
            SeriesKey("lab", "pump1", "flow.anomaly_score"), 0, 2**62
        )
        assert len(scores.ts) == 50
        assert store_check.registry.get_device("pump1").project == "lab"
    finally:
        await store_check.stop()


async def test_platform_runs_on_nats(tmp_path, nats_url):
    await _run_and_check(
        Settings(home=tmp_path / "home", bus_url=nats_url, http_port=0, mqtt_port=0), nats_url
    )


async def test_platform_runs_on_nats_and_postgresql(tmp_path, nats_url, pg_db):
    settings = Settings(
        home=tmp_path / "home",
        bus_url=nats_url,
        store_url=pg_db,
        registry_url=pg_db,
        http_port=0,
        mqtt_mode="off",
    )
    await _run_and_check(settings, nats_url)
    # registry and series live in PostgreSQL, not in the data directory
    assert not (tmp_path / "home" / "registry.sqlite").exists()
    assert not (tmp_path / "home" / "series.duckdb").exists()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (1,)


async def test_unreachable_nats_fails_the_start_with_the_url(tmp_path):
    from atoll.core.errors import Unavailable

    p = Platform(
        Settings(
            home=tmp_path,
            bus_url="nats://127.0.0.1:1?timeout=0.5",
            http_port=0,
            mqtt_mode="off",
            services=[],
        ),
        password_hasher=FAST,
    )
    with pytest.raises(Unavailable, match="127.0.0.1:1"):
        await p.start()


async def test_two_nodes_run_rules_one_evaluates_and_the_other_takes_over(
    tmp_path, nats_url, pg_db
):
    """Two ``atoll up`` nodes with the rules service on one NATS and PostgreSQL: the rules are
    partitioned (docs/RULES.md, "In a cluster"); a rule made through node b reaches node a too;
    readings posted to node b raise one alarm, evaluated by the owner of the device's partition
    alone; when that node stops, the other takes the partition over (with its state) and clears
    it."""
    from atoll.bus.partitions import partition_of
    from atoll.rules.service import RulesService

    def node(name: str) -> Platform:
        settings = Settings(
            home=tmp_path / name,
            bus_url=nats_url,
            store_url=pg_db,
            registry_url=pg_db,
            http_port=0,
            mqtt_mode="off",
            services=["rules"],
        )
        return Platform(settings, password_hasher=FAST)

    async def until(cond, what: str) -> None:
        for _ in range(1500):
            if cond():
                return
            await asyncio.sleep(0.02)
        pytest.fail(f"never happened: {what}")

    a, b = node("a"), node("b")
    await a.start()
    await b.start()
    try:
        ra = next(s for s in a.services if isinstance(s, RulesService))
        rb = next(s for s in b.services if isinstance(s, RulesService))
        pa, pb = ra.partitioned, rb.partitioned
        assert pa is not None and pb is not None
        a.registry.create_project("default", "Lab", project_id="lab")
        _, creds = a.registry.register_device("lab", device_id="pump1")
        await rb.create_rule(
            {
                "name": "Hot",
                "project": "lab",
                "target": {"device": "pump1"},
                "condition": {"type": "threshold", "metric": "temp", "value": 100},
            }
        )
        await until(lambda: "hot" in ra.engine.rules, "node a took in the rule made on node b")
        p = partition_of("pump1", pa.count)
        await until(
            lambda: pa.owned() | pb.owned() == set(range(pa.count)) and pa.owned() and pb.owned(),
            "both nodes owning partitions",
        )
        (owner, owner_svc), (other, other_svc) = sorted(
            [(a, ra), (b, rb)], key=lambda x: p not in x[1].partitioned.owned()
        )

        async def post(ts_ms: int, temp: float) -> None:
            async with httpx.AsyncClient(base_url=other.http_url) as http:
                r = await http.post(
                    "/api/v1/ingest/telemetry",
                    auth=("pump1", creds.secret),
                    json=[{"ts": ts_ms, "values": {"temp": temp}}],
                )
                assert r.status_code in (200, 201, 202), r.text

        await post(T0_MS, 150)  # to the node that does not evaluate it
        await until(lambda: len(other_svc.alarms.list()) == 1, "the alarm raised")
        assert (owner_svc.stats["readings"], other_svc.stats["readings"]) == (1, 0)
        await owner.stop()
        await until(lambda: p in other_svc.partitioned.owned(), "the other node took it over")
        await post(T0_MS + 1000, 20)
        await until(lambda: other_svc.stats["readings"] == 1, "the other node evaluated it")
        (alarm,) = other_svc.alarms.list()
        assert (alarm.status, alarm.value) == ("cleared", 150)
    finally:
        await a.stop()
        await b.stop()
