"""Gateways over the embedded broker (docs/DEVICES.md, "Gateways"): a real platform, real paho
clients. A gateway declares children (``gateway/connect``), sends their telemetry as one
device (``gateway/telemetry``) and carries their commands; every device it names is checked
by ``atoll.core.acl.is_gateway_child`` and hostile names are refused, counted and logged."""

import asyncio
import json
import threading
import time

import pytest

from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.ingest.gateway import GATEWAY_CHILD, MAX_CHILDREN
from tests.ingest.conftest import CLIMATE, close
from tests.ingest.test_embedded_broker import END, points, publish_all

B1 = "beta~b1"


class World:
    """``fleet`` (default tenant: project lab, s1-s3) plus gateway ``gw`` with child ``k1``,
    gateway ``gw2`` with child ``k2``, project lab2's gateway ``gw3`` with child ``o1``, and
    ``beta~b1`` of tenant beta."""

    def __init__(self, fleet) -> None:
        self.fleet = fleet
        reg = self.reg = fleet.platform.registry
        for gw in ("gw", "gw2"):
            _, creds = reg.register_device("lab", device_id=gw, kind="gateway")
            fleet.secrets[gw] = creds.secret
        reg.register_device("lab", device_id="k1", device_type="climate", parent="gw")
        reg.register_device("lab", device_id="k2", device_type="climate", parent="gw2")
        reg.create_project("default", "Lab 2", project_id="lab2")
        reg.register_device("lab2", device_id="gw3", kind="gateway")
        reg.register_device("lab2", device_id="o1", parent="gw3")  # another project's child
        beta = reg.create_project(reg.create_tenant("Beta", "beta").id, "Beta lab").id
        reg.create_device_type(beta, "climate", CLIMATE)
        reg.register_device(beta, device_id="b1", device_type="climate")

    async def rejections(self, device):
        await self.fleet.platform.pipeline.flush_counters()
        return self.fleet.rejections(device)


@pytest.fixture
async def world(fleet):
    return World(fleet)


class Gateway:
    """A connected paho gateway that records what Atoll sends it."""

    def __init__(self, fleet, device: str, filters=("gateway/connect/ack", "gateway/commands/+/+")):
        self.device = device
        self.client, rc = fleet.connect(device)
        assert rc is not None and not rc.is_failure
        self.got: list[tuple[str, dict]] = []
        self.arrived = threading.Condition()

        def on_message(cl, ud, msg):
            with self.arrived:
                self.got.append((msg.topic, json.loads(msg.payload)))
                self.arrived.notify_all()

        subscribed = threading.Event()
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.subscribe([(f"{topics.device_root(device)}/{f}", 1) for f in filters])
        assert subscribed.wait(10)

    def publish(self, topic: str, *payloads) -> list[bool]:
        return publish_all(
            self.client,
            topic,
            [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads],
        )

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.got) >= n, timeout)
            return list(self.got)

    def close(self) -> None:
        close(self.client)


async def open_gateway(fleet, device="gw", **kw) -> Gateway:
    return await asyncio.to_thread(Gateway, fleet, device, **kw)


async def test_connect_registers_a_child_durably_and_answers(world):
    gw = await open_gateway(world.fleet)
    connect = topics.gateway_connect("gw")
    hello = {"device": "press-1", "device_type": "climate"}
    assert await asyncio.to_thread(gw.publish, connect, hello) == [True]
    # PUBACK received => the child is registered (no waiting here).
    child = world.reg.get_device("press-1")
    assert (child.project, child.parent, child.kind, child.device_type) == (
        "lab",
        "gw",
        "device",
        "climate",
    )
    assert not child.has_credentials  # it speaks only through its gateway
    # Declaring it again (a gateway restarts) is fine; a child registered by REST too, whatever
    # type the gateway thinks it has (it keeps its own; an operator changes it).
    again = (hello, {"device": "k1"}, {"device": "k1", "device_type": "other"})
    assert await asyncio.to_thread(gw.publish, connect, *again) == [True] * 3
    got = await asyncio.to_thread(gw.wait, 4)
    assert [t for t, _ in got] == [topics.gateway_connect_ack("gw")] * 4
    assert [a for _, a in got] == [
        {"device": "press-1", "status": "ok", "reason": ""},
        {"device": "press-1", "status": "ok", "reason": ""},
        {"device": "k1", "status": "ok", "reason": ""},
        {"device": "k1", "status": "ok", "reason": ""},
    ]
    assert world.reg.get_device("k1").device_type == "climate"
    assert [d.id for d in world.reg.list_devices("lab", parent="gw")] == ["k1", "press-1"]
    await asyncio.to_thread(gw.close)


async def test_connect_never_adopts_a_device_it_may_not_have(world):
    gw = await open_gateway(world.fleet)
    connect = topics.gateway_connect("gw")
    hostile = [
        {"device": "s1"},  # a plain device of its own project: never adopted
        {"device": "k2"},  # another gateway's child
        {"device": "o1"},  # another project's (another gateway's) child
        {"device": B1},  # another tenant's device (refused as a malformed id)
        {"device": "gw2"},  # another gateway
        {"device": "gw"},  # itself
        {"device": "new-1", "device_type": "no-such-type"},
        {"device": ""},
        {"device_type": "climate"},
        {"device": 7},
        {"device": "x" * 300},
        {"device": "Bad Id!"},
    ]
    acked = await asyncio.to_thread(gw.publish, connect, *hostile, b"{not json", b"[1, 2]")
    assert all(acked)  # handled: the gateway moves past them
    got = await asyncio.to_thread(gw.wait, len(hostile) + 0)
    answers = [a for _, a in got]
    assert len(answers) == len(hostile)  # malformed JSON gets no answer (no device to name)
    assert all(a["status"] == "error" and a["reason"] for a in answers), answers
    assert "not a child of gateway" in answers[0]["reason"] or "exists" in answers[0]["reason"]
    assert world.reg.get_device("s1").parent is None
    assert world.reg.get_device("k2").parent == "gw2"
    assert world.reg.list_devices("lab", parent="gw") == [world.reg.get_device("k1")]
    rej = await world.rejections("gw")
    assert rej[GATEWAY_CHILD] == len(hostile)
    assert rej["malformed_json"] == 1 and rej["wrong_type"] == 1
    # Still connected and served.
    assert await asyncio.to_thread(gw.publish, connect, {"device": "fine-1"}) == [True]
    assert world.reg.get_device("fine-1").parent == "gw"
    await asyncio.to_thread(gw.close)


async def test_connect_counts_against_the_device_quota(world):
    n = sum(len(world.reg.list_devices(p.id)) for p in world.reg.list_projects("default"))
    world.reg.set_quotas("default", {"devices": n})
    gw = await open_gateway(world.fleet)
    assert await asyncio.to_thread(gw.publish, topics.gateway_connect("gw"), {"device": "n1"})
    (_, answer), *_ = await asyncio.to_thread(gw.wait, 1)
    assert answer["status"] == "error" and "quota" in answer["reason"]
    with pytest.raises(Exception, match="not found"):
        world.reg.get_device("n1")
    await asyncio.to_thread(gw.close)


def lab_messages(reg) -> int:
    return sum(u.messages for u in reg.usage(["default"], projects=["lab"]))


async def test_telemetry_is_stored_as_each_childs_own(world):
    await world.fleet.platform.pipeline.flush_counters()
    world.reg.flush_usage()
    before = lab_messages(world.reg)
    gw = await open_gateway(world.fleet)
    assert await asyncio.to_thread(gw.publish, topics.gateway_connect("gw"), {"device": "p1"})
    body = {
        "k1": {"ts": 1795428000000, "values": {"temperature": 21.5, "door": True}},
        "p1": [
            {"ts": 1795428000000, "values": {"temperature": 1}},
            {"ts": 1795428001000, "values": {"temperature": 2}},
        ],
        # Refused as not its children; the others are stored.
        "s1": {"values": {"temperature": 99}},
        "k2": {"values": {"temperature": 99}},
        B1: {"values": {"temperature": 99}},
        "o1": {"values": {"temperature": 99}},
        "nobody": {"values": {"temperature": 99}},
    }
    assert await asyncio.to_thread(gw.publish, topics.gateway_telemetry("gw"), body) == [True]
    # PUBACK => the accepted parts are durable.
    assert points(world.fleet, "k1") == [21.5] and points(world.fleet, "k1", "door") == [1.0]
    assert points(world.fleet, "p1") == [1.0, 2.0]  # p1 has no type: any metric
    assert points(world.fleet, "s1") == points(world.fleet, "k2") == points(world.fleet, "gw") == []
    store = world.fleet.platform.store
    assert store.query_raw(SeriesKey("beta~beta-lab", B1, "temperature"), 0, END).value.size == 0
    assert await world.rejections("gw") == {GATEWAY_CHILD: 5}
    assert (
        world.fleet.platform.store.query_raw(
            SeriesKey("lab2", "o1", "temperature"), 0, END
        ).value.size
        == 0
    )
    for d in ("s1", "k2", B1, "o1"):
        assert await world.rejections(d) == {}
    # A child's bad part is refused as its own message would be, counted on the child.
    bad = {"k1": {"values": {"pressure": 1}}, "p1": {"values": {"temperature": 3}}}
    assert await asyncio.to_thread(gw.publish, topics.gateway_telemetry("gw"), bad) == [True]
    assert points(world.fleet, "p1") == [1.0, 2.0, 3.0]
    assert await world.rejections("k1") == {"unknown_series": 1}
    # Last seen and usage are the children's.
    await world.fleet.platform.pipeline.flush_counters()
    world.reg.flush_usage()
    assert world.reg.get_device("k1").last_seen and world.reg.get_device("p1").last_seen
    assert world.reg.get_device("gw").last_seen  # in contact, though it stores nothing itself
    assert points(world.fleet, "gw") == []
    assert lab_messages(world.reg) - before == 3  # k1, p1, then p1 again (metered per child)
    await asyncio.to_thread(gw.close)


async def test_a_plain_device_may_not_speak_as_a_gateway(world):
    c, _rc = await asyncio.to_thread(world.fleet.connect, "s1")
    acked = await asyncio.to_thread(
        publish_all,
        c,
        topics.gateway_telemetry("s1"),
        [json.dumps({"s2": {"values": {"temperature": 5}}}).encode()],
    )
    acked += await asyncio.to_thread(
        publish_all, c, topics.gateway_connect("s1"), [b'{"device": "s2"}']
    )
    acked += await asyncio.to_thread(
        publish_all, c, topics.gateway_command_ack("s1", "s2", "c-1"), [b'{"status": "ok"}']
    )
    assert acked == [True, True, True]  # handled and counted; the connection stays
    assert points(world.fleet, "s2") == []
    assert world.reg.get_device("s2").parent is None
    assert await world.rejections("s1") == {"acl_publish": 3}
    # A gateway's topics under another device's subtree are refused too.
    gw = await open_gateway(world.fleet)
    assert await asyncio.to_thread(
        gw.publish, topics.gateway_telemetry("gw2"), {"k2": {"values": {"temperature": 1}}}
    )
    assert points(world.fleet, "k2") == []
    assert await world.rejections("gw") == {"acl_publish": 1}
    await asyncio.to_thread(close, c)
    await asyncio.to_thread(gw.close)


async def test_malformed_and_oversized_gateway_messages_are_counted_never_a_crash(world):
    pipeline = world.fleet.platform.pipeline
    pipeline.limits = pipeline.limits.__class__(max_bytes=64 * 1024)
    gw = await open_gateway(world.fleet)
    many = {f"c{i}": {"values": {"temperature": 1}} for i in range(MAX_CHILDREN + 1)}
    bad = [
        b"{not json",
        b"[]",
        b'"k1"',
        b"{}",
        b'{"k1": 5}',  # a part that is no reading: refused on k1 like its own message
        json.dumps(many).encode(),
        b'{"k1": {"values": {"temperature": 1}}, "pad": "' + b"x" * 70_000 + b'"}',
        b"\xff\xfe",
        b'{"k1": ' * 5000 + b"1" + b"}" * 5000,
    ]
    acked = await asyncio.to_thread(gw.publish, topics.gateway_telemetry("gw"), *bad)
    assert all(acked)
    assert points(world.fleet, "k1") == []
    rej = await world.rejections("gw")
    assert rej.get("malformed_json", 0) >= 2 and rej.get("wrong_type", 0) >= 3, rej
    assert rej.get("too_large", 0) == 2, rej
    assert await world.rejections("k1")
    # The connection still works.
    ok = {"k1": {"values": {"temperature": 7}}}
    assert await asyncio.to_thread(gw.publish, topics.gateway_telemetry("gw"), ok) == [True]
    assert points(world.fleet, "k1") == [7.0]
    await asyncio.to_thread(gw.close)


async def test_commands_to_a_child_go_through_its_gateway(world):
    reg, commands = world.reg, world.fleet.platform.commands
    gw = await open_gateway(world.fleet)
    cmd = reg.create_command("k1", "open_valve", {"pct": 40})
    await commands.send_command(cmd)
    (topic, doc), *_ = await asyncio.to_thread(gw.wait, 1)
    assert topic == topics.gateway_command("gw", "k1", cmd.id)
    assert doc == {"id": cmd.id, "name": "open_valve", "args": {"pct": 40}, "device": "k1"}
    ack = {"status": "ok", "result": {"opened": True}}
    # Hostile acks first: for a plain device's command, another gateway's child's, a command
    # that is not this child's.
    s1_cmd = reg.create_command("s1", "reboot", {})
    k2_cmd = reg.create_command("k2", "reboot", {})
    assert all(
        await asyncio.to_thread(
            gw.publish,
            topics.gateway_command_ack("gw", "s1", s1_cmd.id),
            ack,
        )
        + await asyncio.to_thread(
            gw.publish, topics.gateway_command_ack("gw", "k2", k2_cmd.id), ack
        )
        + await asyncio.to_thread(
            gw.publish, topics.gateway_command_ack("gw", "k1", s1_cmd.id), ack
        )
    )
    assert reg.get_command("s1", s1_cmd.id).status == "pending"
    assert reg.get_command("k2", k2_cmd.id).status == "pending"
    assert await world.rejections("gw") == {GATEWAY_CHILD: 2}
    assert await world.rejections("k1") == {"unknown_command": 1}
    # The real answer.
    ack_topic = topics.gateway_command_ack("gw", "k1", cmd.id)
    assert await asyncio.to_thread(gw.publish, ack_topic, ack) == [True]
    done = reg.get_command("k1", cmd.id)
    assert (done.status, done.result) == ("acked", {"opened": True})
    await asyncio.to_thread(gw.close)


async def test_a_childs_pending_commands_reach_its_gateway_when_it_subscribes(world):
    reg = world.reg
    cmd = reg.create_command("k1", "calibrate", {})
    with pytest.raises(Exception, match="not connected|subscribed|no client"):
        await world.fleet.platform.commands.send_command(cmd)
    gw = await open_gateway(world.fleet, filters=("gateway/commands/+/+",))
    (topic, doc), *_ = await asyncio.to_thread(gw.wait, 1)
    assert topic == topics.gateway_command("gw", "k1", cmd.id) and doc["device"] == "k1"
    assert reg.get_command("k1", cmd.id).status == "delivered"
    await asyncio.to_thread(gw.close)


async def test_a_tenants_gateway_names_children_without_the_tenant_prefix(world):
    reg, fleet = world.reg, world.fleet
    reg.create_tenant("Acme", "acme")
    line = reg.create_project("acme", "Line", project_id="line").id
    reg.create_device_type(line, "climate", CLIMATE)
    gw, creds = reg.register_device(line, device_id="edge", kind="gateway", tenant="acme")
    fleet.secrets[gw.id] = creds.secret
    g = await open_gateway(fleet, gw.id)
    hello = {"device": "press-1", "device_type": "climate"}
    assert await asyncio.to_thread(g.publish, topics.gateway_connect(gw.id), hello)
    assert reg.get_device("acme~press-1").parent == "acme~edge"
    body = {"press-1": {"values": {"temperature": 3}}, "k1": {"values": {"temperature": 3}}}
    assert await asyncio.to_thread(g.publish, topics.gateway_telemetry(gw.id), body)
    key = SeriesKey(line, "acme~press-1", "temperature")
    assert fleet.platform.store.query_raw(key, 0, END).value.tolist() == [3.0]
    assert points(fleet, "k1") == []  # the default tenant's k1 is not acme's "k1"
    cmd = reg.create_command("acme~press-1", "stop", {})
    await fleet.platform.commands.send_command(cmd)
    got = await asyncio.to_thread(g.wait, 2)
    assert got[-1][0] == topics.gateway_command(gw.id, "press-1", cmd.id)
    assert got[-1][1]["device"] == "press-1"
    await asyncio.to_thread(g.close)


async def test_children_and_their_tenant_keep_their_rate_limits_through_a_gateway(world):
    """Over MQTT the gateway's message waits (stored, counted ``throttled`` on the gateway);
    over HTTP a part of a child over its limit is refused ``rate_limited``."""
    from atoll.ingest import gateway

    pipeline = world.fleet.platform.pipeline
    assert pipeline.set_tenant_rate("default", 50)  # burst: two seconds' worth, 100 points
    gw = await open_gateway(world.fleet)
    batch = [{"ts": 1795428000000 + i, "values": {"temperature": i % 50}} for i in range(100)]
    later = [{"ts": 1795428100000 + i, "values": {"temperature": i % 50}} for i in range(100)]
    t0 = time.monotonic()
    acked = await asyncio.to_thread(
        gw.publish, topics.gateway_telemetry("gw"), {"k1": batch}, {"k1": later}
    )
    elapsed = time.monotonic() - t0
    assert acked == [True, True] and len(points(world.fleet, "k1")) == 200
    assert elapsed >= 1.5  # 200 points at 50/s with a burst of 100: about 2 s
    assert (await world.rejections("gw")).get("throttled", 0) >= 1
    # HTTP can refuse: a part that puts the child (its tenant) in debt is taken, the next one
    # is refused while the debt lasts (300 points at 50/s: 6 s).
    identity = world.reg.device_identities(["gw"])["gw"]
    k1 = world.reg.device_identities(["k1"])["k1"]
    for _ in range(200):  # the MQTT messages' debt is paid (to within a point's worth)
        if pipeline.over_limit(k1) == 0:
            break
        await asyncio.sleep(0.02)
    big = [{"ts": 1795428200000 + i, "values": {"temperature": 1}} for i in range(300)]
    result = await gateway.telemetry(pipeline, identity, json.dumps({"k1": big}).encode(), "http")
    assert result.accepted == {"k1": 300}
    one = json.dumps({"k1": {"values": {"temperature": 1}}}).encode()
    result = await gateway.telemetry(pipeline, identity, one, "http")
    assert result.accepted == {} and result.refused["k1"]["reason"] == "rate_limited"
    assert (await world.rejections("k1")).get("rate_limited") == 1
    pipeline.set_tenant_rate("default", None)
    await asyncio.to_thread(gw.close)


async def test_a_kind_change_through_the_api_takes_effect_on_the_live_connection(world):
    """``PATCH /devices/{d} {"kind": ...}`` closes the device's connections before answering:
    it reconnects as what it is now (a connection made as a plain device would otherwise keep
    being refused its gateway messages, or a demoted gateway keep sending them)."""
    from tests.ingest.test_embedded_broker_revocation import call

    reg, fleet = world.reg, world.fleet
    reg.register_device("lab", device_id="k3", device_type="climate")
    c, _rc = await asyncio.to_thread(fleet.connect, "s3")
    lost = threading.Event()
    c.on_disconnect = lambda *a: lost.set()
    r = await call(fleet.platform, "PATCH", "/api/v1/devices/s3", {"kind": "gateway"})
    assert r.status_code == 200 and r.json()["kind"] == "gateway"
    assert await asyncio.to_thread(lost.wait, 5)
    await asyncio.to_thread(close, c)
    r = await call(fleet.platform, "PATCH", "/api/v1/devices/k3", {"parent": "s3"})
    assert r.status_code == 200 and r.json()["parent"] == "s3"
    g = await open_gateway(fleet, "s3")
    body = {"k3": {"values": {"temperature": 4}}}
    assert await asyncio.to_thread(g.publish, topics.gateway_telemetry("s3"), body) == [True]
    assert points(fleet, "k3") == [4.0]
    # A gateway with a child cannot be made a plain device (409), nor deleted.
    r = await call(fleet.platform, "PATCH", "/api/v1/devices/s3", {"kind": "device"})
    assert r.status_code == 409 and "detach" in r.json()["hint"]
    r = await call(fleet.platform, "DELETE", "/api/v1/devices/s3", None)
    assert r.status_code == 409
    await asyncio.to_thread(g.close)


async def test_a_connection_with_many_messages_held_back_is_not_read_meanwhile(world, monkeypatch):
    """Messages handled one by one and held back (a gateway's, over its children's limits)
    stop the reading of the connection past ``MAX_OWED`` awaiting their PUBACK, instead of
    piling up; everything is still stored and acknowledged, in order."""
    from atoll.ingest import embedded_connection

    monkeypatch.setattr(embedded_connection, "MAX_OWED", 2)
    pipeline = world.fleet.platform.pipeline
    pipeline.set_tenant_rate("default", 200)  # burst 400 points
    gw = await open_gateway(world.fleet)
    msgs = [
        {
            "k1": [
                {"ts": 1795428000000 + 100 * m + i, "values": {"temperature": m}}
                for i in range(100)
            ]
        }
        for m in range(8)
    ]
    acked = await asyncio.to_thread(gw.publish, topics.gateway_telemetry("gw"), *msgs)
    assert acked == [True] * 8
    assert len(points(world.fleet, "k1")) == 800
    pipeline.set_tenant_rate("default", None)
    await asyncio.to_thread(gw.close)
