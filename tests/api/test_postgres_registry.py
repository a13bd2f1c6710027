"""The API over a registry on PostgreSQL (the cluster setup): same routes, same answers."""

import httpx
import pytest

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.registry.tables import metadata
from atoll.store.memory import MemoryStore
from atoll.testing.postgres import database_fixture
from tests.api.conftest import FAST_HASHER, Api

V1 = "/api/v1"
pg_url = database_fixture("atoll_api_registry", scope="session")


@pytest.fixture
async def pg_api(pg_url):
    from sqlalchemy import create_engine

    engine = create_engine(pg_url)
    metadata.drop_all(engine)
    engine.dispose()
    registry = Registry(pg_url, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    store = MemoryStore()
    pipeline = IngestPipeline(store, MemoryBus(), RegistryDirectory(registry), flush_interval=0.05)
    await pipeline.start()
    ctx = AppContext(registry=registry, store=store, ingest=pipeline)
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as http:
        yield Api(ctx, http, boot.api_key, boot.password)
    await pipeline.stop()
    registry.close()


async def test_core_flows_on_postgres(pg_api):
    api = pg_api
    assert api.ctx.registry.engine.dialect.name == "postgresql"
    await api.project()
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={"id": "t", "metrics": [{"name": "x", "max": 10}]},
    )
    assert r.status_code == 201
    dev = await api.device(device_type="t")
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=dev, json={"values": {"x": 1}})
    ).status_code == 200
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=dev, json={"values": {"y": 1}})
    ).status_code == 400
    r = await api.http.patch(
        f"{V1}/devices/s1/twin/desired", json={"a": {"b": 1}}, headers=api.admin
    )
    assert r.json()["desired_version"] == 1
    cmd = (
        await api.http.post(f"{V1}/devices/s1/commands", json={"name": "go"}, headers=api.admin)
    ).json()
    r = await api.http.post(
        f"{V1}/ingest/commands/{cmd['id']}/ack", auth=dev, json={"status": "ok"}
    )
    assert r.json()["status"] == "acked"
    beta = (await api.http.post(f"{V1}/tenants", json={"name": "Beta"}, headers=api.admin)).json()
    other = api.auth(beta["admin_key"]["token"])
    assert (await api.http.get(f"{V1}/devices/s1", headers=other)).status_code == 404
    await api.ctx.ingest.flush_counters()
    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert [x["reason"] for x in rej] == ["unknown_series"]
    r = await api.http.post(
        f"{V1}/auth/login", json={"username": "admin", "password": api.password}
    )
    assert r.status_code == 200


async def test_ingest_answers_503_while_the_store_is_down_and_resumes_by_itself(tmp_path):
    """PostgreSQL (the series store) stops: telemetry gets a clear 503 that says nothing was
    stored; it starts again: the same process stores again, with no restart."""
    import asyncio

    from atoll.core.points import SeriesKey
    from atoll.store.postgres import PostgresStore
    from atoll.testing.postgres import PostgresServer

    with PostgresServer() as server:
        registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
        boot = registry.bootstrap()
        store = PostgresStore(server.url)
        pipeline = IngestPipeline(
            store, MemoryBus(), RegistryDirectory(registry), flush_interval=0.05
        )
        await pipeline.start()
        ctx = AppContext(registry=registry, store=store, ingest=pipeline)
        transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as h:
                api = Api(ctx, h, boot.api_key, boot.password)
                await api.project()
                dev = await api.device()

                async def send(v: int) -> httpx.Response:
                    return await h.post(
                        f"{V1}/ingest/telemetry", auth=dev, json={"values": {"x": v}}
                    )

                assert (await send(1)).status_code == 200
                await asyncio.to_thread(server.stop)
                for v in (2, 3, 4):
                    r = await send(v)
                    assert r.status_code == 503, r.text
                    body = r.json()
                    assert body["error"] == "unavailable" and body["hint"]
                    assert "PostgreSQL" in body["message"]
                    assert int(r.headers["Retry-After"]) >= 1
                await asyncio.to_thread(server.start)
                for _ in range(200):  # back within the reconnect backoff (at most 5 s)
                    if (r := await send(5)).status_code == 200:
                        break
                    assert r.status_code == 503
                    await asyncio.sleep(0.05)
                assert r.status_code == 200
                stored = store.query_raw(SeriesKey("lab", "s1", "x"), 0, 2**62)
                assert stored.value.tolist() == [1.0, 5.0]
        finally:
            await pipeline.stop()
            store.close()
            registry.close()


async def test_two_api_nodes_activating_at_once_leave_one_active_model(pg_api, pg_url):
    """Two API processes on one PostgreSQL registry: concurrent activations of two versions of
    one kind and scope end with exactly one active version, every round."""
    import asyncio

    api = pg_api
    await api.project()
    second = Registry(pg_url, password_hasher=FAST_HASHER)
    app2 = create_app(AppContext(registry=second, store=MemoryStore()))
    transport = httpx.ASGITransport(app=app2, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as node2:
            for round_ in range(4):
                scope = f"type:t{round_}"
                ids = []
                for _ in range(3):
                    r = await api.http.post(
                        f"{V1}/projects/lab/models",
                        headers=api.admin,
                        json={"kind": "rul", "scope": scope},
                    )
                    ids.append(r.json()["id"])
                    r = await api.http.post(
                        f"{V1}/projects/lab/models/{ids[-1]}/approve", headers=api.admin
                    )
                    assert r.status_code == 200
                answers = await asyncio.gather(
                    api.http.post(f"{V1}/projects/lab/models/{ids[1]}/activate", headers=api.admin),
                    node2.post(f"{V1}/projects/lab/models/{ids[2]}/activate", headers=api.admin),
                )
                assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
                assert 200 in {a.status_code for a in answers}
                r = await node2.get(
                    f"{V1}/projects/lab/models?scope={scope}&state=active", headers=api.admin
                )
                assert len(r.json()) == 1, r.json()
    finally:
        second.close()
