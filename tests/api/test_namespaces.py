"""Two tenants choosing the same name both succeed: a chosen id lives in the tenant's namespace
(``alpha~line``, ``beta~line``), so "taken" / "already exists" never reveals another tenant's id.

Over the real app (registry, ingest pipeline, rules service) on SQLite and on PostgreSQL. Each
tenant is set up with ids of its own, so only the name under test is shared.
"""

from __future__ import annotations

import httpx
import pytest

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.rules.directory import RegistryDevices
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore
from atoll.testing.postgres import database_fixture
from tests.api.conftest import FAST_HASHER

V1 = "/api/v1"
pg_url = database_fixture("atoll_api_namespaces", scope="session")
PASSWORD = "a-long-password"
RULE = {
    "name": "Boiler too hot",
    "target": {"device_type": "boiler"},
    "condition": {"type": "threshold", "metric": "temperature", "value": 90, "clear": 85},
}
REPORT = {
    "name": "Daily",
    "cron": "0 7 * * *",
    "period": "1d",
    "bucket": "1h",
    "series": [],
    "include_alarms": True,
    "channels": ["ops"],
}


class Tenant:
    def __init__(self, http: httpx.AsyncClient, tid: str, token: str) -> None:
        self.http, self.id, self.h = http, tid, {"Authorization": f"Bearer {token}"}
        self.project = ""

    async def call(
        self, method: str, path: str, headers: dict | None = None, **kw
    ) -> httpx.Response:
        return await self.http.request(
            method, V1 + path, headers={**self.h, **(headers or {})}, **kw
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def tenants(request, tmp_path):
    """Tenants alpha and beta, each with a project, a boiler device type and a channel ``ops``."""
    if request.param == "sqlite":
        registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    else:
        import sqlalchemy as sa

        from atoll.registry.tables import metadata
        from atoll.rules import db

        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
        db.metadata.drop_all(engine)
        metadata.drop_all(engine)
        engine.dispose()
        registry = Registry(url, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    store, bus = MemoryStore(), MemoryBus()
    pipeline = IngestPipeline(store, bus, RegistryDirectory(registry), flush_interval=0.05)
    await pipeline.start()
    rules = RulesService(
        bus, db=registry.engine, directory=RegistryDevices(registry), store=store, tick_interval=0
    )
    await rules.start()
    ctx = AppContext(registry=registry, store=store, ingest=pipeline, bus=bus, rules=rules)
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as http:
        admin = {"Authorization": f"Bearer {boot.api_key}"}
        out = []
        for tid in ("alpha", "beta"):
            r = await http.post(f"{V1}/tenants", json={"name": tid, "id": tid}, headers=admin)
            assert r.status_code == 201, r.text
            t = Tenant(http, tid, r.json()["admin_key"]["token"])
            r = await t.call("POST", "/projects", json={"name": "Own", "id": f"{tid}-own"})
            t.project = r.json()["id"]
            r = await t.call(
                "POST",
                f"/projects/{t.project}/device-types",
                json={"id": "boiler", "metrics": [{"name": "temperature"}]},
            )
            assert r.status_code == 201, r.text
            r = await t.call(
                "PUT", f"/projects/{t.project}/channels/ops", json={"type": "log", "config": {}}
            )
            assert r.status_code == 200, r.text
            out.append(t)
        yield out
    await rules.stop()
    await pipeline.stop()
    registry.close()


async def _project(t: Tenant, name: str) -> httpx.Response:
    return await t.call("POST", "/projects", json={"name": name, "id": name})


async def _device(t: Tenant, name: str) -> httpx.Response:
    return await t.call("POST", f"/projects/{t.project}/devices", json={"id": name})


async def _user(t: Tenant, name: str) -> httpx.Response:
    return await t.call(
        "POST", "/users", json={"username": name, "password": PASSWORD, "role": "viewer"}
    )


async def _rule(t: Tenant, name: str) -> httpx.Response:
    return await t.call("POST", f"/projects/{t.project}/rules", json={**RULE, "id": name})


async def _rule_put(t: Tenant, name: str) -> httpx.Response:
    return await t.call("PUT", f"/projects/{t.project}/rules/{name}", json=RULE)


async def _rule_import(t: Tenant, name: str) -> httpx.Response:
    text = (
        f"rules:\n  - id: {name}\n    name: Hot\n    target: {{device_type: boiler}}\n"
        "    condition: {type: threshold, metric: temperature, value: 90}\n"
    )
    return await t.call(
        "POST",
        f"/projects/{t.project}/rules/import",
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )


async def _report(t: Tenant, name: str) -> httpx.Response:
    return await t.call("PUT", f"/projects/{t.project}/reports/{name}", json=REPORT)


def _id(r: httpx.Response) -> str:
    body = r.json()
    if "device" in body and isinstance(body["device"], dict):
        return body["device"]["id"]
    if "rules" in body:
        return body["rules"][0]
    return body.get("username") or body["id"]


CHOOSE = {
    "project": _project,
    "device": _device,
    "user": _user,
    "rule": _rule,
    "rule_put": _rule_put,
    "rule_import": _rule_import,
    "report": _report,
}


@pytest.mark.parametrize("kind", list(CHOOSE))
async def test_two_tenants_choose_the_same_name_and_both_get_it(tenants, kind):
    alpha, beta = tenants
    create = CHOOSE[kind]
    ra = await create(alpha, "line")
    rb = await create(beta, "line")  # was 409 / 400 naming alpha's id (or its project)
    assert ra.status_code in (200, 201), ra.text
    assert rb.status_code == ra.status_code, rb.text
    assert (_id(ra), _id(rb)) == ("alpha~line", "beta~line")
    # Naming another tenant's namespace is malformed whether or not the id exists there.
    taken = await create(beta, "alpha~line")
    free = await create(beta, "alpha~nothing")
    assert taken.status_code == free.status_code == 400
    assert taken.json()["error"] == free.json()["error"] == "invalid_input"
    # Choosing it again clashes only with the caller's own (POST: 409; PUT replaces).
    again = await create(beta, "line")
    if again.status_code == 409:
        assert "beta~line" in again.json()["message"] and "alpha" not in again.text
    else:
        assert again.status_code in (200, 201) and _id(again) == "beta~line", again.text


async def test_a_rule_named_like_another_tenants_gets_the_same_id(tenants):
    """A rule's id made from its name does not depend on other tenants' rules either."""
    alpha, beta = tenants
    rules = []
    for t in (alpha, beta, beta):
        r = await t.call("POST", f"/projects/{t.project}/rules", json=RULE)
        assert r.status_code == 201, r.text
        rules.append(r.json()["id"])
    assert rules == ["alpha~boiler-too-hot", "beta~boiler-too-hot", "beta~boiler-too-hot-2"]


async def test_each_tenants_device_and_login_are_its_own(tenants):
    alpha, beta = tenants
    secrets = {}
    for t in (alpha, beta):
        r = await _device(t, "pump")
        assert r.status_code == 201, r.text
        secrets[t.id] = r.json()["credentials"]["secret"]
        assert (await _user(t, "ops")).status_code == 201
    for t in (alpha, beta):
        # The device id as returned is its username (HTTP basic here, MQTT alike).
        r = await t.http.post(
            f"{V1}/ingest/telemetry",
            auth=(f"{t.id}~pump", secrets[t.id]),
            json={"values": {"temperature": 20}},
        )
        assert r.status_code == 200, r.text
        r = await t.http.post(
            f"{V1}/auth/login", json={"username": f"{t.id}~ops", "password": PASSWORD}
        )
        assert r.status_code == 200 and r.json()["tenant"] == t.id, r.text
    # The chosen short name is nobody's login, and one tenant's secret opens only its device.
    r = await alpha.http.post(f"{V1}/auth/login", json={"username": "ops", "password": PASSWORD})
    assert r.status_code == 401
    r = await alpha.http.post(
        f"{V1}/ingest/telemetry",
        auth=("beta~pump", secrets["alpha"]),
        json={"values": {"temperature": 20}},
    )
    assert r.status_code == 401


async def test_channel_names_were_already_per_project(tenants):
    """Channels are keyed by (project, name): the same name in two tenants never clashed."""
    alpha, beta = tenants
    for t in (alpha, beta):
        r = await t.call(
            "PUT", f"/projects/{t.project}/channels/pager", json={"type": "log", "config": {}}
        )
        assert r.status_code == 200 and r.json()["name"] == "pager", r.text
