"""Gateways in external broker mode: a real Mosquitto (Atoll's password and ACL files) and a
real platform attached to it. The broker lets any device use the ``gateway/...`` topics of its
own subtree; Atoll checks what each one may do (``atoll.core.acl``) when it ingests them."""

import asyncio
import json
import threading

from atoll.core import topics
from tests.ingest.conftest import close
from tests.ingest.test_external import atoll, broker, login, stored, wait_for  # noqa: F401 - fixtures


async def rejections(platform, device):
    await platform.pipeline.flush_counters()
    platform.registry.flush_rejections()
    return {r.reason: r.count for r in platform.registry.rejections(device)}


async def test_a_gateway_speaks_for_its_children_through_mosquitto(atoll, broker):  # noqa: F811
    reg = atoll.registry
    _, gw_creds = reg.register_device("lab", device_id="gw", kind="gateway")
    reg.register_device("lab", device_id="k1", device_type="climate", parent="gw")
    _, plain_creds = reg.register_device("lab", device_id="plain", device_type="climate")
    gw = await asyncio.to_thread(login, broker.port, "gw", gw_creds.secret)
    got: list[tuple[str, dict]] = []
    arrived = threading.Event()
    gw.on_message = lambda c, u, m: (got.append((m.topic, json.loads(m.payload))), arrived.set())
    subscribed = threading.Event()
    gw.on_subscribe = lambda *a: subscribed.set()
    gw.subscribe(
        [
            (f"{topics.device_root('gw')}/gateway/connect/ack", 1),
            (f"{topics.device_root('gw')}/gateway/commands/+/+", 1),
        ]
    )
    assert await asyncio.to_thread(subscribed.wait, 10)

    def publish(topic, doc):
        gw.publish(topic, json.dumps(doc), qos=1).wait_for_publish(10)

    # connect: a new child is registered, the answer comes back through the broker.
    await asyncio.to_thread(
        publish, topics.gateway_connect("gw"), {"device": "k2", "device_type": "climate"}
    )
    assert await wait_for(lambda: len(got) >= 1)
    assert got[0] == (
        topics.gateway_connect_ack("gw"),
        {"device": "k2", "status": "ok", "reason": ""},
    )
    assert reg.get_device("k2").parent == "gw"
    await asyncio.to_thread(publish, topics.gateway_connect("gw"), {"device": "plain"})
    assert await wait_for(lambda: len(got) >= 2)
    assert got[1][1]["status"] == "error" and reg.get_device("plain").parent is None

    # telemetry: the children's parts stored as theirs, the plain device's refused.
    body = {
        "k1": {"values": {"temperature": 21.5}},
        "k2": [{"ts": 1795428000000, "values": {"temperature": 1}}],
        "plain": {"values": {"temperature": 99}},
    }
    await asyncio.to_thread(publish, topics.gateway_telemetry("gw"), body)
    assert await wait_for(lambda: stored(atoll, "k1") == [21.5] and stored(atoll, "k2") == [1.0])
    assert stored(atoll, "plain") == [] and stored(atoll, "gw") == []
    assert await rejections(atoll, "gw") == {"gateway_child": 2}

    # commands: to the child through the gateway, acked by the gateway.
    cmd = reg.create_command("k1", "reboot", {"delay_s": 1})
    await atoll.commands.send_command(cmd)
    assert await wait_for(lambda: len(got) >= 3)
    assert got[2] == (
        topics.gateway_command("gw", "k1", cmd.id),
        {"id": cmd.id, "name": "reboot", "args": {"delay_s": 1}, "device": "k1"},
    )
    await asyncio.to_thread(
        publish, topics.gateway_command_ack("gw", "k1", cmd.id), {"status": "ok"}
    )
    assert await wait_for(lambda: reg.get_command("k1", cmd.id).status == "acked")

    # A plain device may write its own gateway/... topics at the broker; Atoll refuses them.
    plain = await asyncio.to_thread(login, broker.port, "plain", plain_creds.secret)
    info = plain.publish(
        topics.gateway_telemetry("plain"), json.dumps({"k1": {"values": {"temperature": 5}}}), 1
    )
    await asyncio.to_thread(info.wait_for_publish, 10)

    async def refused() -> bool:
        return (await rejections(atoll, "plain")).get("acl_publish") == 1

    for _ in range(100):
        if await refused():
            break
        await asyncio.sleep(0.05)
    assert await refused()
    assert stored(atoll, "k1") == [21.5]
    await asyncio.to_thread(close, plain)
    await asyncio.to_thread(close, gw)
