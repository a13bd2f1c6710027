"""Cross-tenant probes against the embedded broker: Will messages, retained desired twins,
subscriptions and malformed packets. Two devices in two tenants, real paho clients and raw
sockets against a broker the test starts (issue #9, items 1, 2 and 4)."""

import asyncio
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from atoll.core import topics
from tests.ingest.conftest import CLIMATE, close
from tests.ingest.test_embedded_connection import (
    CONNACK,
    PUBACK,
    Raw,
    _str,
    connect_packet,
    packet,
    publish,
)

#: Device ``b1`` chosen by tenant beta, as stored and used on the wire (atoll.registry.namespaces).
B1 = "beta~b1"


@pytest.fixture
async def tenants(fleet):
    """``fleet`` (tenant ``default``: s1, s2, s3) plus device ``b1`` of tenant ``beta``."""
    reg = fleet.platform.registry
    lab = reg.create_project(
        reg.create_tenant("Beta", "beta").id, "Beta lab", project_id="beta-lab"
    ).id
    reg.create_device_type(lab, "climate", CLIMATE)
    dev, creds = reg.register_device(lab, device_id="b1", device_type="climate")
    assert dev.id == B1
    fleet.secrets[B1] = creds.secret
    return fleet


def will_connect(
    device: str,
    secret: str,
    will_topic: str,
    will_payload: bytes,
    *,
    retain: bool = True,
    qos: int = 1,
    client_id: str | None = None,
) -> bytes:
    flags = 0xC0 | 0x04 | qos << 3 | (0x20 if retain else 0) | 0x02
    return packet(
        0x10,
        _str("MQTT")
        + bytes([4, flags])
        + struct.pack("!H", 60)
        + _str(device if client_id is None else client_id)
        + _str(will_topic)
        + struct.pack("!H", len(will_payload))
        + will_payload
        + _str(device)
        + _str(secret),
    )


class Listener:
    """A paho device that records every message it receives, from its CONNACK on."""

    def __init__(
        self, fleet, device: str, filters: list[str], client_id: str | None = None
    ) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.codes: list = []
        connected, subscribed = threading.Event(), threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or device)
        c.username_pw_set(device, fleet.secrets[device])
        c.on_message = lambda cl, u, m: self.got.append((m.topic, m.payload, m.retain))
        c.on_connect = lambda cl, u, flags, rc, p: connected.set()
        c.on_subscribe = lambda cl, u, mid, codes, p: (self.codes.extend(codes), subscribed.set())
        c.connect("127.0.0.1", fleet.port, 30)
        c.loop_start()
        self.client = c
        assert connected.wait(10)
        c.subscribe([(f, 1) for f in filters])
        assert subscribed.wait(10)

    def close(self) -> None:
        close(self.client)


async def until(fn, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        await asyncio.sleep(0.05)
    return False


def raw_connect(port: int, wire: bytes) -> list[tuple[int, bytes]]:
    """Send ``wire`` as a new connection and return every packet until the broker closes it."""
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    c.buf = b""
    c.sock.sendall(wire)
    try:
        return c.recv_until_closed()
    finally:
        c.close()


def drop(port: int, wire: bytes) -> tuple[int, bytes] | None:
    """Connect with ``wire`` (a CONNECT), read the CONNACK, then vanish without DISCONNECT."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(wire)
    c = Raw.__new__(Raw)
    c.sock, c.buf = sock, b""
    got = c.recv()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    sock.close()
    return got


# -- 1. Will messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("victim_topic", [topics.twin_desired(B1), topics.command(B1, "x")])
async def test_a_will_on_another_tenants_device_is_refused_at_connect(tenants, victim_topic):
    forged = b'{"forged": 1, "$version": 999}'
    victim = await asyncio.to_thread(
        Listener, tenants, B1, [topics.twin_desired(B1), topics.command(B1, "+")]
    )
    wire = will_connect("s1", tenants.secrets["s1"], victim_topic, forged)
    connack = await asyncio.to_thread(drop, tenants.port, wire)
    assert connack is not None and connack[0] == CONNACK
    assert connack[1][1] == 5, "CONNACK 5 (not authorized), not a session"
    await asyncio.sleep(1.0)
    assert victim.got == []
    await asyncio.to_thread(victim.close)
    # Nothing was retained for b1 either: a fresh subscription gets nothing forged.
    late = await asyncio.to_thread(Listener, tenants, B1, [topics.twin_desired(B1)], f"{B1}:late")
    await asyncio.sleep(0.5)
    assert [m for m in late.got if b"forged" in m[1]] == []
    await asyncio.to_thread(late.close)
    await tenants.platform.pipeline.flush_counters()
    assert tenants.rejections("s1") == {"acl_will": 1}


async def test_a_will_on_the_devices_own_subscribed_topic_is_refused(tenants):
    # A device may subscribe to its own desired twin, but never publish it, Will or not.
    wire = will_connect("s1", tenants.secrets["s1"], topics.twin_desired("s1"), b'{"led": 1}')
    connack = await asyncio.to_thread(drop, tenants.port, wire)
    assert connack is not None and connack[1][1] == 5
    await tenants.platform.pipeline.flush_counters()
    assert tenants.rejections("s1") == {"acl_will": 1}


async def test_an_allowed_will_is_ingested_like_a_publish_and_never_broadcast(tenants):
    reg = tenants.platform.registry
    # Another session of the same device, subscribed to everything it may see of its subtree.
    spy = await asyncio.to_thread(
        Listener, tenants, "s1", [f"{topics.device_root('s1')}/#"], "s1:spy"
    )
    will = b'{"ts": 1767225600000, "values": {"temperature": 42}}'
    wire = will_connect("s1", tenants.secrets["s1"], topics.telemetry("s1"), will)
    connack = await asyncio.to_thread(drop, tenants.port, wire)
    assert connack is not None and connack[1][1] == 0
    from tests.ingest.test_embedded_broker import points

    assert await until(lambda: points(tenants, "s1") == [42.0])
    wire = will_connect(
        "s1", tenants.secrets["s1"], topics.twin_reported("s1"), b'{"online": false}'
    )
    assert (await asyncio.to_thread(drop, tenants.port, wire))[1][1] == 0
    assert await until(lambda: reg.get_twin("s1").reported == {"online": False})
    await asyncio.sleep(0.3)
    assert spy.got == [], "a Will goes to Atoll, never to MQTT subscribers"
    await asyncio.to_thread(spy.close)
    assert not tenants.platform.mqtt._broker.retained_messages, (
        "the retain flag of a Will is ignored"
    )


async def test_an_allowed_will_is_not_sent_after_a_clean_disconnect(tenants):
    from tests.ingest.test_embedded_broker import points

    will = b'{"ts": 1767225600000, "values": {"temperature": 42}}'

    def run():
        c = Raw.__new__(Raw)
        c.sock, c.buf = socket.create_connection(("127.0.0.1", tenants.port), timeout=15), b""
        c.sock.sendall(will_connect("s1", tenants.secrets["s1"], topics.telemetry("s1"), will))
        assert c.recv()[1][1] == 0
        c.sock.sendall(packet(0xE0, b""))  # DISCONNECT
        c.recv_until_closed()
        c.close()

    await asyncio.to_thread(run)
    await asyncio.sleep(0.5)
    assert points(tenants, "s1") == []


# -- 2. Retained desired twins ------------------------------------------------------------------


async def test_retained_desired_twin_of_another_tenant_never_reaches_a_device(tenants):
    sender = tenants.platform.commands
    victim = await asyncio.to_thread(Listener, tenants, B1, [topics.twin_desired(B1)])
    await sender.publish_desired(B1, {"secret": "beta"}, 1)
    assert await until(lambda: len(victim.got) == 1)
    await sender.publish_desired("s1", {"mine": 1}, 1)
    # s1 connects after the retained messages exist and subscribes to its own topics and to '#'.
    probe = await asyncio.to_thread(
        Listener,
        tenants,
        "s1",
        [
            topics.twin_desired("s1"),
            topics.command("s1", "+"),
            f"{topics.device_root('s1')}/#",
            "#",
        ],
    )
    assert [c.is_failure for c in probe.codes] == [False, False, False, True]
    await asyncio.sleep(1.0)
    leaked = [t for t, _, _ in probe.got if not t.startswith(topics.device_root("s1") + "/")]
    assert leaked == []
    assert (topics.twin_desired("s1"), b'{"mine":1,"$version":1}') in [
        (t, p) for t, p, _ in probe.got
    ]
    await asyncio.to_thread(probe.close)
    await asyncio.to_thread(victim.close)


async def test_a_reconnecting_persistent_session_gets_only_its_own_retained_twin(tenants):
    sender = tenants.platform.commands
    victim = await asyncio.to_thread(Listener, tenants, B1, [topics.twin_desired(B1)])
    await sender.publish_desired(B1, {"secret": "beta"}, 1)

    def reconnect():
        # A non-clean session reconnecting: amqtt re-sends retained messages on connect.
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="s1", clean_session=False)
        c.username_pw_set("s1", tenants.secrets["s1"])
        got = []
        c.on_message = lambda cl, u, m: got.append(m.topic)
        c.connect("127.0.0.1", tenants.port, 30)
        c.loop_start()
        time.sleep(1.0)
        close(c)
        return got

    got = await asyncio.to_thread(reconnect)
    assert [t for t in got if B1 in t] == []
    await asyncio.to_thread(victim.close)


# -- 3. Malformed packets -----------------------------------------------------------------------


def _malformed_connects(secret: str) -> dict[str, bytes]:
    good = connect_packet("s1", "s1", secret)
    body = good[2:]
    return {
        "remaining length too long": bytes([0x10, len(body) + 4]) + body + b"\x00\x00\x00\x00",
        "remaining length too short": bytes([0x10, len(body) - 3]) + body,
        "user name not UTF-8": packet(
            0x10,
            _str("MQTT")
            + bytes([4, 0xC2, 0, 60])
            + _str("s1")
            + b"\x00\x02\xc3\x28"
            + _str(secret),
        ),
        "client id with NUL": packet(
            0x10,
            _str("MQTT") + bytes([4, 0xC2, 0, 60]) + _str("s1\x00") + _str("s1") + _str(secret),
        ),
        "will topic with wildcard": will_connect(
            "s1", secret, "atoll/v1/devices/s1/commands/+/ack", b"{}"
        ),
    }


@pytest.mark.parametrize("case", list(_malformed_connects("x")))
async def test_a_malformed_connect_is_closed_without_connack(tenants, case):
    wire = _malformed_connects(tenants.secrets["s1"])[case]
    got = await asyncio.to_thread(raw_connect, tenants.port, wire)
    assert [k for k, b in got if k == CONNACK and b[1] == 0] == [], got
    # Nobody is authenticated yet: counted, but against no device.
    assert tenants.platform.pipeline.stats.by_reason == {"malformed_packet": 1}


BAD_TOPICS = {
    "empty": b"",
    "NUL": b"atoll/v1/devices/s1/telemetry\x00",
    "plus": b"atoll/v1/devices/s1/commands/+/ack",
    "hash": b"atoll/v1/devices/s1/#",
    "not UTF-8": b"atoll/v1/devices/s1/\xc3\x28",
}


def _publish_raw(topic: bytes, payload: bytes, packet_id: int, qos: int) -> bytes:
    pid = struct.pack("!H", packet_id) if qos else b""
    return packet(0x30 | qos << 1, struct.pack("!H", len(topic)) + topic + pid + payload)


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("case", list(BAD_TOPICS))
async def test_a_publish_with_an_invalid_topic_name_closes_the_connection(tenants, case, qos):
    good = publish(topics.telemetry("s1"), b'{"values": {"temperature": 1}}', 1)

    def run():
        c = Raw(tenants.port, "s1", tenants.secrets["s1"])
        c.sock.sendall(good + _publish_raw(BAD_TOPICS[case], b'{"a": 1}', 2, qos))
        got = c.recv_until_closed()
        c.close()
        return got

    got = await asyncio.to_thread(run)
    assert [struct.unpack("!H", b)[0] for k, b in got if k == PUBACK] == [1]
    assert [k for k, _ in got if k != PUBACK] == [], "no PUBACK/PUBREC for the bad one"
    await tenants.platform.pipeline.flush_counters()
    assert tenants.rejections("s1") == {"malformed_packet": 1}


async def test_a_publish_with_an_invalid_topic_name_over_websockets_closes_the_connection(tmp_path):
    # amqtt reads WebSocket connections itself (not Atoll's splitter): same rule, same count.
    from websockets.sync.client import connect as ws_connect

    from atoll.config import Settings
    from atoll.platform import Platform
    from tests.ingest.conftest import FAST_HASHER, Fleet

    platform = Platform(
        Settings(home=tmp_path / "home", http_port=0, mqtt_port=0, services=[], mqtt_ws_port=0),
        password_hasher=FAST_HASHER,
    )
    await platform.start()
    try:
        fleet = Fleet(platform)
        port = platform.mqtt.ports["ws"]

        def run():
            with ws_connect(f"ws://127.0.0.1:{port}/mqtt", subprotocols=["mqtt"]) as ws:
                ws.send(connect_packet("s1", "s1", fleet.secrets["s1"]))
                assert ws.recv(10)[:4] == b"\x20\x02\x00\x00"
                ws.send(_publish_raw(b"", b'{"a": 1}', 1, 1))
                got = []
                try:
                    while True:
                        got.append(ws.recv(10))
                except Exception:  # noqa: BLE001 - closed by the broker, as expected
                    return got

        assert await asyncio.to_thread(run) == [], "no PUBACK, and the connection is closed"
        assert platform.pipeline.stats.by_reason == {"malformed_packet": 1}
    finally:
        await platform.stop()


async def test_the_broker_only_sends_devices_what_they_may_receive(tenants):
    from atoll.core.errors import InvalidInput

    broker = tenants.platform.mqtt
    for topic in (topics.telemetry(B1), "atoll/v1/devices/+/twin/desired", "#", "other"):
        with pytest.raises(InvalidInput):
            await broker.publish(topic, b"{}", retain=True)
    assert not broker._broker.retained_messages
