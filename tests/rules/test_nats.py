"""The rules service on NATS JetStream (a ``nats-server -js`` these tests start): its inputs
come through a durable consumer shared by every rules process of the deployment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from atoll.bus.nats import NatsBus, consumer_name
from atoll.core import topics
from atoll.ingest.events import encode_telemetry
from atoll.rules.clock import FakeClock
from atoll.rules.model import ChannelSpec
from atoll.rules.service import RulesService
from atoll.testing.nats_server import NatsServer

from .conftest import SENT, T0

HOT = {
    "name": "Hot",
    "project": "p",
    "target": {"devices": ["d1", "d2"]},
    "condition": {"type": "threshold", "metric": "temp", "value": 100, "clear": 90},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with NatsServer(tmp_path_factory.mktemp("nats")) as s:
        yield s


@pytest.fixture
async def deployment(server):
    """``make()`` gives a bus of one deployment (own prefix and stream); closed afterwards."""
    root = "r" + uuid.uuid4().hex[:10]
    buses: list[NatsBus] = []

    def make(**kw) -> NatsBus:
        bus = NatsBus(server.url, prefix=root, stream="S" + root, **kw)
        buses.append(bus)
        return bus

    yield make
    for b in buses:
        await b.close()


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


async def _reading(bus: NatsBus, device: str, temp: float, at_us: int = T0) -> None:
    await bus.publish(
        f"telemetry.p.{device}",
        encode_telemetry("p", device, ["temp"], [0], [at_us], [temp]),
    )


async def _idle(bus: NatsBus) -> bool:
    """Whether the rules group's telemetry consumer comes to have nothing left to deliver or
    to be acknowledged (acks are not confirmed, so the server may lag a little)."""
    await bus.connect()
    name = consumer_name("rules", topics.ALL_TELEMETRY)
    for _ in range(500):
        info = await bus._js.consumer_info(bus.stream, name)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_reading_published_while_rules_are_down_raises_one_alarm_on_start(
    deployment, tmp_path
):
    url = f"sqlite:///{tmp_path}/rules.db"
    clock = FakeClock(T0)
    first = RulesService(deployment(), db=url, clock=clock, tick_interval=0)
    await first.create_rule(HOT)
    await first.start()  # creates the deployment's durable "rules" consumers
    await first.stop()
    await first.bus.close()  # type: ignore[union-attr]

    ingest = deployment()
    await _reading(ingest, "d1", 150)  # stored while no rules process runs

    second = RulesService(deployment(), db=url, clock=clock, tick_interval=0)
    await second.start()
    try:
        await _until(lambda: second.stats["readings"] == 1, "the reading evaluated")
        (alarm,) = second.alarms.list()
        assert (alarm.device, alarm.value, alarm.status) == ("d1", 150, "active")
        assert await _idle(ingest), "the evaluated reading was not acknowledged"
    finally:
        await second.stop()


async def test_two_rules_processes_sharing_the_work_evaluate_each_reading_once(
    deployment, tmp_path
):
    url = f"sqlite:///{tmp_path}/rules.db"
    clock = FakeClock(T0)
    kw = {"db": url, "clock": clock, "tick_interval": 0, "standby": False}
    a = RulesService(deployment(), **kw)  # type: ignore[arg-type]
    await a.create_rule(HOT)
    b = RulesService(deployment(), **kw)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    ingest = deployment()
    try:
        n = 20
        for i in range(n):
            await _reading(ingest, "d2", 20 + i, T0 + i)
        await _reading(ingest, "d1", 150, T0 + n)
        total = lambda: a.stats["readings"] + b.stats["readings"]  # noqa: E731
        await _until(lambda: total() >= n + 1, "every reading evaluated")
        assert await _idle(ingest)  # everything delivered and acknowledged: no second copy
        assert total() == n + 1, "a reading was evaluated by both processes"
        (alarm,) = a.alarms.list()
        assert (alarm.device, alarm.value) == ("d1", 150)
    finally:
        await a.stop()
        await b.stop()


async def test_a_standby_rules_process_takes_over_where_the_other_stopped(deployment, tmp_path):
    url = f"sqlite:///{tmp_path}/rules.db"
    clock = FakeClock(T0)
    # A message published as the holder leaves may already be on its way to it: the server
    # gives it to the group again after ack_wait (30 s by default, 1 s here).
    a = RulesService(deployment(ack_wait=1.0), db=url, clock=clock, tick_interval=0)
    await a.create_rule(HOT)
    b = RulesService(deployment(ack_wait=1.0), db=url, clock=clock, tick_interval=0)
    await a.start()
    await b.start()
    assert (a.standby, a.leader, b.leader) == (True, True, False)
    ingest = deployment()
    try:
        n = 20
        for i in range(n):
            await _reading(ingest, "d2", 20 + i, T0 + i)
        await _reading(ingest, "d1", 150, T0 + n)
        await _until(lambda: a.stats["readings"] == n + 1, "every reading evaluated by a")
        assert await _idle(ingest)
        assert b.stats["readings"] == 0  # the standby consumed nothing
        (alarm,) = a.alarms.list()
        await a.stop()
        await _reading(ingest, "d1", 50, T0 + n + 1)  # nobody consumes: it waits
        await b.tick()  # the standby's next timer pass takes the lease and consumes
        await _until(lambda: b.stats["readings"] == 1, "the waiting reading evaluated by b")
        assert await _idle(ingest)
        assert b.leader and a.stats["readings"] == n + 1
        assert b.alarms.get(alarm.id).status == "cleared"  # b clears what a raised
    finally:
        await a.stop()
        await b.stop()


async def test_two_rules_processes_send_one_escalation_and_one_repeat(deployment, tmp_path):
    url = f"sqlite:///{tmp_path}/rules.db"
    clock, box = FakeClock(T0), "nats-escalation-" + uuid.uuid4().hex
    a = RulesService(deployment(), db=url, clock=clock, tick_interval=0)
    a.put_channel(ChannelSpec(name="ops", project="p", type="recorder", config={"box": box}))
    await a.create_rule(
        {
            **HOT,
            "notify": {"channels": ["ops"], "on": ["raised"], "repeat_every": "5m"},
            "escalation": [
                {"after": "1m", "severity": "major", "channels": ["ops"]},
                {"after": "20m", "severity": "critical", "channels": ["ops"]},
            ],
        }
    )
    b = RulesService(deployment(), db=url, clock=clock, tick_interval=0)
    await a.start()
    await b.start()
    ingest = deployment()

    async def tick_both(at_s: int) -> None:
        clock.set(T0 + at_s * 1_000_000)
        for svc in (a, b, b, a):
            await svc.tick()
        for svc in (a, b):
            await svc.notifier.drain()

    try:
        await _reading(ingest, "d1", 150)
        await _until(lambda: a.stats["raised"] + b.stats["raised"] == 1, "the alarm raised")
        assert await _idle(ingest)  # acked: the handler (and its notification) is done
        await tick_both(0)
        assert [n.event for n in SENT[box]] == ["raised"]
        await tick_both(61)
        assert [n.event for n in SENT[box]] == ["raised", "escalated"]
        assert (a.leader, b.leader) == (True, False)
        await tick_both(61 + 300)
        assert [n.event for n in SENT[box]] == ["raised", "escalated", "repeat"]
        # The leader stops: the other process takes the timers over at its next pass.
        await a.stop()
        clock.set(T0 + 1200 * 1_000_000)
        await b.tick()
        await b.notifier.drain()
        assert b.leader
        assert [n.event for n in SENT[box]] == ["raised", "escalated", "repeat", "escalated"]
        assert b.alarms.open_for("hot", "d1").severity == "critical"
    finally:
        await a.stop()
        await b.stop()
