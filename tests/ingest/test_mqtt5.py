"""MQTT 5 devices (issue #15, item 6; docs/DEVICES.md, "MQTT 5").

The embedded broker speaks MQTT 3.1.1 and refuses an MQTT 5 CONNECT with the CONNACK an
MQTT 5 client understands (0x84, Unsupported Protocol Version), counted and logged. With an
external Mosquitto, MQTT 5 devices connect and use session expiry and reason codes; Atoll's
password and ACL files apply to them as to 3.1.1 devices.
"""

import asyncio
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from atoll.core import topics
from atoll.ingest.connect import UNSUPPORTED_PROTOCOL
from tests.ingest.conftest import close
from tests.ingest.test_external import atoll, broker, stored, wait_for  # noqa: F401

NOT_AUTHORIZED = 0x87
UNSUPPORTED_PROTOCOL_VERSION = 0x84


class V5:
    """An MQTT 5 device client (paho), recording CONNACKs, PUBACK reason codes and messages."""

    def __init__(
        self,
        port: int,
        user: str,
        password: str,
        *,
        client_id: str | None = None,
        expiry: int = 0,
        clean_start: bool = True,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user, protocol=protocol
        )
        self.client.username_pw_set(user, password)
        self.connacks: list = []
        self.session_present: list[bool] = []
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list = []
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        props = None
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        self.client.reconnect_delay_set(60, 60)  # one attempt per test: no silent retries
        kw = {"clean_start": clean_start, "properties": props} if protocol == mqtt.MQTTv5 else {}
        self.client.connect("127.0.0.1", port, keepalive=30, **kw)
        self.client.loop_start()

    def _on_connect(self, c, u, flags, rc, props) -> None:
        self.connacks.append(rc)
        self.session_present.append(bool(flags.session_present))
        self._connected.set()

    def _on_publish(self, c, u, mid, rc, props) -> None:
        self.pubacks[mid] = rc.value

    def _on_subscribe(self, c, u, mid, codes, props) -> None:
        self.subacks.extend(codes)
        self._subscribed.set()

    def wait_connack(self, timeout: float = 10.0):
        assert self._connected.wait(timeout), "no CONNACK"
        return self.connacks[0]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.pubacks[info.mid]

    def close(self) -> None:
        close(self.client)


def v5(*args, **kw) -> V5:
    """Connect, retrying while Mosquitto reloads its password file (a SIGHUP after
    registration) so that the device is known."""
    for _ in range(50):
        c = V5(*args, **kw)
        rc = c.wait_connack()
        if not rc.is_failure:
            return c
        c.close()
        time.sleep(0.1)
    raise AssertionError(f"{args[1]} could not connect over MQTT 5")


# --- the embedded broker: a clear refusal -------------------------------------------------


async def test_embedded_refuses_mqtt5_with_the_reason_code_an_mqtt5_client_understands(fleet):
    c = await asyncio.to_thread(V5, fleet.port, "s1", "x", expiry=60)
    rc = await asyncio.to_thread(c.wait_connack)
    await asyncio.to_thread(c.close)
    assert rc.is_failure and rc.value == UNSUPPORTED_PROTOCOL_VERSION, rc
    assert str(rc) == "Unsupported protocol version"
    assert fleet.platform.pipeline.stats.by_reason.get(UNSUPPORTED_PROTOCOL) == 1


async def test_embedded_refuses_mqtt31_with_return_code_1_and_still_serves_311(fleet):
    old = await asyncio.to_thread(V5, fleet.port, "s1", "x", protocol=mqtt.MQTTv31)
    rc = await asyncio.to_thread(old.wait_connack)
    await asyncio.to_thread(old.close)
    # paho reports 3.1's return code 1 (unacceptable protocol version) under MQTT 5's name
    assert rc.is_failure and str(rc) == "Unsupported protocol version", rc
    assert fleet.platform.pipeline.stats.by_reason.get(UNSUPPORTED_PROTOCOL) == 1
    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert rc is not None and not rc.is_failure
    await asyncio.to_thread(close, c)


# --- an external Mosquitto: MQTT 5 devices work ---------------------------------------------


@pytest.fixture
async def device(atoll):  # noqa: F811
    _, creds = atoll.registry.register_device("lab", device_id="m5", device_type="climate")
    atoll.registry.register_device("lab", device_id="other", device_type="climate")
    return creds.secret


async def test_external_mqtt5_device_publishes_and_gets_reason_codes(atoll, broker, device):  # noqa: F811
    c = await asyncio.to_thread(v5, broker.port, "m5", device, expiry=300)
    ok = await asyncio.to_thread(
        c.publish, topics.telemetry("m5"), b'{"values": {"temperature": 21.5}}'
    )
    denied = await asyncio.to_thread(
        c.publish, topics.telemetry("other"), b'{"values": {"temperature": 99}}'
    )
    await asyncio.to_thread(c.close)
    assert ok == 0
    assert denied == NOT_AUTHORIZED, "an MQTT 5 device learns its publish was refused"
    assert await wait_for(lambda: stored(atoll, "m5") == [21.5])
    await asyncio.sleep(0.5)
    assert stored(atoll, "other") == []


async def test_external_mqtt5_wrong_secret_is_refused_with_a_reason_code(atoll, broker, device):  # noqa: F811
    await asyncio.to_thread(v5, broker.port, "m5", device)  # the password file has m5
    bad = await asyncio.to_thread(V5, broker.port, "m5", "not-the-secret")
    rc = await asyncio.to_thread(bad.wait_connack)
    await asyncio.to_thread(bad.close)
    assert rc.is_failure and rc.value in (0x86, NOT_AUTHORIZED), rc


async def test_external_mqtt5_session_expiry_keeps_commands_for_an_offline_device(
    atoll,  # noqa: F811
    broker,  # noqa: F811
    device,
):
    reg = atoll.registry
    c = await asyncio.to_thread(v5, broker.port, "m5", device, expiry=600, clean_start=False)
    await asyncio.to_thread(c.subscribe, topics.command("m5", "+"))
    await asyncio.to_thread(c.close)  # a clean DISCONNECT; the session stays for 600 s
    cmd = reg.create_command("m5", "reboot", {"delay": 5})
    await atoll.commands.send_command(cmd)
    back = await asyncio.to_thread(V5, broker.port, "m5", device, expiry=600, clean_start=False)
    rc = await asyncio.to_thread(back.wait_connack)
    assert not rc.is_failure and back.session_present == [True]
    assert await wait_for(lambda: len(back.messages) == 1)
    topic, payload = back.messages[0]
    assert topic == topics.command("m5", cmd.id)
    assert json.loads(payload)["name"] == "reboot"
    await asyncio.to_thread(back.close)

    # Session expiry 0: the session ends with the connection, so nothing waits for it.
    gone = await asyncio.to_thread(v5, broker.port, "m5", device, expiry=0, clean_start=True)
    await asyncio.to_thread(gone.subscribe, topics.command("m5", "+"))
    await asyncio.to_thread(gone.close)
    cmd2 = reg.create_command("m5", "reboot", {"delay": 6})
    await atoll.commands.send_command(cmd2)
    again = await asyncio.to_thread(V5, broker.port, "m5", device, expiry=0, clean_start=False)
    rc = await asyncio.to_thread(again.wait_connack)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(again.close)
    assert not rc.is_failure and again.session_present == [False]
    assert again.messages == []
