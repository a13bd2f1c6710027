"""The embedded broker with a real platform (DuckDB store, registry, API) and real paho clients."""

import asyncio
import json
import threading

import httpx
import pytest

from atoll.core import topics
from atoll.core.points import SeriesKey
from tests.ingest.conftest import CLIMATE, close, connect

END = 2**62


def points(fleet, device, metric="temperature"):
    return fleet.platform.store.query_raw(SeriesKey("lab", device, metric), 0, END).value.tolist()


def publish_all(client, topic, payloads, qos=1):
    infos = [client.publish(topic, p, qos=qos) for p in payloads]
    for i in infos:
        i.wait_for_publish(30)
    return [i.is_published() for i in infos]


async def test_qos1_telemetry_is_stored_before_puback(fleet):
    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert not rc.is_failure
    acked = await asyncio.to_thread(
        publish_all,
        c,
        topics.telemetry("s1"),
        [b'{"values": {"temperature": %d}}' % i for i in range(200)]
        + [b'[{"ts": 1795428000000, "values": {"temperature": 1, "humidity": 2, "door": true}}]'],
    )
    assert all(acked)
    # PUBACK received => the points are already in the store: no waiting here.
    assert sorted(points(fleet, "s1")) == sorted([*range(200), 1])
    assert points(fleet, "s1", "door") == [1.0]
    await asyncio.to_thread(close, c)


async def test_bad_input_over_mqtt_is_counted_and_never_crashes(fleet):
    fleet.platform.pipeline.limits = fleet.platform.pipeline.limits.__class__(max_bytes=4096)
    c, _rc = await asyncio.to_thread(fleet.connect, "s1")
    bad = [
        b'{"values": {"temperature": 1',  # malformed JSON
        b'{"values": {"temperature": "hot"}}',  # wrong type
        b'{"values": {"temperature": NaN}}',  # NaN
        b'{"values": {"temperature": 1e999}}',  # Inf
        b'{"values": {"pressure": 1}}',  # unknown series
        b"[" + b",".join([b'{"values": {"temperature": 1}}'] * 200) + b"]",  # oversize
        b'{"ts": "2099-01-01T00:00:00Z", "values": {"temperature": 1}}',  # far future
    ]
    assert all(await asyncio.to_thread(publish_all, c, topics.telemetry("s1"), bad))
    # Another device's topic, and a topic devices may not publish to.
    assert all(
        await asyncio.to_thread(
            publish_all, c, topics.telemetry("s2"), [b'{"values": {"temperature": 5}}']
        )
    )
    assert all(await asyncio.to_thread(publish_all, c, topics.twin_desired("s1"), [b'{"x": 1}']))
    # Subscribing to another device's commands is refused (SUBACK failure).
    sub = {}
    ev = threading.Event()
    c.on_subscribe = lambda cl, ud, mid, codes, props: (sub.update(codes=codes), ev.set())
    c.subscribe("atoll/v1/devices/s2/commands/+", qos=1)
    await asyncio.to_thread(ev.wait, 30)
    assert sub["codes"][0].is_failure
    # Still alive: a good message goes through on the same connection.
    assert all(
        await asyncio.to_thread(
            publish_all, c, topics.telemetry("s1"), [b'{"values": {"temperature": 7}}']
        )
    )
    assert points(fleet, "s1") == [7.0]
    assert points(fleet, "s2") == []
    await asyncio.to_thread(close, c)

    await fleet.platform.pipeline.flush_counters()
    got = fleet.rejections("s1")
    assert got == {
        "malformed_json": 1,
        "wrong_type": 1,
        "not_finite": 2,
        "unknown_series": 1,
        "too_large": 1,
        "future_timestamp": 1,
        "acl_publish": 2,
        "acl_subscribe": 1,
    }
    # ... and visible over the API.
    key = fleet.platform.bootstrap.api_key
    async with httpx.AsyncClient(base_url=fleet.platform.http_url) as http:
        r = await http.get(
            "/api/v1/devices/s1/rejections", headers={"Authorization": f"Bearer {key}"}
        )
    assert r.status_code == 200
    assert {x["reason"]: x["count"] for x in r.json() if x["transport"] == "mqtt"} == got


async def test_bad_credentials_revoked_disabled_and_unknown_devices_are_refused(fleet):
    reg = fleet.platform.registry
    _, rc = await asyncio.to_thread(fleet.connect, "s1", "wrong-secret")
    assert rc is not None and rc.is_failure
    _, rc = await asyncio.to_thread(fleet.connect, "nobody", "whatever")
    assert rc.is_failure
    reg.revoke_credentials("s2")
    _, rc = await asyncio.to_thread(fleet.connect, "s2")
    assert rc.is_failure
    reg.disable_device("s3")
    _, rc = await asyncio.to_thread(fleet.connect, "s3")
    assert rc.is_failure
    # Someone else's client id is refused even with valid credentials (no session hijack).
    _, rc = await asyncio.to_thread(fleet.connect, "s1", None, "s2")
    assert rc.is_failure
    c, rc = await asyncio.to_thread(fleet.connect, "s1", None, "s1:probe")
    assert not rc.is_failure
    await asyncio.to_thread(close, c)
    await fleet.platform.pipeline.flush_counters()
    assert fleet.rejections("s1") == {"auth_failed": 1, "bad_client_id": 1}
    assert fleet.rejections("s2") == {"auth_failed": 1}
    assert fleet.rejections("s3") == {"device_disabled": 1}
    # Unknown device ids are not stored per device (anyone could grow the table); they are
    # logged and counted platform-wide.
    assert fleet.platform.pipeline.stats.by_reason["auth_failed"] == 3


async def test_revoked_device_is_disconnected_while_connected(fleet):
    fleet.platform.mqtt.recheck_interval = 0.2
    fleet.platform.mqtt._recheck.cancel()
    fleet.platform.mqtt._recheck = asyncio.create_task(fleet.platform.mqtt._recheck_loop())
    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert not rc.is_failure
    fleet.platform.registry.revoke_credentials("s1")
    for _ in range(50):
        if not c.is_connected():
            break
        await asyncio.sleep(0.1)
    assert not c.is_connected()
    c.loop_stop()


async def test_twin_and_commands_round_trip(fleet):
    reg = fleet.platform.registry
    c, _rc = await asyncio.to_thread(fleet.connect, "s1")
    got = []
    ev = threading.Event()

    def on_message(cl, ud, msg):
        got.append((msg.topic, json.loads(msg.payload)))
        ev.set()

    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.subscribe([(topics.twin_desired("s1"), 1), ("atoll/v1/devices/s1/commands/+", 1)])
    await asyncio.to_thread(subscribed.wait, 5)
    cmd = reg.create_command("s1", "reboot", {"delay": 5})
    await fleet.platform.commands.send_command(cmd)
    await asyncio.to_thread(ev.wait, 30)
    assert got[0][0] == topics.command("s1", cmd.id)
    assert got[0][1]["name"] == "reboot" and got[0][1]["args"] == {"delay": 5}
    ack = json.dumps({"status": "ok", "result": {"rebooted": True}}).encode()
    assert all(await asyncio.to_thread(publish_all, c, topics.command_ack("s1", cmd.id), [ack]))
    assert reg.get_command("s1", cmd.id).status == "acked"
    assert all(
        await asyncio.to_thread(publish_all, c, topics.twin_reported("s1"), [b'{"fw": "1.2"}'])
    )
    assert reg.get_twin("s1").reported == {"fw": "1.2"}
    await asyncio.to_thread(close, c)


@pytest.mark.parametrize("qos", [0, 2])
async def test_qos0_and_qos2_telemetry_is_ingested(fleet, qos):
    c, _rc = await asyncio.to_thread(fleet.connect, "s1")
    await asyncio.to_thread(
        publish_all, c, topics.telemetry("s1"), [b'{"values": {"temperature": 3}}'], qos
    )
    for _ in range(50):
        if points(fleet, "s1"):
            break
        await asyncio.sleep(0.05)
    assert points(fleet, "s1") == [3.0]
    await asyncio.to_thread(close, c)


async def test_taken_port_fails_with_a_clear_hint(fleet, tmp_path):
    from atoll.config import Settings
    from atoll.core.errors import Unavailable
    from atoll.platform import Platform

    other = Platform(Settings(home=tmp_path / "other", http_port=0, mqtt_port=fleet.port))
    with pytest.raises(Unavailable) as e:
        await other.start()
    assert str(fleet.port) in e.value.message and "--mqtt-port" in e.value.hint


async def test_offline_device_gets_pending_commands_and_desired_twin_when_it_subscribes(fleet):
    from atoll.core.errors import Unavailable

    reg, sender = fleet.platform.registry, fleet.platform.commands
    cmd = reg.create_command("s1", "calibrate", {"to": 0})
    with pytest.raises(Unavailable):  # nobody listens: the API keeps it pending
        await sender.send_command(cmd)
    reg.patch_desired("s1", {"interval_s": 5})
    c, _rc = await asyncio.to_thread(fleet.connect, "s1")
    got = []
    ev = threading.Event()

    def on_message(cl, ud, msg):
        got.append((msg.topic, json.loads(msg.payload)))
        if len(got) >= 2:
            ev.set()

    c.on_message = on_message
    c.subscribe([(topics.twin_desired("s1"), 1), ("atoll/v1/devices/s1/commands/+", 1)])
    await asyncio.to_thread(ev.wait, 30)
    by_topic = dict(got)
    assert by_topic[topics.twin_desired("s1")] == {"interval_s": 5, "$version": 1}
    assert by_topic[topics.command("s1", cmd.id)]["name"] == "calibrate"
    # The broker marks the command delivered after handing it to the socket, so the device
    # can see it a moment before the registry says so.
    for _ in range(100):
        if reg.get_command("s1", cmd.id).status == "delivered":
            break
        await asyncio.sleep(0.05)
    assert reg.get_command("s1", cmd.id).status == "delivered"
    await asyncio.to_thread(close, c)


async def test_silent_client_is_dropped_after_one_and_a_half_keep_alives(fleet):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="s1")
    c.username_pw_set("s1", fleet.secrets["s1"])
    await asyncio.to_thread(c.connect, "127.0.0.1", fleet.port, 1)  # keep-alive 1 s
    c.loop_start()
    for _ in range(50):
        if "s1" in fleet.platform.mqtt.connected_devices():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5)
    assert "s1" in fleet.platform.mqtt.connected_devices(), "PINGREQs keep it alive"
    c.loop_stop()  # no more PINGREQs: the broker must give up on it
    for _ in range(100):
        if "s1" not in fleet.platform.mqtt.connected_devices():
            break
        await asyncio.sleep(0.05)
    assert "s1" not in fleet.platform.mqtt.connected_devices()


async def test_a_tenants_device_uses_its_id_as_returned_in_username_and_topics(fleet):
    """In a tenant other than ``default`` a chosen device id is stored as ``acme~press-1``
    (docs/DEVICES.md): that exact id is the MQTT username and the topic segment."""
    reg = fleet.platform.registry
    reg.create_tenant("Acme", "acme")
    project = reg.create_project("acme", "Line", project_id="line").id
    reg.create_device_type(project, "climate", CLIMATE)
    dev, creds = reg.register_device(
        project, device_id="press-1", device_type="climate", tenant="acme"
    )
    assert (project, dev.id) == ("acme~line", "acme~press-1")
    c, rc = await asyncio.to_thread(connect, fleet.port, dev.id, creds.secret, dev.id)
    assert rc is not None and not rc.is_failure
    got, ev, subscribed = [], threading.Event(), threading.Event()
    c.on_message = lambda cl, ud, msg: (got.append(msg.topic), ev.set())
    c.on_subscribe = lambda *a: subscribed.set()
    c.subscribe(f"atoll/v1/devices/{dev.id}/commands/+", qos=1)
    await asyncio.to_thread(subscribed.wait, 5)
    acked = await asyncio.to_thread(
        publish_all, c, topics.telemetry(dev.id), [b'{"values": {"temperature": 21.5}}']
    )
    assert acked == [True]
    key = SeriesKey(project, dev.id, "temperature")
    assert fleet.platform.store.query_raw(key, 0, END).value.tolist() == [21.5]
    cmd = reg.create_command(dev.id, "reboot", {})
    await fleet.platform.commands.send_command(cmd)
    await asyncio.to_thread(ev.wait, 30)
    assert got == [topics.command(dev.id, cmd.id)]
    # The short name is nobody's username.
    short, rc = await asyncio.to_thread(connect, fleet.port, "press-1", creds.secret, "x-press-1")
    assert rc is None or rc.is_failure
    short.loop_stop()
    await asyncio.to_thread(close, c)


DIGITS_401 = b"1" * 401


async def test_hostile_messages_are_acknowledged_counted_and_keep_the_connection(fleet, caplog):
    """Issue 9 item 6: each of these once closed the connection without a PUBACK, so a client
    with auto-reconnect re-sent it forever. Now each is refused, counted and acknowledged."""
    reg = fleet.platform.registry
    c, _rc = await asyncio.to_thread(fleet.connect, "s1")
    drops = []
    c.on_disconnect = lambda *a: drops.append(a)
    telemetry = [
        (b'{"ts": 1e308, "values": {"temperature": 1}}', "future_timestamp"),
        (b'{"ts": ' + DIGITS_401 + b', "values": {"temperature": 1}}', "future_timestamp"),
        (b'{"values": {"temperature": ' + DIGITS_401 + b"}}", "not_finite"),
        (b'{"values": {"temp\xffrature": 1}}', "malformed_json"),
        (b'{"values": {"temperature": ' + b"[" * 5000 + b"]" * 5000 + b"}}", "malformed_json"),
        (b'{"ts": "0001-01-01T00:00:00Z", "values": {"temperature": 1}}', "bad_timestamp"),
        (b'{"ts": "2026-01-01T00:00:00", "values": {"temperature": 1}}', "bad_timestamp"),
    ]
    assert all(
        await asyncio.to_thread(
            publish_all, c, topics.telemetry("s1"), [body for body, _ in telemetry]
        )
    )
    assert all(
        await asyncio.to_thread(
            publish_all,
            c,
            topics.twin_reported("s1"),
            [
                b'{"fw\xff": 1}',
                b'{"n": ' + DIGITS_401 + b"}",
                b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            ],
        )
    )
    cmd = reg.create_command("s1", "reboot")
    ack = topics.command_ack("s1", cmd.id)
    assert all(
        await asyncio.to_thread(
            publish_all,
            c,
            ack,
            [
                b'{"status": "ok", "result": ' + DIGITS_401 + b"}",
                b'{"status": {"x": 1}}',
                b'{"status": "ok"}',
                b'{"status": "ok"}',
            ],
        )
    )  # the last one: a repeated ack
    # Same connection, never dropped: a good reading after all that is stored.
    assert all(
        await asyncio.to_thread(
            publish_all, c, topics.telemetry("s1"), [b'{"values": {"temperature": 7}}']
        )
    )
    assert points(fleet, "s1") == [7.0]
    assert drops == [] and c.is_connected()
    assert reg.get_command("s1", cmd.id).status == "acked" and reg.get_twin("s1").reported == {}
    await asyncio.to_thread(close, c)
    await fleet.platform.pipeline.flush_counters()
    assert fleet.rejections("s1") == {
        "future_timestamp": 2,
        "not_finite": 1,
        "malformed_json": 4,
        "bad_timestamp": 2,
        "integer_too_large": 2,
        "bad_command_ack": 1,
        "unknown_command": 1,
    }
    assert [
        r.getMessage() for r in caplog.records if r.exc_info
    ] == []  # expected input: no traceback
