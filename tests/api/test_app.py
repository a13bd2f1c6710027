import types

import httpx

from atoll.api import create_app
from atoll.api.app import CORE_ROUTERS, PREFIX


async def test_health_and_openapi(api):
    r = await api.http.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    spec = (await api.http.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/projects/{project}/devices",
        "/api/v1/devices/{device}/credentials/rotate",
        "/api/v1/devices/{device}/series/{metric}",
        "/api/v1/ingest/telemetry",
        "/api/v1/devices/{device}/twin/desired",
        "/api/v1/auth/login",
    ):
        assert path in spec["paths"], path
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("summary"), f"{path} lacks a summary"
    for module in CORE_ROUTERS:
        for route in module.router.routes:
            for op in spec["paths"][PREFIX + route.path].values():
                assert "404" in op["responses"], f"{route.path} does not document its errors"
    assert set(spec["components"]["schemas"]["ErrorOut"]["properties"]) == {
        "error",
        "message",
        "hint",
    }
    assert (await api.http.get("/docs")).status_code == 200


async def test_errors_have_the_contract_shape(api):
    r = await api.http.get("/api/v1/projects")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated" and "hint" in r.json()
    r = await api.http.get("/api/v1/projects", headers=api.auth("atk_nope_nope"))
    assert r.status_code == 401 and "invalid" in r.json()["message"]
    r = await api.http.get("/api/v1/no-such-route", headers=api.admin)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.http.post("/api/v1/projects", json={"id": "x"}, headers=api.admin)
    assert r.status_code == 422 and "name" in r.json()["message"]
    r = await api.http.post("/api/v1/projects", content=b"{not json", headers=api.admin)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    r = await api.http.post(
        "/api/v1/projects", json={"name": "x", "id": "Bad Id"}, headers=api.admin
    )
    assert r.status_code == 400 and "hint" in r.json()


async def test_oversize_body_is_413(api):
    big = b"[" + b"1," * 40_000 + b"1]"
    r = await api.http.post("/api/v1/projects", content=big, headers=api.admin)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(100):
            yield b"x" * 1024

    r = await api.http.post("/api/v1/projects", content=chunks(), headers=api.admin)
    assert r.status_code == 413


async def test_extension_routers_are_included(api):
    from fastapi import APIRouter

    mod = types.ModuleType("atoll_test_ext")
    mod.router = APIRouter()

    @mod.router.get("/ext-ping")
    def ping():
        return {"pong": True}

    app = create_app(api.ctx, extensions=(mod,))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/api/v1/ext-ping")).json() == {"pong": True}
        # Only the extensions given: no rules routes, and no console (``/`` goes to the docs).
        assert (await c.get("/api/v1/projects/lab/rules", headers=api.admin)).status_code == 404
        assert (await c.get("/")).headers["location"] == "/docs"


async def test_rules_and_alarms_answer_503_with_a_reason_without_the_rules_service(api):
    assert api.ctx.rules is None  # a node that does not run it
    await api.project("lab")
    for path in ("/projects/lab/rules", "/alarms", "/projects/lab/channels"):
        r = await api.http.get("/api/v1" + path, headers=api.admin)
        assert r.status_code == 503, (path, r.text)
        assert r.json()["message"] == "the rules service is not running in this process"
        assert "atoll up" in r.json()["hint"]


async def test_login_gives_a_session_token(api):
    r = await api.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"}
    )
    assert r.status_code == 401
    r = await api.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": api.password}
    )
    assert r.status_code == 200
    session = r.json()
    me = await api.http.get("/api/v1/auth/me", headers=api.auth(session["token"]))
    assert me.json()["role"] == "admin" and me.json()["tenant"] == "default"
    assert (
        await api.http.post("/api/v1/auth/logout", headers=api.auth(session["token"]))
    ).status_code == 204
    assert (
        await api.http.get("/api/v1/auth/me", headers=api.auth(session["token"]))
    ).status_code == 401
    # Logging out with an API key does not revoke the key.
    assert (await api.http.post("/api/v1/auth/logout", headers=api.admin)).status_code == 204
    assert (await api.http.get("/api/v1/auth/me", headers=api.admin)).status_code == 200
