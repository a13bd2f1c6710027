"""The local MQTT connector against a real Mosquitto (the gateway's LAN broker)."""

from __future__ import annotations

import asyncio
import itertools
import json

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atoll.edge.connectors import mqtt
from atoll.edge.port import CommandFailed
from atoll.sim.mosquitto import Mosquitto
from atoll.testing.connector import MemorySink, check_connector

pytestmark = pytest.mark.timeout(120)

USERS = {"edge": "edge-secret", "lan-device": "device-secret"}
ACL = (
    "user edge\ntopic readwrite #\n\n"
    "user lan-device\ntopic readwrite lan/#\ntopic readwrite plant/#\n"
)


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path / "mosquitto", USERS, acl=ACL) as b:
        yield b


class Device:
    """A LAN device: publishes with QoS 1 and waits for the broker's PUBACK."""

    def __init__(self, broker: Mosquitto, client_id: str = "lan-device") -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set("lan-device", USERS["lan-device"])
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.received: list[tuple[str, bytes]] = []
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))

    async def publish(self, topic: str, payload, qos: int = 1) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(topic, body, qos=qos)
        await asyncio.to_thread(info.wait_for_publish, 5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def config(broker: Mosquitto, **extra) -> dict:
    return {
        "name": "lan",
        "broker": broker.url,
        "client_id": "atoll-edge-test",
        "username": "edge",
        "password": USERS["edge"],
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "buffer_retry_s": 0.05,
        "devices": [
            {
                "id": "meter-1",
                "device_type": "meter",
                "command_topic": "lan/{device}/cmd",
                "commands": ["reset"],
            },
            {"id": "meter-2"},
            {"id": "boiler"},
        ],
        "topics": [
            {"topic": "lan/{device}/telemetry"},
            {
                "topic": "plant/boiler/state",
                "device": "boiler",
                "payload": {
                    "format": "json",
                    "values": {
                        "temperature": "$.sensors.t",
                        "burner": "$.burner_on",
                        "pressure": '$["p bar"]',
                        "first": "$.list[0]",
                    },
                    "timestamp": "$.time",
                    "timestamp_unit": "s",
                },
            },
        ],
        **extra,
    }


async def until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def start(connector, sink):
    task = asyncio.create_task(connector.run(sink))
    await until(lambda: connector.status()["connected"])
    await asyncio.sleep(0.2)  # the SUBACK
    return task


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_conformance(broker):
    device = Device(broker)
    counter = itertools.count()

    async def produce():
        await device.publish("lan/meter-1/telemetry", {"values": {"power": next(counter)}})

    try:
        c = mqtt.build(config(broker))
        readings = await check_connector(c, produce=produce)
    finally:
        device.close()
    powers = [r.values["power"] for r in readings]
    assert powers == sorted(powers)  # in the order published (refused ones offered again)
    assert c.status()["acked"] >= len(set(powers))


async def test_payload_mappings_and_rejections(broker):
    device = Device(broker)
    c = mqtt.build(config(broker))
    sink = MemorySink()
    task = await start(c, sink)
    try:
        await device.publish("lan/meter-1/telemetry", {"values": {"power": 1.5, "on": True}})
        await device.publish(
            "lan/meter-2/telemetry",
            [
                {"ts": "2026-11-23T10:00:00Z", "values": {"power": 2}},
                {"ts": 1795428060000, "values": {"power": 3}},
            ],
        )
        await device.publish(
            "plant/boiler/state",
            {
                "time": 1795428000,
                "sensors": {"t": 81.5},
                "burner_on": False,
                "p bar": 2,
                "list": [7, 8],
            },
        )
        await device.publish("lan/meter-1/telemetry", b"{not json")
        await device.publish("lan/meter-1/telemetry", {"values": {"power": "high"}})
        await device.publish("lan/meter-9/telemetry", {"values": {"power": 1}})
        await device.publish("plant/boiler/state", {"time": 1795428000, "other": 1})
        await device.publish("lan/meter-1/telemetry", {"values": {"power": 4}}, qos=0)
        await until(lambda: c.status()["messages"] == 8)
        await until(lambda: len(sink.readings) == 5)
    finally:
        await stop(task)
        device.close()
    got = [(r.device, r.values) for r in sink.readings]
    assert got == [
        ("meter-1", {"power": 1.5, "on": True}),
        ("meter-2", {"power": 2.0}),
        ("meter-2", {"power": 3.0}),
        ("boiler", {"temperature": 81.5, "burner": False, "pressure": 2.0, "first": 7.0}),
        ("meter-1", {"power": 4.0}),
    ]
    ts = [r.ts_us for r in sink.readings]
    assert ts[1:4] == [1795428000000000, 1795428060000000, 1795428000000000]
    status = c.status()
    assert status["rejected"] == {
        "malformed_json": 1,
        "wrong_type": 1,
        "unknown_device": 1,
        "no_values": 1,
    }
    assert status["acked"] == 7  # every QoS 1 message, rejected ones too; QoS 0 has no ack


async def test_unacknowledged_messages_come_again_after_a_restart(broker):
    """Messages the buffer refused (BufferStopped) are not acknowledged: when the agent stops,
    the broker keeps them for the connector's session and sends them to the next run."""
    device = Device(broker)
    first = mqtt.build(config(broker))
    sink = MemorySink()
    task = await start(first, sink)
    try:
        await device.publish("lan/meter-1/telemetry", {"values": {"n": 0}})
        await until(lambda: len(sink.readings) == 1)
        sink.stopped = True
        for n in range(1, 6):
            await device.publish("lan/meter-1/telemetry", {"values": {"n": n}})
        await until(lambda: len(sink.refused) >= 3)
    finally:
        await stop(task)  # as a crash would: five messages taken by no buffer
    assert [r.values["n"] for r in sink.readings] == [0.0]
    assert first.status()["acked"] == 1

    second = mqtt.build(config(broker))  # same client id, persistent session
    again = MemorySink()
    task = await start(second, again)
    try:
        await until(lambda: len(again.readings) >= 5)
        await asyncio.sleep(0.3)
    finally:
        await stop(task)
        device.close()
    assert [r.values["n"] for r in again.readings] == [1.0, 2.0, 3.0, 4.0, 5.0]  # once, in order


async def test_reconnects_and_resubscribes_after_the_broker_restarts(broker):
    c = mqtt.build(config(broker, persistent_session=False))
    sink = MemorySink()
    task = await start(c, sink)
    try:
        broker.stop()
        await until(lambda: not c.status()["connected"])
        broker.start()
        await until(lambda: c.status()["connected"], timeout=15)
        await asyncio.sleep(0.3)
        device = Device(broker)
        await device.publish("lan/meter-2/telemetry", {"values": {"x": 1}})
        await until(lambda: len(sink.readings) == 1)
        device.close()
    finally:
        await stop(task)
    assert c.status()["reconnects"] == 1


async def test_tls_to_the_local_broker(tmp_path):
    with Mosquitto(tmp_path / "tls", USERS, acl=ACL, tls=True) as tls_broker:
        c = mqtt.build(config(tls_broker, ca_file=tls_broker.ca_file))
        assert c.config.broker.startswith("mqtts://")
        sink = MemorySink()
        task = await start(c, sink)
        device = paho.Client(CallbackAPIVersion.VERSION2, client_id="lan-device")
        device.username_pw_set("lan-device", USERS["lan-device"])
        device.tls_set(ca_certs=tls_broker.ca_file)
        device.connect("127.0.0.1", tls_broker.port)
        device.loop_start()
        try:
            info = device.publish("lan/meter-2/telemetry", b'{"values": {"x": 9}}', qos=1)
            await asyncio.to_thread(info.wait_for_publish, 5)
            await until(lambda: len(sink.readings) == 1)
        finally:
            device.disconnect()
            device.loop_stop()
            await stop(task)
    assert sink.readings[0].values == {"x": 9.0}


async def test_commands_are_published_to_the_device(broker):
    device = Device(broker)
    device.client.subscribe("lan/meter-1/cmd", qos=1)
    c = mqtt.build(config(broker))
    with pytest.raises(CommandFailed, match="not connected"):
        await c.command("meter-1", "reset", {})
    task = await start(c, MemorySink())
    try:
        assert await c.command("meter-1", "reset", {"hard": True}) == {"topic": "lan/meter-1/cmd"}
        await until(lambda: device.received)
        with pytest.raises(CommandFailed, match="has no command 'reset'"):
            await c.command("meter-2", "reset", {})
        with pytest.raises(CommandFailed, match="has no command 'explode'"):
            await c.command("meter-1", "explode", {})
        with pytest.raises(CommandFailed, match="no device 'meter-7'"):
            await c.command("meter-7", "reset", {})
    finally:
        await stop(task)
        device.close()
    assert device.received == [("lan/meter-1/cmd", b'{"name":"reset","args":{"hard":true}}')]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"broker": "tcp://x:1883"}, "broker: String should match pattern"),
        ({"topics": [{"topic": "lan/+/telemetry"}]}, "name the device with a {device} level"),
        ({"topics": [{"topic": "lan/{device}/{device}"}]}, "{device} may appear once"),
        ({"topics": [{"topic": "lan/#/x", "device": "meter-1"}]}, "# must be the last level"),
        ({"topics": [{"topic": "a", "device": "nope"}]}, "names unknown device 'nope'"),
        (
            {
                "topics": [
                    {
                        "topic": "lan/{device}",
                        "payload": {"format": "json", "values": {"t": "sensors.t"}},
                    }
                ]
            },
            "topics.0.payload.json.values.t",
        ),
        ({"topics": [{"topic": "lan/{device}", "payload": {"format": "xml"}}]}, "Input tag 'xml'"),
        ({"qos": 2}, "qos: Input should be 0 or 1"),
        ({"devices": [{"id": "meter-1", "commands": ["reset"]}]}, "commands need a command_topic"),
        ({"password": None}, "username and password go together"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(change, message):
    good = {
        "broker": "mqtt://127.0.0.1:1883",
        "username": "u",
        "password": "p",
        "devices": [{"id": "meter-1"}],
        "topics": [{"topic": "lan/{device}/telemetry"}],
    }
    with pytest.raises(ValueError, match="mqtt connector configuration is invalid") as e:
        mqtt.build({**good, **change})
    assert message in str(e.value)
