"""Simulated devices over a real Mosquitto: own credentials, own topics, messages arrive."""

from __future__ import annotations

import collections
import json
import secrets
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atoll.core import topics
from atoll.sim import Fleet, SimDevice
from atoll.sim.mosquitto import OBSERVER, Mosquitto
from atoll.sim.mqtt import Broker, MqttFleet

pytestmark = pytest.mark.timeout(60)


class Observer:
    """A subscriber that sees every device's telemetry, on its own paho thread."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="observer")
        c.username_pw_set(*OBSERVER)
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe("atoll/v1/devices/+/telemetry", 1)
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_message = lambda cl, ud, msg: self.messages.append((msg.topic, msg.payload))
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client = c
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


T0 = 1_700_006_400.0


@pytest.fixture
def fleet_and_broker(tmp_path):
    base = Fleet.build(["retail", "manufacturing"], 30, seed=2)
    devices = [
        SimDevice(d.device_id, d.template, d.device_type, secrets.token_hex(16))
        for d in base.devices
    ]
    with Mosquitto(tmp_path, {d.device_id: d.secret for d in devices}) as broker:
        yield devices, broker


async def test_devices_connect_with_their_own_credentials_and_messages_arrive(fleet_and_broker):
    devices, broker = fleet_and_broker
    fleet = Fleet(devices, seed=2, rate=2.0)
    observer = Observer(broker)
    try:
        async with MqttFleet(fleet, broker.url) as mf:
            stats = await mf.connect(timeout=20)
            assert (stats.connected, stats.refused) == (30, 0)
            stats = await mf.run(duration=2.0)
        assert stats.published == 30 * 4 and stats.acked == stats.published
        assert stats.points > stats.published
        await _wait_for(lambda: len(observer.messages) >= stats.published)
    finally:
        observer.close()

    per_device = collections.Counter()
    for topic, payload in observer.messages:
        device, rest = topics.parse(topic)
        assert rest == "telemetry"
        body = json.loads(payload)
        assert isinstance(body["ts"], int)
        assert set(body["values"]) == set(fleet.device_type(device).metric_names)
        per_device[device] += 1
    # The broker's ACL only lets a device publish under its own id: every device got through.
    assert per_device == {d.device_id: 4 for d in devices}


async def test_wrong_secret_is_refused_and_counted(fleet_and_broker):
    devices, broker = fleet_and_broker
    bad = [
        SimDevice(d.device_id, d.template, d.device_type, "wrong" if i < 3 else d.secret)
        for i, d in enumerate(devices[:10])
    ]
    fleet = Fleet(bad, seed=2, rate=5.0)
    async with MqttFleet(fleet, broker.url) as mf:
        stats = await mf.connect(timeout=20)
        assert (stats.connected, stats.refused) == (7, 3)
        stats = await mf.run(duration=1.0)
    assert stats.published == 7 * 5 and stats.acked == stats.published
    assert stats.skipped == 3 * 5


async def test_history_is_published_in_batches_fast(fleet_and_broker):
    devices, broker = fleet_and_broker
    fleet = Fleet(devices[:5], seed=2, rate=1.0, start=T0)
    observer = Observer(broker)
    try:
        async with MqttFleet(fleet, broker.url) as mf:
            await mf.connect(timeout=20)
            stats = await mf.publish_history(T0 + 3600, 60, per_message=25)
        assert stats.acked == stats.published == 5 * 3  # 60 readings each: 25 + 25 + 10
        await _wait_for(lambda: len(observer.messages) >= stats.published)
    finally:
        observer.close()
    readings = [r for _, p in observer.messages for r in json.loads(p)]
    assert len(readings) == 5 * 60
    assert min(r["ts"] for r in readings) == int(T0 * 1000)


async def test_unreachable_broker_is_a_clear_error(tmp_path):
    from atoll.core.errors import Unavailable
    from atoll.sim.mosquitto import free_port

    fleet = Fleet.build("retail", 2, seed=1)
    async with MqttFleet(fleet, f"mqtt://127.0.0.1:{free_port()}") as mf:
        with pytest.raises(Unavailable, match="could connect"):
            await mf.connect(timeout=2)


def test_broker_urls():
    assert Broker.parse("mqtt://h:1884") == Broker("h", 1884)
    assert Broker.parse("mqtts://h") == Broker("h", 8883, True)
    assert Broker.parse("localhost:1883") == Broker("localhost", 1883)
    with pytest.raises(Exception, match="bad broker URL"):
        Broker.parse("http://h")


async def _wait_for(cond, timeout=10.0):
    import asyncio

    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    assert cond()


async def test_devices_reconnect_after_the_broker_restarts(fleet_and_broker):
    devices, broker = fleet_and_broker
    fleet = Fleet(devices[:5], seed=2, rate=5.0)
    async with MqttFleet(fleet, broker.url, reconnect_after=0.5) as mf:
        await mf.connect(timeout=20)
        await mf.run(duration=0.5)
        broker.stop()
        await mf.run(duration=1.0)
        assert mf.stats.lost == 5 and mf.stats.connected == 0
        skipped = mf.stats.skipped
        assert skipped > 0
        broker.start()
        before = mf.stats.acked
        stats = await mf.run(duration=4.0)
    assert stats.reconnects == 5 and stats.connected == 5
    assert stats.acked - before >= 5 * 5  # at least a second of readings from every device after


async def test_tls_broker_with_its_ca_and_refused_without(tmp_path):
    from atoll.core.errors import Unavailable

    devices = [SimDevice(f"tls-{i}", "retail", "freezer", f"secret-{i}") for i in range(4)]
    with Mosquitto(tmp_path, {d.device_id: d.secret for d in devices}, tls=True) as broker:
        assert broker.url.startswith("mqtts://")
        fleet = Fleet(devices, seed=1, rate=5.0)
        async with MqttFleet(fleet, broker.url, ca_file=broker.ca_file) as mf:
            assert (await mf.connect(timeout=20)).connected == 4
            stats = await mf.run(duration=1.0)
        assert stats.published == stats.acked == 4 * 5
        async with MqttFleet(Fleet(devices, seed=1), broker.url) as mf:  # system CAs only
            with pytest.raises(Unavailable, match="certificate"):
                await mf.connect(timeout=5)
