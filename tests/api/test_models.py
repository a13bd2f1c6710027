"""The model registry over the real API and registry: register, list, versions, lifecycle with
roles and audit, 409 naming the allowed actions, cards as Markdown and JSON, tenants."""

from __future__ import annotations

from tests.api.conftest import Api

V1 = "/api/v1"
CARD = {
    "format": "atoll-rul-1",
    "kind": "rul",
    "model": "lightgbm-gbdt",
    "validation": {"rmse": 12.1, "phm08_per_100_engines": 310.0},
    "training": {"units": 100, "rows": 20631},
}


async def _register(api: Api, key: dict[str, str] | None = None, **body) -> dict:
    body = {
        "kind": "rul",
        "device_type": "motor",
        "algorithm": "lightgbm-gbdt",
        "code_version": "0.test",
        "metrics": {"rmse": 12.1},
        "params": {"cap": 125},
        "rows": 20631,
        "data_from": "2026-11-01T00:00:00Z",
        "data_to": "2026-11-30T00:00:00Z",
        "card": CARD,
        **body,
    }
    r = await api.http.post(f"{V1}/projects/lab/models", headers=key or api.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_register_approve_activate_rollback_with_roles_and_audit(api: Api):
    await api.project()
    viewer = api.auth(await api.key("viewer"))
    operator = api.auth(await api.key("operator"))
    r = await api.http.post(
        f"{V1}/projects/lab/models", headers=viewer, json={"kind": "rul", "scope": "type:motor"}
    )
    assert r.status_code == 403
    one = await _register(api, operator)
    assert (one["version"], one["state"], one["scope"]) == (1, "draft", "type:motor")
    assert one["allowed"] == ["approve", "retire"] and one["card"] == CARD
    assert one["data_from"] == "2026-11-01T00:00:00Z" and one["rows"] == 20631
    two = await _register(api, operator)
    assert two["version"] == 2

    # Viewers read; they may not change anything.
    r = await api.http.get(f"{V1}/projects/lab/models?kind=rul&state=draft", headers=viewer)
    assert [m["version"] for m in r.json()] == [2, 1]
    assert "card" not in r.json()[0]  # lists stay light; one model carries its card
    for action in ("approve", "activate", "retire", "rollback"):
        r = await api.http.post(f"{V1}/projects/lab/models/{one['id']}/{action}", headers=viewer)
        assert r.status_code == 403, action

    # An illegal transition: 409, naming the allowed ones.
    r = await api.http.post(f"{V1}/projects/lab/models/{one['id']}/activate", headers=operator)
    assert r.status_code == 409
    assert r.json()["hint"] == "allowed: approve, retire" and "draft" in r.json()["message"]

    for m in (one, two):
        r = await api.http.post(
            f"{V1}/projects/lab/models/{m['id']}/approve",
            headers=operator,
            json={"comment": "validated on the bench"},
        )
        assert r.status_code == 200 and r.json()["model"]["state"] == "approved"
    r = await api.http.post(f"{V1}/projects/lab/models/{one['id']}/activate", headers=operator)
    assert r.json()["retired"] == []
    r = await api.http.post(f"{V1}/projects/lab/models/{two['id']}/activate", headers=operator)
    assert (r.json()["model"]["state"], r.json()["retired"]) == ("active", [one["id"]])
    r = await api.http.post(f"{V1}/projects/lab/models/{two['id']}/rollback", headers=api.admin)
    assert r.status_code == 200
    assert (r.json()["model"]["id"], r.json()["retired"]) == (one["id"], [two["id"]])
    r = await api.http.get(f"{V1}/projects/lab/models/{two['id']}/versions", headers=viewer)
    assert [(m["version"], m["state"]) for m in r.json()] == [(2, "retired"), (1, "active")]
    got = (await api.http.get(f"{V1}/projects/lab/models/{one['id']}", headers=viewer)).json()
    assert got["approved_by"].startswith("operator") and got["activated_at"]
    assert got["allowed"] == ["retire", "rollback"]

    r = await api.http.get(f"{V1}/audit?target=model:{two['id']}", headers=api.admin)
    assert r.status_code == 200, r.text
    actions = [e["action"] for e in r.json()]
    assert sorted(actions) == [
        "model.activate",
        "model.approve",
        "model.register",
        "model.rollback",
    ]
    approve = next(e for e in r.json() if e["action"] == "model.approve")
    assert approve["detail"]["comment"] == "validated on the bench"


async def test_cards_as_markdown_and_json(api: Api):
    await api.project()
    m = await _register(api, scope="series:pump-1/temp", device_type=None)
    r = await api.http.get(f"{V1}/projects/lab/models/{m['id']}/card", headers=api.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    md = r.text
    assert md.startswith("# Model card: rul `series:pump-1/temp` v1")
    assert "| Training rows | 20631 |" in md and "- **rmse**: 12.1" in md
    assert '"phm08_per_100_engines": 310.0' in md
    r = await api.http.get(
        f"{V1}/projects/lab/models/{m['id']}/card?format=json", headers=api.admin
    )
    doc = r.json()
    assert doc["card"] == CARD and doc["registry"]["state"] == "draft"
    assert doc["registry"]["version"] == 1
    r = await api.http.get(f"{V1}/projects/lab/models/{m['id']}/card?format=pdf", headers=api.admin)
    assert r.status_code == 422


async def test_bad_input_is_refused_with_a_reason(api: Api):
    await api.project()
    url = f"{V1}/projects/lab/models"
    cases = [
        ({"kind": "rul"}, 400, "name the scope once"),
        ({"kind": "rul", "scope": "type:a", "device_type": "a"}, 400, "name the scope once"),
        ({"kind": "rul", "device": "d"}, 400, "name the scope once"),
        ({"kind": "rul", "scope": "motor"}, 400, "invalid model scope"),
        ({"kind": "oracle", "scope": "type:a"}, 422, ""),
        ({"kind": "rul", "scope": "type:a", "data_from": "yesterday-ish"}, 400, ""),
        (
            {"kind": "rul", "scope": "type:a", "data_from": "2026-11-02", "data_to": "2026-11-01"},
            400,
            "after",
        ),
        ({"kind": "rul", "scope": "type:a", "card": [1, 2]}, 422, ""),
        ({"kind": "rul", "scope": "type:a", "rows": -1}, 422, ""),
    ]
    for body, status, words in cases:
        r = await api.http.post(url, headers=api.admin, json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json().get("message", ""), (body, r.text)
    r = await api.http.get(f"{url}?state=happy", headers=api.admin)
    assert r.status_code == 422
    r = await api.http.post(f"{url}/mdl-nope/approve", headers=api.admin)
    assert r.status_code == 404


async def test_another_tenant_sees_nothing(api: Api):
    await api.project()
    m = await _register(api)
    beta = (await api.http.post(f"{V1}/tenants", json={"name": "Beta"}, headers=api.admin)).json()
    other = api.auth(beta["admin_key"]["token"])
    for method, path in (
        ("GET", "/projects/lab/models"),
        ("GET", f"/projects/lab/models/{m['id']}"),
        ("GET", f"/projects/lab/models/{m['id']}/versions"),
        ("GET", f"/projects/lab/models/{m['id']}/card"),
        ("POST", f"/projects/lab/models/{m['id']}/approve"),
        ("POST", f"/projects/lab/models/{m['id']}/retire"),
    ):
        r = await api.http.request(method, V1 + path, headers=other)
        assert r.status_code == 404, (method, path, r.text)
    r = await api.http.post(
        f"{V1}/projects/lab/models", headers=other, json={"kind": "rul", "scope": "type:x"}
    )
    assert r.status_code == 404
    # Beta's own project with a model of the same id space never meets lab's.
    await api.project("mine", key=beta["admin_key"]["token"])
    r = await api.http.get(f"{V1}/projects/beta~mine/models/{m['id']}", headers=other)
    assert r.status_code == 404
    r = await api.http.get(f"{V1}/projects/lab/models/{m['id']}", headers=api.admin)
    assert r.json()["state"] == "draft"  # untouched
