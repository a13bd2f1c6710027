"""The SDK against a real uvicorn server on an ephemeral port, and against the whole platform."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

import atoll
from tests.api.serving import ApiServer


def test_public_surface_is_guarded():
    assert sorted(atoll.__all__) == sorted([
        "AtollError", "Client", "Conflict", "DeviceClient", "Forbidden", "InvalidInput", "NotFound",
        "PayloadTooLarge", "Unauthenticated", "Unavailable", "__version__",
    ])
    for name in atoll.__all__:
        assert getattr(atoll, name) is not None, name
    assert issubclass(atoll.NotFound, atoll.AtollError)
    with pytest.raises(AttributeError):
        atoll.NoSuchThing  # noqa: B018


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s:
        yield s


def test_sdk_end_to_end(server):
    with atoll.Client(server.url, server.boot.api_key) as c:
        project = c.create_project("Lab", id="lab", retention_days=30)
        assert project.retention_days == 30 and [p.id for p in c.projects()] == ["lab"]
        dt = c.create_device_type("lab", "thermo", [{"name": "temperature", "unit": "°C", "min": -40, "max": 85}])
        assert dt.metrics[0].unit == "°C"
        reg = c.register_device("lab", id="s1", device_type="thermo", labels={"room": "a"})
        assert reg.device.id == "s1" and reg.credentials.secret not in repr(reg)

        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        with atoll.DeviceClient(server.url, "s1", reg.credentials.secret) as dev:
            assert dev.send({"temperature": 21.5}, ts=t0) == 1
            assert dev.send_batch([(t0 + timedelta(seconds=i), {"temperature": 20 + i}) for i in range(1, 5)]) == 4
            with pytest.raises(atoll.InvalidInput, match="humidity"):
                dev.send({"humidity": 3})
            assert dev.report({"fw": "1.0"}).reported == {"fw": "1.0"}

        raw = c.raw("s1", "temperature", start=t0, end=t0 + timedelta(hours=1))
        assert raw.value == [21.5, 21, 22, 23, 24] and raw.times()[0] == t0
        assert len(c.chart("s1", "temperature", start=t0, end=t0 + timedelta(hours=1), width=10)) >= 2
        b = c.buckets("s1", "temperature", start=t0, end=t0 + timedelta(minutes=1), bucket="1m")
        assert b["count"] == [5] and b["max"] == [24]
        assert [(x.metric, x.value) for x in c.latest("lab")] == [("temperature", 24)]
        assert [s.metric for s in c.series("s1")] == ["temperature"]

        twin = c.update_desired("s1", {"interval": 5})
        assert twin.desired_version == 1 and c.twin("s1").reported == {"fw": "1.0"}
        cmd = c.send_command("s1", "reboot", {"delay": 1})
        assert cmd.status == "pending"
        with atoll.DeviceClient(server.url, "s1", reg.credentials.secret) as dev:
            assert dev.desired() == ({"interval": 5}, 1)
            (polled,) = dev.pending_commands()
            assert dev.ack(polled.id, result="ok").status == "acked"
        assert c.command("s1", cmd.id).result == "ok"

        new = c.rotate_credentials("s1")
        with pytest.raises(atoll.Unauthenticated) as err:
            atoll.DeviceClient(server.url, "s1", reg.credentials.secret).send({"temperature": 1})
        assert err.value.hint
        assert atoll.DeviceClient(server.url, "s1", new.secret).send({"temperature": 1}) == 1
        c.revoke_credentials("s1")
        with pytest.raises(atoll.Unauthenticated):
            atoll.DeviceClient(server.url, "s1", new.secret).send({"temperature": 1})
        server.registry.flush_rejections()
        assert {r.reason for r in c.rejections("s1")} >= {"unknown_series", "unauthenticated"}

        with pytest.raises(atoll.NotFound):
            c.device("nope")
        with pytest.raises(atoll.Conflict):
            c.register_device("lab", id="s1")
        assert "device.create" in {e.action for e in c.audit(limit=500)}
        many = c.register_devices("lab", ["m1", {"id": "m2", "device_type": "thermo"}])
        assert [r.device.id for r in many] == ["m1", "m2"] and many[1].device.device_type == "thermo"
        assert [d.id for d in c.devices("lab", search="M2")] == ["m2"]
        assert [d.id for d in c.devices("lab", status="online")] == ["s1"]  # the one that sent data
        viewer = c.create_api_key("ro", "viewer")
    with atoll.Client(server.url, viewer.token) as ro:
        with pytest.raises(atoll.Forbidden, match="operator"):
            ro.register_device("lab")
        assert ro.device("s1").id == "s1"
    with atoll.Client.login(server.url, "admin", server.boot.password) as console:
        assert [p.id for p in console.projects()] == ["lab"]
    with pytest.raises(atoll.Unauthenticated):
        atoll.Client.login(server.url, "admin", "not-the-password")


def test_unreachable_server_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with atoll.Client(f"http://127.0.0.1:{port}", "atk_x_y", timeout=2) as c, pytest.raises(atoll.Unavailable):
        c.projects()
    assert time.monotonic() - start < 5


@pytest.fixture
def platform(tmp_path):
    from atoll.config import Settings
    from atoll.platform import Platform

    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", store_url="memory://",
                        services=["rules", "retention"])
    ready, stop, box = threading.Event(), threading.Event(), {}

    async def main():
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        async with Platform(settings, password_hasher=hasher) as p:
            box["p"] = p
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(60), "platform did not start"
    yield box["p"]
    stop.set()
    thread.join(30)


def test_rules_and_alarms_through_the_sdk(platform):
    with atoll.Client(platform.http_url, platform.bootstrap.api_key) as c:
        c.create_project("Plant", id="plant")
        c.create_device_type("plant", "boiler", [{"name": "temperature", "unit": "°C"}])
        reg = c.register_device("plant", id="b1", device_type="boiler")
        done = c.import_rules("plant", {"rules": [{
            "name": "Boiler too hot", "severity": "major", "target": {"device_type": "boiler"},
            "condition": {"type": "threshold", "metric": "temperature", "op": ">", "value": 90}}]})
        assert done["rules"] == ["boiler-too-hot"]
        assert [r["id"] for r in c.rules("plant")] == ["boiler-too-hot"]
        with atoll.DeviceClient(platform.http_url, "b1", reg.credentials.secret) as dev:
            dev.send({"temperature": 95})
        deadline = time.monotonic() + 20
        while not (alarms := c.alarms(project="plant", status="active")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alarms and alarms[0]["device"] == "b1"
        alarm_id = alarms[0]["id"]
        c.ack_alarm(alarm_id, comment="on it")
        c.comment_alarm(alarm_id, "burner swapped")
        assert c.alarm(alarm_id)["acknowledged"] is True
        with pytest.raises(atoll.Conflict):
            c.ack_alarm(alarm_id)
        c.clear_alarm(alarm_id)
        assert c.alarms(project="plant", status="active") == []
        with pytest.raises(atoll.InvalidInput, match="value"):
            c.create_rule("plant", {"name": "broken", "condition": {"type": "threshold", "metric": "t"}})
        c.delete_rule("plant", "boiler-too-hot")
        assert c.rules("plant") == []
