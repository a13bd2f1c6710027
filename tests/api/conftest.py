"""A real API over a real SQLite registry, memory store and the real ingest pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.ingest.validate import Limits
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.store.memory import MemoryStore
from tests.api.lab_world import lab, seeded  # noqa: F401  (fixtures of the lab tests)

# Same algorithm, test-sized cost: the production default takes ~1 s per hash on a busy 2-core box.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

MAX_BODY = 64 * 1024


@dataclass
class Api:
    ctx: AppContext
    http: httpx.AsyncClient
    admin_key: str
    password: str

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth(self.admin_key)

    async def key(self, role: str, *, as_key: str | None = None) -> str:
        r = await self.http.post(
            "/api/v1/keys",
            json={"name": role, "role": role},
            headers=self.auth(as_key or self.admin_key),
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    async def project(self, pid: str = "lab", key: str | None = None) -> dict:
        r = await self.http.post(
            "/api/v1/projects",
            json={"name": pid, "id": pid},
            headers=self.auth(key or self.admin_key),
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def device(
        self, project: str = "lab", device_id: str = "s1", key: str | None = None, **body
    ) -> tuple[str, str]:
        r = await self.http.post(
            f"/api/v1/projects/{project}/devices",
            json={"id": device_id, **body},
            headers=self.auth(key or self.admin_key),
        )
        assert r.status_code == 201, r.text
        creds = r.json()["credentials"]
        return creds["device"], creds["secret"]


@pytest.fixture
async def api(tmp_path):
    registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    store = MemoryStore()
    bus = MemoryBus()
    pipeline = IngestPipeline(
        store,
        bus,
        RegistryDirectory(registry),
        Limits(max_bytes=MAX_BODY, max_future_skew_s=300),
        flush_interval=0.05,
    )
    await pipeline.start()
    ctx = AppContext(registry=registry, store=store, ingest=pipeline, bus=bus)
    app = create_app(ctx, max_body_bytes=MAX_BODY)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as http:
        yield Api(ctx, http, boot.api_key, boot.password)
    await pipeline.stop()
    registry.close()
