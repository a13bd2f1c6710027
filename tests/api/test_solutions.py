"""``/solutions``: the sector templates, and a project started from one in a single call, with a
dry run that shows what it adds, keeps and replaces and changes nothing. Over the real app
(registry, ingest pipeline, rules service) on SQLite."""

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
from atoll.solutions import load
from atoll.store.memory import MemoryStore
from tests.api.conftest import FAST_HASHER

V1 = "/api/v1"


@pytest.fixture
async def acme(tmp_path):
    """An app with the rules service; answers (http, acme's admin headers, platform headers)."""
    registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
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
        platform = {"Authorization": f"Bearer {boot.api_key}"}
        r = await http.post(f"{V1}/tenants", json={"name": "Acme", "id": "acme"}, headers=platform)
        acme = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
        yield http, acme, platform
    await rules.stop()
    await pipeline.stop()
    registry.close()


async def test_templates_are_listed(acme):
    http, key, _ = acme
    got = (await http.get(f"{V1}/solutions", headers=key)).json()
    retail = next(t for t in got if t["name"] == "retail")
    assert retail["device_types"] == ["freezer", "chiller", "store_meter"]
    assert retail["rules"] == len(load("retail").rules) and retail["sector"] == "retail"


async def test_a_dry_run_changes_nothing_then_the_same_call_makes_the_project(acme):
    http, key, _ = acme
    body = {"project": "shop", "name": "Corner shop", "dry_run": True}
    r = await http.post(f"{V1}/solutions/retail/apply", json=body, headers=key)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["project"] == "acme~shop" and got["create_project"] and got["dry_run"]
    freezer = got["device_types"][0]
    assert (freezer["name"], freezer["action"]) == ("freezer", "add")
    assert {"name": "temperature", "unit": "°C"}.items() <= freezer["metrics"][2].items()
    assert got["adds"] == {"device_types": 3, "rules": len(load("retail").rules)}
    assert all(x["action"] == "add" and x["id"].startswith("acme~") for x in got["rules"])
    assert got["panels"] and got["next"].startswith("atoll sim --project acme~shop")
    assert (await http.get(f"{V1}/projects/acme~shop", headers=key)).status_code == 404

    r = await http.post(
        f"{V1}/solutions/retail/apply", json={**body, "dry_run": False}, headers=key
    )
    assert r.status_code == 200, r.text
    project = (await http.get(f"{V1}/projects/acme~shop", headers=key)).json()
    assert project["name"] == "Corner shop"
    types = (await http.get(f"{V1}/projects/acme~shop/device-types", headers=key)).json()
    assert {t["id"] for t in types} == {"freezer", "chiller", "store_meter"}
    rules = (await http.get(f"{V1}/projects/acme~shop/rules", headers=key)).json()
    assert sorted(x["id"] for x in rules) == sorted(x["id"] for x in got["rules"])
    audit = (await http.get(f"{V1}/audit", params={"action": "solution."}, headers=key)).json()
    assert [a["action"] for a in audit] == ["solution.apply"]


async def test_what_the_project_has_is_kept_and_named(acme):
    http, key, _ = acme
    await http.post(f"{V1}/projects", json={"name": "Plant", "id": "plant"}, headers=key)
    await http.post(
        f"{V1}/projects/acme~plant/device-types",
        json={"id": "motor", "name": "Our motor", "metrics": [{"name": "current", "unit": "A"}]},
        headers=key,
    )
    r = await http.post(
        f"{V1}/solutions/manufacturing/apply", json={"project": "plant"}, headers=key
    )
    assert r.status_code == 200, r.text
    got = r.json()
    motor = next(t for t in got["device_types"] if t["name"] == "motor")
    assert not got["create_project"] and motor["action"] == "keep"
    assert motor["missing"] == ["vibration_rms", "bearing_temp"]
    kept = (await http.get(f"{V1}/projects/acme~plant/device-types/motor", headers=key)).json()
    assert kept["name"] == "Our motor" and [m["name"] for m in kept["metrics"]] == ["current"]
    again = (
        await http.post(
            f"{V1}/solutions/manufacturing/apply",
            json={"project": "acme~plant", "dry_run": True},
            headers=key,
        )
    ).json()
    assert {x["action"] for x in again["rules"]} == {"replace"}
    assert again["adds"] == {"device_types": 0, "rules": 0}


async def test_refusals_are_clear(acme):
    http, key, platform = acme
    operator = (
        await http.post(f"{V1}/keys", json={"name": "op", "role": "operator"}, headers=key)
    ).json()["token"]
    viewer = (
        await http.post(f"{V1}/keys", json={"name": "v", "role": "viewer"}, headers=key)
    ).json()["token"]
    apply = f"{V1}/solutions/retail/apply"
    r = await http.post(
        apply, json={"project": "shop"}, headers={"Authorization": f"Bearer {operator}"}
    )
    assert r.status_code == 403 and "only an admin creates projects" in r.json()["message"]
    r = await http.post(
        apply,
        json={"project": "shop", "dry_run": True},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert r.status_code == 403
    r = await http.post(f"{V1}/solutions/aquaculture/apply", json={"project": "x"}, headers=key)
    assert r.status_code == 404 and "known templates" in r.json()["hint"]
    r = await http.post(apply, json={"project": "bad id!"}, headers=key)
    assert r.status_code == 400 or r.status_code == 422, r.text
    # Another enterprise's project is not reached: the same id is one of acme's own.
    await http.post(f"{V1}/projects", json={"name": "Other", "id": "other"}, headers=platform)
    r = await http.post(apply, json={"project": "other", "dry_run": True}, headers=key)
    assert r.json()["project"] == "acme~other" and r.json()["create_project"]
