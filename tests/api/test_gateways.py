"""Gateways over REST, the SDK and the CLI against a real server (uvicorn, registry, ingest):
registration with ``kind`` and ``parent``, children listed by gateway, a gateway not deleted
while it has children, and ``POST /ingest/gateway/telemetry`` (docs/DEVICES.md, "Gateways")."""

import json

import httpx
import pytest
from typer.testing import CliRunner

import atoll as sdk
from atoll.cli.main import app
from atoll.core.points import SeriesKey
from tests.api.serving import ApiServer

END = 2**62


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ApiServer(tmp_path_factory.mktemp("gateways")) as s:
        yield s


@pytest.fixture(scope="module")
def lab(server):
    """Tenant acme: project line with gateway edge (children press-1, press-2), gateway
    other-gw (child press-9), plain device plain; tenant beta: device b1."""
    admin = sdk.Client(server.url, server.boot.api_key)
    acme_key = admin.create_tenant("Acme", id="acme")[1].token
    beta_key = admin.create_tenant("Beta", id="beta")[1].token
    c = sdk.Client(server.url, acme_key)
    line = c.create_project("Line", id="line").id
    c.create_device_type(line, "press", [{"name": "force", "min": 0, "max": 100}])
    gw = c.register_device(line, id="edge", kind="gateway")
    c.register_device(line, id="press-1", device_type="press", parent="edge")
    c.register_devices(
        line,
        [
            {"id": "press-2", "device_type": "press", "parent": gw.device.id},
            {"id": "other-gw", "kind": "gateway"},
            {"id": "press-9", "device_type": "press", "parent": "other-gw"},
            {"id": "plain", "device_type": "press"},
        ],
    )
    b = sdk.Client(server.url, beta_key)
    b.register_device(b.create_project("Beta line", id="bline").id, id="b1")
    yield c, line, gw
    c.close()
    b.close()
    admin.close()


def test_gateways_and_children_over_rest_and_the_sdk(server, lab):
    c, line, gw = lab
    assert (gw.device.id, gw.device.kind, gw.device.parent) == ("acme~edge", "gateway", None)
    kids = c.devices(line, parent="acme~edge")
    assert [(d.id, d.parent) for d in kids] == [
        ("acme~press-1", "acme~edge"),
        ("acme~press-2", "acme~edge"),
    ]
    assert [d.id for d in c.devices(line, kind="gateway")] == ["acme~edge", "acme~other-gw"]
    assert c.device("acme~plain").kind == "device"
    # What a child's parent may not be: 400 with the reason.
    for parent, why in [
        ("plain", "not a gateway"),
        ("beta~b1", "invalid device id"),
        ("nobody", "not a device of project"),
    ]:
        with pytest.raises(sdk.InvalidInput, match=why):
            c.register_device(line, id="bad", parent=parent)
    with pytest.raises(sdk.InvalidInput):
        c.register_device(line, id="bad", kind="hub")
    # A gateway with children is not deleted; detached, it is.
    with pytest.raises(sdk.Conflict, match="has 2 child"):
        c.delete_device("acme~edge")
    temp = c.register_device(line, id="temp-gw", kind="gateway").device.id
    kid = c.register_device(line, id="temp-kid", parent=temp).device.id
    with pytest.raises(sdk.Conflict, match="has 1 child"):
        c.delete_device(temp)
    assert c.update_device(kid, parent=None).parent is None
    c.delete_device(temp)
    with pytest.raises(sdk.NotFound):
        c.device(temp)


def test_gateway_telemetry_over_http_stores_each_childs_part(server, lab):
    c, line, gw = lab
    with sdk.DeviceClient(server.url, gw.device.id, gw.credentials.secret) as edge:
        answer = edge.send_children(
            {
                "press-1": {"force": 12.5},
                "press-2": [(1795428000000, {"force": 1}), (1795428001000, {"force": 2})],
                "press-9": {"force": 99},  # another gateway's child
                "plain": {"force": 99},  # a plain device of its project
                "beta~b1": {"force": 99},  # another tenant's
            },
            ts=1795428000000,
        )
    assert answer["accepted"] == {"press-1": 1, "press-2": 2}
    assert set(answer["refused"]) == {"press-9", "plain", "beta~b1"}
    assert {r["reason"] for r in answer["refused"].values()} == {"gateway_child"}

    def stored(device):
        key = SeriesKey(line, device, "force")
        return server.store.query_raw(key, 0, END).value.tolist()

    assert stored("acme~press-1") == [12.5] and stored("acme~press-2") == [1.0, 2.0]
    assert stored("acme~press-9") == stored("acme~plain") == []
    # A part the child's type refuses is refused on its own, as the child's message would be.
    with sdk.DeviceClient(server.url, gw.device.id, gw.credentials.secret) as edge:
        answer = edge.send_children({"press-1": {"torque": 1}, "press-2": {"force": 3}})
    assert answer["accepted"] == {"press-2": 1}
    assert answer["refused"]["press-1"]["reason"] == "unknown_series"


def test_gateway_telemetry_over_http_refuses_a_plain_device_and_bad_bodies(server, lab):
    c, line, _gw = lab
    plain = c.rotate_credentials("acme~plain")
    url = f"{server.url}/api/v1/ingest/gateway/telemetry"
    body = {"press-1": {"values": {"force": 1}}}
    r = httpx.post(url, auth=(plain.device, plain.secret), json=body)
    assert r.status_code == 403 and "not a gateway" in r.json()["message"]
    gw = c.rotate_credentials("acme~edge")
    auth = (gw.device, gw.secret)
    for raw, status, reason in [
        (b"{not json", 400, "malformed_json"),
        (b"[]", 400, "wrong_type"),
        (b"{}", 400, "wrong_type"),
        (json.dumps({f"c{i}": {"values": {"force": 1}} for i in range(1001)}), 400, "too_large"),
    ]:
        r = httpx.post(url, auth=auth, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == status, (raw[:40], r.text)
        assert r.json()["reason"] == reason
    r = httpx.post(url, auth=("acme~edge", "wrong"), json=body)
    assert r.status_code == 401


def test_cli_registers_a_gateway_and_lists_its_children(server, lab):
    c, line, _gw = lab
    key = c.create_api_key("cli", "admin").token
    env = {"ATOLL_URL": server.url, "ATOLL_API_KEY": key}
    runner = CliRunner()
    r = runner.invoke(
        app, ["devices", "register", line, "--id", "cli-gw", "--gateway", "--json"], env=env
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["device"]["kind"] == "gateway"
    r = runner.invoke(
        app, ["devices", "register", line, "--id", "cli-kid", "--parent", "cli-gw"], env=env
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["devices", "list", line, "--parent", "acme~cli-gw", "--json"], env=env)
    assert [d["id"] for d in json.loads(r.output)] == ["acme~cli-kid"]
    r = runner.invoke(app, ["devices", "register", line, "--id", "x", "--parent", "plain"], env=env)
    assert r.exit_code == 1 and "not a gateway" in r.output and "hint" in r.output
