"""``GET /api/v1/projects/{p}/dashboard`` (``atoll.web.dashboards``): the layout of a project's
template dashboard, over a real registry and the real API app."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.api.app import EXTENSION_MODULES
from atoll.core.points import PointBatch, SeriesKey
from atoll.registry import Registry
from atoll.solutions import load
from atoll.store.memory import MemoryStore
from atoll.web import app as console
from atoll.web.dashboards import MAX_DEVICES

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
async def http(tmp_path, store):
    registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    app = create_app(
        AppContext(registry=registry, store=store), extensions=(*EXTENSION_MODULES, console)
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://atoll.test/api/v1",
        headers={"Authorization": f"Bearer {boot.api_key}"},
    ) as c:
        yield c
    registry.close()


async def _project_from(http, pid: str, template: str, devices: dict[str, int]) -> None:
    assert (await http.post("/projects", json={"name": pid, "id": pid})).status_code == 201
    t = load(template)
    for dtype in devices:
        r = await http.post(
            f"/projects/{pid}/device-types",
            json={"id": dtype, "metrics": t.device_type(dtype).registry_metrics()},
        )
        assert r.status_code == 201, r.text
    for dtype, n in devices.items():
        for i in range(n):
            r = await http.post(
                f"/projects/{pid}/devices",
                json={"id": f"{pid}-{dtype}-{i:02d}", "device_type": dtype},
            )
            assert r.status_code == 201, r.text


async def test_layout_comes_from_the_template_sharing_most_device_types(http):
    await _project_from(http, "line", "manufacturing", {"motor": MAX_DEVICES + 2, "pump": 1})
    r = await http.get("/projects/line/dashboard")
    assert r.status_code == 200, r.text
    d = r.json()
    template = load("manufacturing")
    assert (d["template"], d["title"], d["sector"]) == (
        "manufacturing",
        template.dashboard.title,
        "manufacturing",
    )
    assert [p["title"] for p in d["panels"]] == [p.title for p in template.dashboard.panels]
    pressure_flow = next(p for p in d["panels"] if p["title"] == "Pump pressure and flow")
    assert [(m["name"], m["unit"], m["max"]) for m in pressure_flow["metrics"]] == [
        ("pressure", "bar", 8.0),
        ("flow", "m³/h", 220.0),
    ]
    # A chart of ten motors would be unreadable: the first eight are drawn, all are counted.
    assert d["devices"]["motor"] == {
        "ids": [f"line-motor-{i:02d}" for i in range(MAX_DEVICES)],
        "total": MAX_DEVICES + 2,
    }
    assert d["devices"]["pump"] == {"ids": ["line-pump-00"], "total": 1}
    assert set(d["latest"]) == {f"line-motor-{i:02d}" for i in range(MAX_DEVICES)} | {
        "line-pump-00"
    }
    assert d["latest"]["line-pump-00"] == {}  # nothing sent yet
    matched = {t["name"]: t["matched_types"] for t in d["templates"]}
    assert matched["manufacturing"] == 2 and matched["retail"] == 0 and len(matched) == 5


async def test_tiles_get_the_latest_value_of_each_shown_device(http, store):
    await _project_from(http, "ward", "healthcare", {"vaccine_fridge": 2})
    store.append(
        PointBatch.of_series(
            SeriesKey("ward", "ward-vaccine_fridge-01", "temperature"),
            np.array([1_700_000_000_000_000, 1_700_000_060_000_000]),
            np.array([4.5, 5.25]),
        )
    )
    d = (await http.get("/projects/ward/dashboard")).json()
    assert d["template"] == "healthcare"
    assert d["latest"]["ward-vaccine_fridge-01"] == {
        "temperature": {"ts": 1_700_000_060_000, "value": 5.25}
    }
    assert d["latest"]["ward-vaccine_fridge-00"] == {}


async def test_a_template_can_be_chosen_and_an_unknown_one_is_refused(http):
    await _project_from(http, "shop", "retail", {"freezer": 1})
    d = (await http.get("/projects/shop/dashboard", params={"template": "healthcare"})).json()
    assert d["template"] == "healthcare" and d["panels"]
    assert all(v == {"ids": [], "total": 0} for v in d["devices"].values())
    r = await http.get("/projects/shop/dashboard", params={"template": "nope"})
    assert r.status_code == 404 and "retail" in r.json()["hint"]


async def test_a_project_without_template_types_has_no_layout_and_others_tenants_are_hidden(http):
    assert (await http.post("/projects", json={"name": "Bare", "id": "bare"})).status_code == 201
    d = (await http.get("/projects/bare/dashboard")).json()
    assert d["template"] is None and d["panels"] == [] and len(d["templates"]) == 5
    r = await http.post("/tenants", json={"name": "Other", "id": "other"})
    other = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
    assert (await http.get("/projects/bare/dashboard", headers=other)).status_code == 404
    assert (
        await http.get("/projects/bare/dashboard", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
