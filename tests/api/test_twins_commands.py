"""Twins and commands end to end: API → MQTT broker (a real Mosquitto) → device → ack over HTTP."""

import asyncio
import json
import queue
import shutil
import socket
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from atoll.api.sender import TopicCommandSender
from atoll.core import topics

V1 = "/api/v1"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path):
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"mosquitto did not start: {proc.stderr.read().decode()}")
    yield port
    proc.terminate()
    proc.wait(5)


def _client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


@pytest.fixture
def sender(api, broker):
    pub = _client(broker, "atoll-api")

    async def publish(topic, payload, *, qos=1, retain=False):
        info = pub.publish(topic, payload, qos=qos, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    api.ctx.commands = TopicCommandSender(publish)
    yield broker
    pub.loop_stop()
    pub.disconnect()


def _device_listener(port: int, device: str) -> queue.Queue:
    got: queue.Queue = queue.Queue()
    c = _client(port, device)
    c.on_message = lambda _c, _u, msg: got.put((msg.topic, json.loads(msg.payload), msg.retain))
    c.subscribe([(topics.twin_desired(device), 1), (topics.command(device, "+"), 1)])
    time.sleep(0.2)
    got.client = c  # keep it alive with the queue
    return got


async def _next(q: queue.Queue):
    return await asyncio.to_thread(q.get, True, 5)


async def test_desired_twin_merges_versions_and_publishes_retained(api, sender):
    await api.project()
    dev = await api.device()
    r = await api.http.patch(
        f"{V1}/devices/s1/twin/desired",
        json={"interval": 10, "led": {"r": 1, "g": 2}},
        headers=api.admin,
    )
    assert r.status_code == 200 and r.json()["desired_version"] == 1
    r = await api.http.patch(
        f"{V1}/devices/s1/twin/desired", json={"led": {"g": None}}, headers=api.admin
    )
    assert (
        r.json()["desired"] == {"interval": 10, "led": {"r": 1}}
        and r.json()["desired_version"] == 2
    )
    # A device connecting later still gets the newest desired document (retained).
    got = _device_listener(sender, "s1")
    topic, doc, retained = await _next(got)
    assert topic == topics.twin_desired("s1") and retained
    assert doc == {"interval": 10, "led": {"r": 1}, "$version": 2}
    # The HTTP side of the device contract.
    r = await api.http.get(f"{V1}/ingest/twin/desired", auth=dev)
    assert r.json() == {"desired": {"interval": 10, "led": {"r": 1}}, "version": 2}
    r = await api.http.put(
        f"{V1}/ingest/twin/reported", auth=dev, json={"interval": 10, "fw": "1.0"}
    )
    assert r.status_code == 200 and r.json()["reported_version"] == 1
    twin = (await api.http.get(f"{V1}/devices/s1/twin", headers=api.admin)).json()
    assert twin["reported"] == {"interval": 10, "fw": "1.0"} and twin["desired_version"] == 2
    r = await api.http.put(f"{V1}/ingest/twin/reported", auth=dev, content=b"[1,2]")
    assert r.status_code == 400
    r = await api.http.patch(f"{V1}/devices/s1/twin/desired", content=b"[1]", headers=api.admin)
    assert r.status_code == 422


async def test_command_is_delivered_over_mqtt_and_acked(api, sender):
    await api.project()
    dev = await api.device()
    got = _device_listener(sender, "s1")
    r = await api.http.post(
        f"{V1}/devices/s1/commands",
        json={"name": "reboot", "args": {"delay": 5}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    cmd = r.json()
    assert cmd["status"] == "delivered"
    topic, payload, _ = await _next(got)
    assert (
        topic == topics.command("s1", cmd["id"])
        and payload["name"] == "reboot"
        and payload["args"] == {"delay": 5}
    )
    r = await api.http.post(
        f"{V1}/ingest/commands/{cmd['id']}/ack",
        auth=dev,
        json={"status": "ok", "result": {"up": True}},
    )
    assert r.status_code == 200 and r.json()["status"] == "acked"
    r = await api.http.get(f"{V1}/devices/s1/commands/{cmd['id']}", headers=api.admin)
    assert r.json()["status"] == "acked" and r.json()["result"] == {"up": True}
    # A second ack for a finished command is refused; so is an unknown command.
    r = await api.http.post(
        f"{V1}/ingest/commands/{cmd['id']}/ack", auth=dev, json={"status": "ok"}
    )
    assert r.status_code == 409
    r = await api.http.post(f"{V1}/ingest/commands/c-nope/ack", auth=dev, json={"status": "ok"})
    assert r.status_code == 404


async def test_http_devices_poll_commands_and_commands_expire(api):
    await api.project()
    dev = await api.device()
    r = await api.http.post(f"{V1}/devices/s1/commands", json={"name": "blink"}, headers=api.admin)
    assert r.json()["status"] == "pending"  # no MQTT sender attached
    r = await api.http.post(
        f"{V1}/devices/s1/commands", json={"name": "late", "ttl_s": 0.05}, headers=api.admin
    )
    await asyncio.sleep(0.1)
    polled = (await api.http.get(f"{V1}/ingest/commands", auth=dev)).json()
    assert [c["name"] for c in polled] == ["blink"] and polled[0]["status"] == "delivered"
    assert (await api.http.get(f"{V1}/ingest/commands", auth=dev)).json() == []
    r = await api.http.post(
        f"{V1}/ingest/commands/{polled[0]['id']}/ack",
        auth=dev,
        json={"status": "error", "result": "no led"},
    )
    assert r.json()["status"] == "failed"
    listed = (await api.http.get(f"{V1}/devices/s1/commands", headers=api.admin)).json()
    assert {c["name"]: c["status"] for c in listed} == {"blink": "failed", "late": "expired"}
    r = await api.http.post(f"{V1}/devices/s1/commands", json={"name": ""}, headers=api.admin)
    assert r.status_code == 422
    await api.http.patch(f"{V1}/devices/s1", json={"disabled": True}, headers=api.admin)
    r = await api.http.post(f"{V1}/devices/s1/commands", json={"name": "x"}, headers=api.admin)
    assert r.status_code == 400 and "disabled" in r.json()["message"]


async def test_offline_device_gets_pending_commands_when_it_connects(api, broker):
    from atoll.api.sender import redeliver

    pub = _client(broker, "atoll-api-2")
    online: set[str] = set()

    async def publish(topic, payload, *, qos=1, retain=False):
        await asyncio.to_thread(
            pub.publish(topic, payload, qos=qos, retain=retain).wait_for_publish, 5
        )

    sender = TopicCommandSender(publish, connected=online.__contains__)
    api.ctx.commands = sender
    await api.project()
    await api.device()
    r = await api.http.post(f"{V1}/devices/s1/commands", json={"name": "first"}, headers=api.admin)
    assert r.json()["status"] == "pending"
    got = _device_listener(broker, "s1")
    online.add("s1")
    assert await redeliver(sender, api.ctx.registry, "s1") == 1
    topic, payload, _ = await _next(got)
    assert topic == topics.command("s1", payload["id"])
    assert payload["name"] == "first" and payload["id"] == r.json()["id"]
    assert api.ctx.registry.get_command("s1", payload["id"]).status == "delivered"
    assert await redeliver(sender, api.ctx.registry, "s1") == 0
    pub.loop_stop()
    pub.disconnect()
