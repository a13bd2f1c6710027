"""A quota the platform operator sets through one node applies on every node at once: two
``atoll up`` nodes sharing PostgreSQL and NATS, the change made through node a, telemetry sent
to node b (whose own once-a-minute refresh cannot be what applied it)."""

import asyncio
import time

import httpx
import pytest
from argon2 import PasswordHasher

from atoll.config import Settings
from atoll.platform import Platform
from atoll.testing.nats_server import NatsServer
from atoll.testing.postgres import database_fixture

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
T0_MS = 1_700_000_000_000
V1 = "/api/v1"

pg_db = database_fixture("atoll_quota_changes")


@pytest.fixture
def nats_url(tmp_path):
    with NatsServer(tmp_path / "nats") as server:
        yield server.url


async def test_a_quota_change_on_one_node_applies_on_the_other_at_once(tmp_path, nats_url, pg_db):
    def node(name: str) -> Platform:
        settings = Settings(
            home=tmp_path / name,
            bus_url=nats_url,
            store_url=pg_db,
            registry_url=pg_db,
            http_port=0,
            mqtt_mode="off",
            services=[],
        )
        return Platform(settings, password_hasher=FAST)

    a, b = node("a"), node("b")
    await a.start()
    await b.start()
    try:
        assert a.bootstrap is not None
        admin = {"Authorization": f"Bearer {a.bootstrap.api_key}"}
        a.registry.create_tenant("Acme", "acme")
        project = a.registry.create_project("acme", "Line", project_id="line")
        device, creds = a.registry.register_device(project.id, device_id="press1")
        ts = iter(range(T0_MS, T0_MS + 10**9, 1000))

        async def send_to_b(points: int) -> httpx.Response:
            body = [{"ts": next(ts), "values": {"force": 1.0}} for _ in range(points)]
            async with httpx.AsyncClient(base_url=b.http_url) as http:
                return await http.post(
                    f"{V1}/ingest/telemetry", auth=(device.id, creds.secret), json=body
                )

        async def set_quota(**values) -> None:
            async with httpx.AsyncClient(base_url=a.http_url) as http:
                r = await http.put(f"{V1}/tenants/acme/quotas", json=values, headers=admin)
            assert r.status_code == 200, r.text

        async def on_b(what: str, cond) -> float:
            """Seconds until node b shows ``cond`` (fail after 10 s: far below its own minute)."""
            t0 = time.monotonic()
            while not cond():
                if time.monotonic() - t0 > 10:
                    pytest.fail(f"node b never applied {what}")
                await asyncio.sleep(0.02)
            return time.monotonic() - t0

        # Before: the configured tenant rate (10,000 points/s) lets two batches of 40 through.
        assert (await send_to_b(40)).status_code == 200
        assert (await send_to_b(40)).status_code == 200
        quotas = b.pipeline.quotas
        assert quotas is not None and quotas.policy("acme").tenant.per_s == 10_000

        await set_quota(ingest_rate=5)
        await on_b("the ingest rate", lambda: b.pipeline.quotas.policy("acme").tenant.per_s == 5)
        # 5 points/s, burst 10: the first batch of 40 leaves the tenant in debt, the next is
        # refused with the quota named.
        assert (await send_to_b(40)).status_code == 200
        r = await send_to_b(1)
        assert r.status_code == 429, r.text
        assert "ingest_rate" in r.json()["hint"] and int(r.headers["Retry-After"]) >= 1

        await set_quota(ingest_rate=None)  # back to the configured rate
        await on_b(
            "no ingest rate", lambda: b.pipeline.quotas.policy("acme").tenant.per_s == 10_000
        )

        await set_quota(storage_points=50)  # 81 points held already
        await on_b("the storage quota", lambda: "acme" in b.pipeline.storage_full)
        r = await send_to_b(1)
        assert r.status_code == 403 and r.json()["error"] == "quota_exceeded", r.text
        assert "storage quota" in r.json()["message"]

        await set_quota(storage_points=None)
        await on_b("no storage quota", lambda: "acme" not in b.pipeline.storage_full)
        assert (await send_to_b(1)).status_code == 200
    finally:
        await b.stop()
        await a.stop()
