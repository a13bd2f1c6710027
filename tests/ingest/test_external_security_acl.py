"""The cross-tenant probes of test_security_acl, against a real Mosquitto started by the test
with the config and ACL file Atoll writes (external mode)."""

import asyncio
import socket
import struct
import threading

import pytest

from atoll.core import topics
from tests.ingest.conftest import CLIMATE, close
from tests.ingest.test_embedded_connection import CONNACK, Raw
from tests.ingest.test_external import atoll, broker, connect_when_ready, stored, wait_for  # noqa: F401
from tests.ingest.test_security_acl import B1, will_connect


@pytest.fixture
async def tenants(atoll):  # noqa: F811
    """Device e1 of tenant ``default`` and b1 of tenant ``beta``, with their secrets."""
    reg = atoll.registry
    lab = reg.create_project(
        reg.create_tenant("Beta", "beta").id, "Beta lab", project_id="beta-lab"
    ).id
    reg.create_device_type(lab, "climate", CLIMATE)
    _, a = reg.register_device("lab", device_id="e1", device_type="climate")
    dev, b = reg.register_device(lab, device_id="b1", device_type="climate")
    assert dev.id == B1
    return atoll, {"e1": a.secret, B1: b.secret}


class Listener:
    def __init__(self, client, filters: list[str]) -> None:
        self.client, self.got, self.codes = client, [], []
        done = threading.Event()
        client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        client.on_subscribe = lambda c, u, mid, codes, p: (self.codes.extend(codes), done.set())
        client.subscribe([(f, 1) for f in filters])
        assert done.wait(10)


async def listen(port, device, secret, filters, client_id=None) -> Listener:
    c = await connect_when_ready(port, device, secret, client_id)
    return await asyncio.to_thread(Listener, c, filters)


def drop(port: int, wire: bytes):
    """CONNECT with ``wire``, read the CONNACK, then vanish without DISCONNECT (RST)."""
    c = Raw.__new__(Raw)
    c.sock, c.buf = socket.create_connection(("127.0.0.1", port), timeout=15), b""
    c.sock.sendall(wire)
    got = c.recv()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()
    return got


@pytest.mark.parametrize("victim_topic", [topics.twin_desired(B1), topics.command(B1, "x")])
async def test_a_will_on_another_tenants_device_never_reaches_it(tenants, broker, victim_topic):  # noqa: F811
    _, secrets = tenants
    victim = await listen(
        broker.port, B1, secrets[B1], [topics.twin_desired(B1), topics.command(B1, "+")]
    )
    await connect_when_ready(broker.port, "e1", secrets["e1"])  # e1's secret is loaded
    wire = will_connect(
        "e1", secrets["e1"], victim_topic, b'{"forged": 1, "$version": 999}', client_id="e1:will"
    )
    connack = await asyncio.to_thread(drop, broker.port, wire)
    assert connack is None or connack[0] == CONNACK
    await asyncio.sleep(1.0)
    assert victim.got == []
    late = await listen(broker.port, B1, secrets[B1], [topics.twin_desired(B1)], f"{B1}:late")
    await asyncio.sleep(0.5)
    assert late.got == [], "nothing forged was retained"
    for c in (victim.client, late.client):
        await asyncio.to_thread(close, c)


async def test_an_allowed_will_is_ingested(tenants, broker):  # noqa: F811
    platform, secrets = tenants
    await connect_when_ready(broker.port, "e1", secrets["e1"])
    will = b'{"ts": 1767225600000, "values": {"temperature": 42}}'
    wire = will_connect(
        "e1", secrets["e1"], topics.telemetry("e1"), will, retain=False, client_id="e1:will"
    )
    connack = await asyncio.to_thread(drop, broker.port, wire)
    assert connack is not None and connack[1][1] == 0
    assert await wait_for(lambda: stored(platform, "e1") == [42.0])


async def test_retained_desired_twin_of_another_tenant_never_reaches_a_device(tenants, broker):  # noqa: F811
    platform, secrets = tenants
    victim = await listen(broker.port, B1, secrets[B1], [topics.twin_desired(B1)])
    await platform.commands.publish_desired(B1, {"secret": "beta"}, 1)
    await platform.commands.publish_desired("e1", {"mine": 1}, 1)
    assert await wait_for(lambda: len(victim.got) == 1)
    probe = await listen(
        broker.port,
        "e1",
        secrets["e1"],
        [
            topics.twin_desired("e1"),
            topics.command("e1", "+"),
            f"{topics.device_root('e1')}/#",
            "#",
            "atoll/v1/devices/+/twin/desired",
        ],
    )
    await asyncio.sleep(1.0)
    leaked = [t for t, _ in probe.got if not t.startswith(topics.device_root("e1") + "/")]
    assert leaked == []
    assert (topics.twin_desired("e1"), b'{"mine":1,"$version":1}') in probe.got
    # A live (not retained) desired twin and command to b1 are not seen by e1 either.
    await platform.commands.publish_desired(B1, {"secret": "beta2"}, 2)
    assert await wait_for(lambda: len(victim.got) == 2)
    await asyncio.sleep(0.5)
    assert [t for t, _ in probe.got if B1 in t] == []
    for c in (victim.client, probe.client):
        await asyncio.to_thread(close, c)
