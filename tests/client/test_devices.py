"""Projects, device types, devices, credentials, twins and commands through the SDK."""

from __future__ import annotations

import pytest

import atoll
from atoll.client import DetectorBinding, Metric
from tests.client.conftest import wait_for


def test_projects(client):
    project = client.create_project("Lab", id="lab", retention_days=30)
    assert project.retention_days == 30 and [p.id for p in client.projects()] == ["lab"]
    assert client.update_project("lab", name="Lab 2").retention_days == 30  # left as it was
    assert client.project("lab").name == "Lab 2"
    assert client.update_project("lab", retention_days=None).retention_days is None
    assert client.set_retention("lab", 7).retention_days == 7
    with pytest.raises(atoll.InvalidInput, match="retention_days"):
        client.update_project("lab", retention_days=0)
    client.delete_project("lab")
    with pytest.raises(atoll.NotFound):
        client.project("lab")


def test_device_types(client):
    client.create_project("Lab", id="lab")
    dt = client.create_device_type(
        "lab", "thermo", [Metric("temperature", unit="°C", min=-40, max=85)]
    )
    assert dt.metrics == (Metric("temperature", "float", "°C", -40, 85),)
    assert client.device_type("lab", "thermo") == dt
    changed = client.update_device_type(
        "lab", "thermo", name="Thermometer", metrics=[*dt.metrics, {"name": "battery", "unit": "%"}]
    )
    assert changed.name == "Thermometer" and [m.name for m in changed.metrics] == [
        "temperature",
        "battery",
    ]
    assert client.update_device_type("lab", "thermo", name="T").metrics == changed.metrics
    assert changed.detectors == ()
    bound = client.update_device_type(
        "lab", "thermo", detectors=[DetectorBinding("ewma", ("temperature",), decision={})]
    )
    assert bound.detectors == (DetectorBinding("ewma", ("temperature",), decision={}),)
    assert client.device_type("lab", "thermo").detectors == bound.detectors
    assert client.update_device_type("lab", "thermo", name="T2").detectors == bound.detectors
    with pytest.raises(atoll.InvalidInput, match="undeclared"):
        client.update_device_type("lab", "thermo", detectors=[{"metrics": ["nope"]}])
    client.register_device("lab", id="s1", device_type="thermo")
    with pytest.raises(atoll.Conflict):
        client.delete_device_type("lab", "thermo")  # in use
    client.delete_device("s1")
    client.delete_device_type("lab", "thermo")
    assert client.device_types("lab") == []
    with pytest.raises(atoll.NotFound):
        client.device_type("lab", "thermo")


def test_devices_and_credentials(server, client):
    client.create_project("Lab", id="lab")
    client.create_device_type("lab", "thermo", [{"name": "temperature"}])
    reg = client.register_device("lab", id="s1", device_type="thermo", labels={"room": "a"})
    assert reg.device.id == "s1" and reg.credentials.secret not in repr(reg)
    assert client.device("s1").labels == {"room": "a"} and client.device("s1").has_credentials
    with pytest.raises(atoll.Conflict):
        client.register_device("lab", id="s1")
    with pytest.raises(atoll.NotFound):
        client.device("nope")
    many = client.register_devices("lab", ["m1", {"id": "m2", "device_type": "thermo"}])
    assert [r.device.id for r in many] == ["m1", "m2"] and many[1].device.device_type == "thermo"
    assert [d.id for d in client.devices("lab", search="M2")] == ["m2"]
    assert [d.id for d in client.devices("lab", device_type="thermo")] == ["m2", "s1"]
    assert [d.id for d in client.devices("lab", limit=1, offset=1)] == ["m2"]
    assert client.update_device("m1", name="Spare", labels={"x": "1"}).name == "Spare"
    assert client.disable_device("m1").disabled and not client.disable_device("m1", False).disabled

    with atoll.DeviceClient(server.url, "s1", reg.credentials.secret) as dev:
        dev.send({"temperature": 1})
    # last_seen is written behind the ingest path
    assert [d.id for d in wait_for(lambda: client.devices("lab", status="online"))] == ["s1"]
    new = client.rotate_credentials("s1")
    with pytest.raises(atoll.Unauthenticated) as err:
        atoll.DeviceClient(server.url, "s1", reg.credentials.secret).send({"temperature": 1})
    assert err.value.hint
    assert atoll.DeviceClient(server.url, "s1", new.secret).send({"temperature": 1}) == 1
    client.revoke_credentials("s1")
    assert not client.device("s1").has_credentials
    with pytest.raises(atoll.Unauthenticated):
        atoll.DeviceClient(server.url, "s1", new.secret).send({"temperature": 1})
    with pytest.raises(atoll.InvalidInput):
        atoll.DeviceClient(server.url, "m2", many[1].credentials.secret).send({"humidity": 3})

    def rejections(device):
        server.registry.flush_rejections()  # counted in memory, written in the background
        return {(r.transport, r.reason) for r in client.rejections(device)}

    assert wait_for(lambda: rejections("s1")) == {("http", "unauthenticated")}
    assert wait_for(lambda: rejections("m2")) == {("http", "unknown_series")}
    client.delete_device("m2")
    assert "device.delete" in {e.action for e in client.audit()}

    viewer = client.create_api_key("ro", "viewer")
    with atoll.Client(server.url, viewer.token) as ro:
        with pytest.raises(atoll.Forbidden, match="operator"):
            ro.register_device("lab")
        assert ro.device("s1").id == "s1"


def test_twins_and_commands(server, client):
    client.create_project("Lab", id="lab")
    secret = client.register_device("lab", id="s1").credentials.secret
    twin = client.update_desired("s1", {"interval": 5, "mode": "eco"})
    assert twin.desired_version == 1 and twin.desired_updated_at is not None
    assert client.update_desired("s1", {"mode": None}).desired == {"interval": 5}
    cmd = client.send_command("s1", "reboot", {"delay": 1}, ttl_s=60)
    assert cmd.status == "pending" and cmd.expires_at > cmd.created_at
    with atoll.DeviceClient(server.url, "s1", secret) as dev:
        dev.report({"fw": "1.0"})
        (polled,) = dev.pending_commands()
        dev.ack(polled.id, ok=False, result="busy")
    assert client.twin("s1").reported == {"fw": "1.0"}
    assert client.command("s1", cmd.id).status == "failed"
    assert [c.id for c in client.commands("s1", status="failed")] == [cmd.id]
    assert client.commands("s1", status="pending") == []


def test_maintenance_records(client):
    client.create_project("Plant", id="plant-m")
    client.register_device("plant-m", id="press-1")
    failure = client.record_maintenance(
        "press-1", "failure", at="2026-11-02T08:15:00Z", part="bearing", cost=420.0, note="seized"
    )
    assert failure.kind == "failure" and failure.at.year == 2026 and failure.cost == 420.0
    client.record_maintenance("press-1", "replacement", at="2026-11-02T12:00:00Z", part="bearing")
    assert [e.kind for e in client.maintenance("press-1")] == ["replacement", "failure"]
    n = client.import_maintenance(
        "plant-m", "device,at,kind\npress-1,2026-10-01T00:00:00Z,inspection\n"
    )
    assert n == 1 and len(client.maintenance(project="plant-m", kind="inspection")) == 1
    client.delete_maintenance("press-1", failure.id)
    assert [e.kind for e in client.maintenance("press-1")] == ["replacement", "inspection"]
    with pytest.raises(atoll.InvalidInput, match="line 2"):
        client.import_maintenance("plant-m", "device,at,kind\npress-1,now,broken\n")
    with pytest.raises(ValueError):
        client.maintenance()
