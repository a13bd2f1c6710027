"""Tenant A's key can never read or write tenant B's things: always 404, never 403."""

import pytest

V1 = "/api/v1"


async def _tenant(api, tid: str) -> str:
    r = await api.http.post(
        f"{V1}/tenants", json={"name": tid.title(), "id": tid}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    return r.json()["admin_key"]["token"]


@pytest.fixture
async def two_tenants(api):
    """Tenant alpha's admin key becomes ``api.admin``; beta's key is returned. Ids chosen in a
    tenant are stored in its namespace: alpha's ``a1`` is ``alpha~a1``."""
    alpha, beta = await _tenant(api, "alpha"), await _tenant(api, "beta")
    api.admin_key = alpha
    assert (await api.project("alpha-lab"))["id"] == "alpha~alpha-lab"
    await api.http.post(
        f"{V1}/projects/alpha~alpha-lab/device-types",
        headers=api.admin,
        json={"id": "t", "metrics": [{"name": "x"}]},
    )
    assert (await api.device("alpha~alpha-lab", "a1"))[0] == "alpha~a1"
    assert (await api.project("beta-lab", key=beta))["id"] == "beta~beta-lab"
    dev_b, secret_b = await api.device("beta~beta-lab", "b1", key=beta)
    assert dev_b == "beta~b1"
    r = await api.http.post(
        f"{V1}/ingest/telemetry", auth=(dev_b, secret_b), json={"values": {"x": 1}}
    )
    assert r.status_code == 200, r.text
    return api, beta


CROSS = [
    ("GET", "/projects/beta~beta-lab", None),
    ("PATCH", "/projects/beta~beta-lab", {"name": "mine"}),
    ("DELETE", "/projects/beta~beta-lab", None),
    ("GET", "/projects/beta~beta-lab/devices", None),
    ("POST", "/projects/beta~beta-lab/devices", {"id": "sneaky"}),
    ("GET", "/projects/beta~beta-lab/device-types", None),
    ("POST", "/projects/beta~beta-lab/device-types", {"id": "t", "metrics": []}),
    ("GET", "/projects/beta~beta-lab/latest", None),
    ("GET", "/devices/beta~b1", None),
    ("PATCH", "/devices/beta~b1", {"disabled": True}),
    ("DELETE", "/devices/beta~b1", None),
    ("POST", "/devices/beta~b1/credentials/rotate", None),
    ("DELETE", "/devices/beta~b1/credentials", None),
    ("GET", "/devices/beta~b1/twin", None),
    ("PATCH", "/devices/beta~b1/twin/desired", {"a": 1}),
    ("POST", "/devices/beta~b1/commands", {"name": "reboot"}),
    ("GET", "/devices/beta~b1/commands", None),
    ("GET", "/devices/beta~b1/series", None),
    ("GET", "/devices/beta~b1/series/x?mode=raw", None),
    ("GET", "/devices/beta~b1/rejections", None),
    ("GET", "/tenants/beta", None),
]


async def test_other_tenant_is_invisible(two_tenants):
    api, _ = two_tenants
    leaks = []
    for method, path, body in CROSS:
        r = await api.http.request(method, V1 + path, json=body, headers=api.admin)
        if r.status_code != 404 or r.json()["error"] != "not_found":
            leaks.append((method, path, r.status_code, r.text))
    assert leaks == []


async def test_other_tenant_data_untouched_and_listing_scoped(two_tenants):
    api, beta = two_tenants
    listed = (await api.http.get(f"{V1}/projects", headers=api.admin)).json()
    assert [p["id"] for p in listed] == ["alpha~alpha-lab"]
    theirs = (
        await api.http.get(
            f"{V1}/devices/beta~b1/series/x?mode=raw&start=-1d", headers=api.auth(beta)
        )
    ).json()
    assert theirs["value"] == [1.0]
    assert (await api.http.get(f"{V1}/devices/alpha~a1", headers=api.auth(beta))).status_code == 404
    tenants = (await api.http.get(f"{V1}/tenants", headers=api.auth(beta))).json()
    assert [t["id"] for t in tenants] == ["beta"]
    # Their audit log shows only their own actions.
    log = (await api.http.get(f"{V1}/audit", headers=api.auth(beta))).json()
    assert log and all("alpha" not in e["target"] for e in log)


async def test_platform_admin_sees_tenants_but_not_their_data(api):
    await _tenant(api, "beta")
    assert {t["id"] for t in (await api.http.get(f"{V1}/tenants", headers=api.admin)).json()} == {
        "default",
        "beta",
    }
    assert (await api.http.get(f"{V1}/tenants/beta", headers=api.admin)).status_code == 200
    assert (await api.http.get(f"{V1}/projects", headers=api.admin)).json() == []


async def test_tenant_admin_cannot_create_tenants(two_tenants):
    api, beta = two_tenants
    r = await api.http.post(f"{V1}/tenants", json={"name": "Gamma"}, headers=api.auth(beta))
    assert r.status_code == 403


async def test_roles(api):
    await api.project()
    viewer = await api.key("viewer")
    operator = await api.key("operator")
    r = await api.http.post(
        f"{V1}/projects/lab/devices", json={"id": "v1"}, headers=api.auth(viewer)
    )
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert (
        await api.http.get(f"{V1}/projects/lab/devices", headers=api.auth(viewer))
    ).status_code == 200
    r = await api.http.post(
        f"{V1}/projects/lab/devices", json={"id": "o1"}, headers=api.auth(operator)
    )
    assert r.status_code == 201
    for method, path, body in [
        ("PATCH", "/devices/o1", {"name": "x"}),
        ("POST", "/devices/o1/credentials/rotate", None),
        ("PATCH", "/devices/o1/twin/desired", {"a": 1}),
        ("POST", "/devices/o1/commands", {"name": "x"}),
    ]:
        r = await api.http.request(method, V1 + path, json=body, headers=api.auth(viewer))
        assert r.status_code == 403, path
    # Operators manage devices, not projects or keys.
    r = await api.http.post(f"{V1}/projects", json={"name": "p2"}, headers=api.auth(operator))
    assert r.status_code == 403
    r = await api.http.post(
        f"{V1}/keys", json={"name": "k", "role": "admin"}, headers=api.auth(operator)
    )
    assert r.status_code == 403
    # A revoked key stops working.
    keys = (await api.http.get(f"{V1}/keys", headers=api.admin)).json()
    vid = next(k["id"] for k in keys if k["name"] == "viewer")
    assert (await api.http.delete(f"{V1}/keys/{vid}", headers=api.admin)).status_code == 200
    assert (await api.http.get(f"{V1}/projects", headers=api.auth(viewer))).status_code == 401


async def test_live_socket_refuses_other_tenants_project(tmp_path):
    import asyncio

    import uvicorn
    import websockets

    from atoll.api import AppContext, create_app
    from atoll.bus.memory import MemoryBus
    from atoll.registry import Registry
    from atoll.store.memory import MemoryStore
    from tests.api.conftest import FAST_HASHER
    from tests.api.test_live import _free_port

    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    platform = reg.bootstrap().api_key
    alpha = reg.create_api_key(reg.create_tenant("Alpha", "alpha").id, "a", "admin").token
    beta_lab = reg.create_project(
        reg.create_tenant("Beta", "beta").id, "Beta lab", project_id="beta-lab"
    ).id
    beta = reg.create_api_key("beta", "b", "viewer").token
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
        url = f"ws://127.0.0.1:{port}/api/v1/live?project={beta_lab}"
        for token in (alpha, platform):  # another tenant, and the platform admin
            async with websockets.connect(f"{url}&token={token}") as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
            assert closed.value.rcvd.code == 4404
        # The accepted path is covered against a real server in test_live.py.
        assert reg.get_project(beta_lab, reg.authenticate_key(beta).tenant).id == "beta~beta-lab"
    finally:
        server.should_exit = True
        await task
        await bus.close()
        reg.close()
