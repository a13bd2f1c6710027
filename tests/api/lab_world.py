"""The lab world the lab API tests share (fixtures ``lab`` and ``seeded``, registered in
tests/api/conftest.py): the real app over a SQLite registry, a memory store, HTTP ingest through
the real pipeline, and the real rules service and its alarm book."""

from __future__ import annotations

import time

import httpx
import pytest
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.rules.directory import RegistryDevices
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def rule(name: str, severity: str) -> dict:
    return {
        "name": name,
        "severity": severity,
        "target": {"device_type": "boiler"},
        "condition": {"type": "threshold", "metric": "temperature", "value": 90},
    }


class Lab:
    def __init__(self, http, admin, svc, registry, pipeline):
        self.http, self.admin, self.svc = http, admin, svc
        self.registry, self.pipeline = registry, pipeline
        self.keys: dict[str, str] = {"default": admin}
        self.secrets: dict[str, str] = {}

    def h(self, key: str | None = None, **extra) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin}", **extra}

    async def call(self, method: str, path: str, key: str | None = None, **kw):
        return await self.http.request(method, f"/api/v1{path}", headers=self.h(key), **kw)

    async def tenant(self, tid: str, name: str) -> str:
        r = await self.call("POST", "/tenants", json={"name": name, "id": tid})
        assert r.status_code == 201, r.text
        self.keys[tid] = r.json()["admin_key"]["token"]
        return self.keys[tid]

    async def project(self, tenant: str, pid: str, devices: int) -> str:
        key = self.keys[tenant]
        r = await self.call("POST", "/projects", key, json={"name": pid.title(), "id": pid})
        assert r.status_code == 201, r.text
        project = r.json()["id"]
        r = await self.call(
            "POST",
            f"/projects/{project}/device-types",
            key,
            json={"id": "boiler", "metrics": [{"name": "temperature"}]},
        )
        assert r.status_code == 201, r.text
        for i in range(devices):
            r = await self.call(
                "POST",
                f"/projects/{project}/devices",
                key,
                json={"id": f"{pid}-b{i}", "device_type": "boiler"},
            )
            assert r.status_code == 201, r.text
            c = r.json()["credentials"]
            self.secrets[c["device"]] = c["secret"]
        return project

    async def send(self, device: str, value: float) -> None:
        r = await self.http.post(
            "/api/v1/ingest/telemetry",
            auth=(device, self.secrets[device]),
            json={"values": {"temperature": value}},
        )
        assert r.status_code < 300, r.text

    async def alarm(self, tenant: str, project: str, device: str, name: str, severity: str):
        r = await self.call(
            "POST", f"/projects/{project}/rules", self.keys[tenant], json=rule(name, severity)
        )
        assert r.status_code == 201, r.text
        got = self.svc.alarms.raise_(
            self.svc.get_rule(r.json()["id"]), device, time.time_ns() // 1000, 95.0, "too hot"
        )
        assert got is not None
        return got


@pytest.fixture
async def lab(tmp_path):
    registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    store, bus = MemoryStore(), MemoryBus()
    pipeline = IngestPipeline(store, bus, RegistryDirectory(registry), flush_interval=0.05)
    await pipeline.start()
    svc = RulesService(
        bus, db=registry.engine, directory=RegistryDevices(registry), store=store, tick_interval=0
    )
    await svc.start()
    ctx = AppContext(registry=registry, store=store, ingest=pipeline, bus=bus, rules=svc)
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as http:
        yield Lab(http, boot.api_key, svc, registry, pipeline)
    await svc.stop()
    await pipeline.stop()
    registry.close()


@pytest.fixture
async def seeded(lab):
    """Two enterprises besides the default one: acme (2 projects, 3 devices, 2 sending, 3
    alarms) and beta (1 project, 1 device, 1 alarm); the default tenant is empty."""
    await lab.tenant("acme", "Acme Works")
    await lab.tenant("beta", "Beta Foods")
    await lab.project("acme", "press", 2)
    await lab.project("acme", "paint", 1)
    await lab.project("beta", "ovens", 1)
    await lab.send("acme~press-b0", 20.0)
    await lab.send("acme~press-b1", 21.0)
    await lab.send("acme~paint-b0", 22.0)
    await lab.pipeline.flush_counters()
    lab.ids = {
        "press-hot": (await lab.alarm("acme", "acme~press", "acme~press-b0", "Hot", "critical")).id,
        "press-warm": (
            await lab.alarm("acme", "acme~press", "acme~press-b1", "Warm", "warning")
        ).id,
        "paint-hot": (await lab.alarm("acme", "acme~paint", "acme~paint-b0", "Hot", "major")).id,
        "ovens-hot": (await lab.alarm("beta", "beta~ovens", "beta~ovens-b0", "Hot", "critical")).id,
    }
    return lab
