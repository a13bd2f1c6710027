"""The platform admin acts inside any tenant with ``X-Atoll-Tenant``; nobody else can."""

import asyncio

import pytest
import uvicorn
import websockets

from atoll.api.app import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.registry import Registry
from atoll.store.memory import MemoryStore
from tests.api.conftest import FAST_HASHER
from tests.api.test_live import _free_port, _recv
from tests.api.test_tenancy import CROSS, V1, two_tenants  # noqa: F401 - fixture reused


def _as(api, tenant: str, key: str | None = None) -> dict[str, str]:
    return {**api.auth(key or api.platform_key), "X-Atoll-Tenant": tenant}


@pytest.fixture
async def tenants(two_tenants):  # noqa: F811
    api, beta = two_tenants
    api.platform_key = (
        await api.http.post(
            f"{V1}/auth/login", json={"username": "admin", "password": api.password}
        )
    ).json()["token"]
    return api, beta


async def test_console_admin_session_lists_and_creates_devices_in_another_tenant(tenants):
    api, beta = tenants
    me = (await api.http.get(f"{V1}/auth/me", headers=_as(api, "beta"))).json()
    assert me["platform_admin"] and me["tenant"] == "beta" and me["role"] == "admin"
    listed = (await api.http.get(f"{V1}/projects", headers=_as(api, "beta"))).json()
    assert [p["id"] for p in listed] == ["beta~beta-lab"]
    assert [
        d["id"]
        for d in (
            await api.http.get(f"{V1}/projects/beta~beta-lab/devices", headers=_as(api, "beta"))
        ).json()
    ] == ["beta~b1"]
    r = await api.http.post(
        f"{V1}/projects/beta~beta-lab/devices", json={"id": "b2"}, headers=_as(api, "beta")
    )
    assert r.status_code == 201, r.text
    # Acting in beta, the admin chooses ids in beta's namespace.
    assert r.json()["device"]["id"] == "beta~b2"
    # Tenant beta's own key sees the device; without the header the admin is back home.
    assert (await api.http.get(f"{V1}/devices/beta~b2", headers=api.auth(beta))).status_code == 200
    assert (
        await api.http.get(f"{V1}/devices/beta~b2", headers=api.auth(api.platform_key))
    ).status_code == 404
    assert (await api.http.get(f"{V1}/projects", headers=api.auth(api.platform_key))).json() == []


async def test_audit_entry_lands_in_target_tenant_with_admins_identity(tenants):
    api, beta = tenants
    await api.http.patch(
        f"{V1}/devices/beta~b1", json={"name": "renamed"}, headers=_as(api, "beta")
    )
    log = (await api.http.get(f"{V1}/audit?action=device.update", headers=api.auth(beta))).json()
    assert len(log) == 1 and log[0]["target"] == "device:beta~b1"
    assert log[0]["actor"].startswith("admin (platform) via default")
    home = (
        await api.http.get(f"{V1}/audit?action=device.update", headers=api.auth(api.platform_key))
    ).json()
    assert home == []


async def test_unknown_tenant_is_404(tenants):
    api, _ = tenants
    r = await api.http.get(f"{V1}/projects", headers=_as(api, "nope"))
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_tenant_admin_naming_another_tenant_gets_404_everywhere(tenants):
    api, _ = tenants
    leaks = []
    for method, path, body in CROSS + [("GET", "/projects", None), ("GET", "/audit", None)]:
        r = await api.http.request(
            method, V1 + path, json=body, headers=_as(api, "beta", api.admin_key)
        )
        if r.status_code != 404 or r.json()["error"] != "not_found":
            leaks.append((method, path, r.status_code, r.text))
    assert leaks == []
    # Naming an unknown tenant looks the same as naming a real one.
    r = await api.http.get(f"{V1}/projects", headers=_as(api, "nope", api.admin_key))
    assert r.status_code == 404
    # Its own tenant is fine.
    r = await api.http.get(f"{V1}/projects", headers=_as(api, "alpha", api.admin_key))
    assert [p["id"] for p in r.json()] == ["alpha~alpha-lab"]


async def test_logout_while_acting_ends_the_session(tenants):
    api, _ = tenants
    assert (await api.http.post(f"{V1}/auth/logout", headers=_as(api, "beta"))).status_code == 204
    assert (
        await api.http.get(f"{V1}/auth/me", headers=api.auth(api.platform_key))
    ).status_code == 401


async def test_live_socket_with_tenant_query(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    platform = reg.bootstrap().api_key
    beta_lab = reg.create_project(
        reg.create_tenant("Beta", "beta").id, "Beta lab", project_id="beta-lab"
    ).id
    alpha = reg.create_api_key(reg.create_tenant("Alpha", "alpha").id, "a", "admin").token
    bus = MemoryBus()
    app = create_app(AppContext(registry=reg, store=MemoryStore(), bus=bus))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{port}/api/v1/live"
        async with websockets.connect(
            f"{url}?project={beta_lab}&tenant=beta&token={platform}"
        ) as ws:
            assert (await _recv(ws, lambda m: m["type"] == "hello"))["project"] == "beta~beta-lab"
        # Another tenant's key naming beta, an unknown tenant, and the admin's own (empty) tenant.
        for token, tenant in ((alpha, "beta"), (platform, "nope"), (platform, "")):
            async with websockets.connect(
                f"{url}?project={beta_lab}&tenant={tenant}&token={token}"
            ) as ws:
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
            assert info.value.rcvd.code == 4404, tenant
    finally:
        server.should_exit = True
        await task
        await bus.close()
        reg.close()
