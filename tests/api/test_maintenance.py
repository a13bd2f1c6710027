"""Maintenance records over the real API and registry: record, list, delete, CSV import and
export; roles, tenants, and clear 4xx for bad input."""

from __future__ import annotations

import csv
import io

from tests.api.conftest import Api

V1 = "/api/v1"


async def _lab(api: Api) -> None:
    await api.project()
    await api.device(device_id="m1")
    await api.device(device_id="m2")


async def test_record_list_and_delete_with_roles_and_audit(api: Api):
    await _lab(api)
    r = await api.http.post(
        f"{V1}/devices/m1/maintenance",
        headers=api.admin,
        json={
            "kind": "failure",
            "at": "2026-11-02T08:15:00Z",
            "part": "bearing 6205",
            "cost": 420,
            "note": "outer race spalling",
        },
    )
    assert r.status_code == 201, r.text
    failure = r.json()
    assert failure["kind"] == "failure" and failure["at"] == "2026-11-02T08:15:00Z"
    assert failure["part"] == "bearing 6205" and failure["cost"] == 420.0
    r = await api.http.post(
        f"{V1}/devices/m1/maintenance",
        headers=api.admin,
        json={"kind": "replacement", "at": "2026-11-02T12:00:00Z", "part": "bearing 6205"},
    )
    assert r.status_code == 201
    viewer = await api.key("viewer")
    r = await api.http.get(f"{V1}/devices/m1/maintenance", headers=api.auth(viewer))
    assert [e["kind"] for e in r.json()] == ["replacement", "failure"]  # newest first
    r = await api.http.get(
        f"{V1}/devices/m1/maintenance?kind=failure&since=2026-11-01T00:00:00Z",
        headers=api.auth(viewer),
    )
    assert [e["id"] for e in r.json()] == [failure["id"]]
    r = await api.http.post(
        f"{V1}/devices/m1/maintenance", headers=api.auth(viewer), json={"kind": "inspection"}
    )
    assert r.status_code == 403
    r = await api.http.delete(
        f"{V1}/devices/m1/maintenance/{failure['id']}", headers=api.auth(viewer)
    )
    assert r.status_code == 403
    r = await api.http.delete(f"{V1}/devices/m1/maintenance/{failure['id']}", headers=api.admin)
    assert r.status_code == 204
    r = await api.http.delete(f"{V1}/devices/m1/maintenance/{failure['id']}", headers=api.admin)
    assert r.status_code == 404
    actions = [e.action for e in api.ctx.registry.audit_log("default", limit=50)]
    assert actions.count("maintenance.record") == 2 and "maintenance.delete" in actions


async def test_bad_records_get_a_reason(api: Api):
    await _lab(api)
    cases = [
        ({"kind": "explosion"}, 422),
        ({"kind": "repair", "cost": -5}, 422),
        ({"kind": "repair", "at": "yesterday-ish"}, 400),
        ({"kind": "repair", "at": "2999-01-01T00:00:00Z"}, 400),
        ({"kind": "repair", "part": ""}, 400),
    ]
    for body, status in cases:
        r = await api.http.post(f"{V1}/devices/m1/maintenance", headers=api.admin, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json().get("message") or r.json().get("detail"), r.text
    r = await api.http.post(
        f"{V1}/devices/ghost/maintenance", headers=api.admin, json={"kind": "repair"}
    )
    assert r.status_code == 404


async def test_csv_import_is_all_or_nothing_and_exports_what_it_imports(api: Api):
    await _lab(api)
    good = (
        "device,at,kind,part,cost,note\n"
        "m1,2026-10-01T00:00:00Z,failure,bearing,,seized\n"
        "m1,2026-10-01T06:00:00Z,replacement,bearing,380.5,\n"
        "m2,1759305600000,inspection,,,all fine\n"
    )
    bad = good + "m2,2026-10-02T00:00:00Z,oops,,,\nm9,2026-10-02T00:00:00Z,repair,,,\n"
    url = f"{V1}/projects/lab/maintenance/import"
    r = await api.http.post(url, headers={**api.admin, "content-type": "text/csv"}, content=bad)
    assert r.status_code == 400 and "line 5" in r.json()["message"], r.text
    assert api.ctx.registry.list_maintenance(project="lab") == []
    r = await api.http.post(
        url,
        headers={**api.admin, "content-type": "text/csv"},
        content=good + "m9,2026-10-02T00:00:00Z,repair,,,\n",
    )
    assert r.status_code == 400 and "m9" in r.json()["message"]
    r = await api.http.post(
        url, headers={**api.admin, "content-type": "text/csv"}, content="a,b\n1,2\n"
    )
    assert r.status_code == 400 and "no device, at, kind column" in r.json()["message"]
    r = await api.http.post(url, headers={**api.admin, "content-type": "text/csv"}, content=good)
    assert r.status_code == 201 and r.json() == {"imported": 3}
    r = await api.http.get(f"{V1}/projects/lab/maintenance?format=csv", headers=api.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["device"], x["kind"], x["cost"]) for x in rows] == [
        ("m1", "replacement", "380.5"),
        ("m1", "failure", ""),
        ("m2", "inspection", ""),
    ]


async def test_another_tenant_sees_nothing_and_names_resolve_in_the_callers_tenant(api: Api):
    await _lab(api)
    r = await api.http.post(f"{V1}/tenants", json={"name": "Acme", "id": "acme"}, headers=api.admin)
    acme = r.json()["admin_key"]["token"]
    r = await api.http.get(f"{V1}/devices/m1/maintenance", headers=api.auth(acme))
    assert r.status_code == 404
    r = await api.http.get(f"{V1}/projects/lab/maintenance", headers=api.auth(acme))
    assert r.status_code == 404
    r = await api.http.post(
        f"{V1}/projects/lab/maintenance/import",
        headers={**api.auth(acme), "content-type": "text/csv"},
        content="device,at,kind\nm1,now,repair\n",
    )
    assert r.status_code == 404
    await api.project("line", key=acme)
    await api.device("acme~line", device_id="press", key=acme)
    r = await api.http.post(
        f"{V1}/projects/acme~line/maintenance/import",
        headers={**api.auth(acme), "content-type": "text/csv"},
        content="device,at,kind\npress,now-1h,failure\nacme~press,now,repair\n",
    )
    assert r.status_code == 201 and r.json() == {"imported": 2}, r.text
    r = await api.http.get(f"{V1}/devices/acme~press/maintenance", headers=api.auth(acme))
    assert [e["kind"] for e in r.json()] == ["repair", "failure"]
