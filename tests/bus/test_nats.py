"""The NATS JetStream bus against a real ``nats-server -js`` this session starts itself."""

import asyncio
import uuid

import pytest

from atoll.bus.nats import NatsBus
from atoll.bus.port import Message
from atoll.core.errors import InvalidInput, Unavailable
from atoll.testing.bus import check_bus
from atoll.testing.nats_server import NatsServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with NatsServer(tmp_path_factory.mktemp("nats")) as s:
        yield s


@pytest.fixture
def root():
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def make_bus(server, root):
    """Buses on one stream that also holds ``{root}.>``; closed after the test."""
    buses = []
    stream = "S" + root

    async def make(**kw) -> NatsBus:
        bus = NatsBus(server.url, stream=stream, subjects=(f"{root}.>",), **kw)
        await bus.connect()
        buses.append(bus)
        return bus

    yield make
    for b in buses:
        await b.close()


class Inbox:
    def __init__(self):
        self.got: list[bytes] = []

    async def __call__(self, msg: Message) -> None:
        self.got.append(msg.data)

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[bytes]:
        async def _wait():
            while len(self.got) < n:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(_wait(), timeout)
        return self.got


async def test_nats_bus_passes_conformance_suite(make_bus, root):
    await check_bus(await make_bus(), root=root)


def firsts(items: list[bytes]) -> list[bytes]:
    """Delivery is at least once: what arrived, repeats removed, in first-arrival order."""
    return list(dict.fromkeys(items))


async def _until(cond, timeout: float = 8.0) -> None:
    async def _wait():
        while not cond():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_wait(), timeout)


# A message the server pushed to a worker that was just leaving is delivered again after
# ack_wait; these tests shorten it so such a race costs a second, not thirty.
async def test_acked_publish_waits_for_a_later_worker_of_the_group(make_bus, root):
    first = await make_bus(ack_wait=1.0)
    early = Inbox()
    sub = await first.subscribe(f"{root}.jobs.>", early, group="workers")
    await first.publish(f"{root}.jobs.1", b"seen")
    await early.wait_for(1)
    await sub.unsubscribe()
    await first.close()  # every worker is gone

    publisher = await make_bus()
    await publisher.publish(f"{root}.jobs.2", b"kept")
    await publisher.publish(f"{root}.jobs.3", b"kept too")

    late = Inbox()
    await (await make_bus()).subscribe(f"{root}.jobs.>", late, group="workers")
    await _until(lambda: len(set(late.got)) >= 2)
    await asyncio.sleep(0.2)
    assert sorted(set(late.got)) == [b"kept", b"kept too"], (
        "lost, or the group's acked message came back"
    )


async def test_acked_messages_and_group_cursors_survive_a_server_restart(tmp_path, root):
    with NatsServer(tmp_path / "own") as server:
        kw = {"stream": "R" + root, "subjects": (f"{root}.>",), "ack_wait": 1.0}
        worker, publisher, steady = (NatsBus(server.url, **kw) for _ in range(3))
        first, kept = Inbox(), Inbox()
        await worker.subscribe(f"{root}.w", first, group="w")
        await steady.subscribe(f"{root}.w", kept, group="steady")  # stays up across the restart
        await publisher.publish(f"{root}.w", b"before")
        await first.wait_for(1)
        await worker.close()
        await publisher.publish(f"{root}.w", b"while down")  # acked: on disk

        await asyncio.to_thread(server.restart)
        for _ in range(100):  # the publisher reconnects by itself
            try:
                await publisher.publish(f"{root}.w", b"after")
                break
            except Unavailable:
                await asyncio.sleep(0.1)
        second = Inbox()
        worker = NatsBus(server.url, **kw)
        await worker.subscribe(f"{root}.w", second, group="w")
        await _until(lambda: {b"while down", b"after"} <= set(second.got))
        await _until(lambda: len(set(kept.got)) >= 3)
        assert firsts(kept.got) == [b"before", b"while down", b"after"]
        for bus in (worker, publisher, steady):
            await bus.close()


async def test_failed_handler_gets_the_message_again(make_bus, root):
    bus = await make_bus(retry_delay=0.05)
    calls: list[bytes] = []

    async def flaky(msg: Message) -> None:
        calls.append(msg.data)
        if calls.count(msg.data) < 3:
            raise RuntimeError("transient")

    await bus.subscribe(f"{root}.r", flaky, group="retry")
    await bus.publish(f"{root}.r", b"x")

    async def _thrice():
        while len(calls) < 3:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_thrice(), 5)
    await asyncio.sleep(0.3)
    assert calls == [b"x", b"x", b"x"], "acked after the third (successful) try, then no more"


async def test_poison_message_is_dropped_after_max_deliver(make_bus, root):
    bus = await make_bus(retry_delay=0.02, max_deliver=3)
    calls, ok = [], Inbox()

    async def poison(msg: Message) -> None:
        if msg.data == b"bad":
            calls.append(msg.data)
            raise RuntimeError("always")
        await ok(msg)

    await bus.subscribe(f"{root}.p", poison)
    await bus.publish(f"{root}.p", b"bad")
    await bus.publish(f"{root}.p", b"good")
    await ok.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(calls) == 3
    assert ok.got == [b"good"]


async def test_slow_handler_does_not_make_queued_messages_time_out(make_bus, root):
    # ack_wait runs from the server's send: without a small max_ack_pending, the last of these
    # would wait 1.5 s behind the slow handler and be sent again.
    bus = await make_bus(ack_wait=1.0, max_ack_pending=2)
    got = Inbox()

    async def slow(msg: Message) -> None:
        await asyncio.sleep(0.15)
        await got(msg)

    await bus.subscribe(f"{root}.slow", slow, group="slow")
    for i in range(10):
        await bus.publish(f"{root}.slow", str(i).encode())
    await got.wait_for(10, timeout=10)
    await asyncio.sleep(1.2)
    assert got.got == [str(i).encode() for i in range(10)]


async def test_two_workers_share_a_group_and_a_plain_subscriber_sees_all(make_bus, root):
    w1, w2, watcher = await make_bus(), await make_bus(), await make_bus()
    g1, g2, everything = Inbox(), Inbox(), Inbox()
    await w1.subscribe(f"{root}.q.*", g1, group="ingest")
    await w2.subscribe(f"{root}.q.*", g2, group="ingest")
    await watcher.subscribe(f"{root}.q.*", everything)
    n = 300
    for i in range(n):
        await watcher.publish(f"{root}.q.{i % 5}", str(i).encode())
    await everything.wait_for(n)

    async def _shared():
        while len(g1.got) + len(g2.got) < n:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_shared(), 5)
    await asyncio.sleep(0.2)
    assert sorted(int(x) for x in g1.got + g2.got) == list(range(n))
    assert g1.got and g2.got, "both workers must get a share"


async def test_subjects_outside_the_stream_are_refused(make_bus, root):
    bus = await make_bus()
    with pytest.raises(InvalidInput):
        await bus.publish("nowhere.at.all", b"x")

    async def handler(msg):
        pass

    with pytest.raises(InvalidInput):
        await bus.subscribe(">", handler)


async def test_atoll_subjects_are_in_the_default_stream(server):
    bus = NatsBus(server.url)
    inbox = Inbox()
    await bus.subscribe("alarm.*", inbox)
    await bus.publish("alarm.p1", b"a")
    await bus.publish("telemetry.p1.d1", b"t")
    assert await inbox.wait_for(1) == [b"a"]
    await bus.close()


async def test_an_existing_stream_gets_missing_subjects_added(server, root):
    stream = "X" + root
    first = NatsBus(server.url, stream=stream, subjects=(f"{root}.a.>",))
    await first.connect()
    second = NatsBus(server.url, stream=stream, subjects=(f"{root}.b.>",))
    inbox = Inbox()
    await second.subscribe(f"{root}.b.*", inbox)
    await first.publish(f"{root}.a.1", b"a")
    await second.publish(f"{root}.b.1", b"b")
    assert await inbox.wait_for(1) == [b"b"]
    info = await second._js.stream_info(stream)
    assert sorted(info.config.subjects) == [f"{root}.a.>", f"{root}.b.>"]
    await first.close()
    await second.close()


async def test_a_message_over_the_server_max_payload_is_invalid_input(make_bus, root):
    bus = await make_bus()
    with pytest.raises(InvalidInput, match="too large") as e:
        await bus.publish(f"{root}.big", b"x" * (2 * 1024 * 1024))  # nats-server default: 1 MB
    assert "max_payload" in e.value.hint


async def test_unreachable_server_is_unavailable():
    bus = NatsBus("nats://127.0.0.1:1", timeout=0.5)
    with pytest.raises(Unavailable):
        await bus.connect()


async def test_closed_bus_refuses_publish(make_bus, root):
    bus = await make_bus()
    await bus.close()
    with pytest.raises(Unavailable):
        await bus.publish(f"{root}.x", b"x")


def test_url_options():
    bus = NatsBus.from_url(
        "nats://u:p@example:4223?stream=S1&max_age=60&max_deliver=2&max_ack_pending=9"
    )
    assert (bus.servers, bus.stream, bus.max_age, bus.max_deliver, bus.max_ack_pending) == (
        ["nats://u:p@example:4223"],
        "S1",
        60.0,
        2,
        9,
    )
    with pytest.raises(InvalidInput):
        NatsBus.from_url("nats://example?bogus=1")


async def test_two_deployments_on_one_nats_are_isolated_by_prefix_and_stream(server, root):
    """``stream=`` alone does not separate two deployments: both want the same subjects, and
    JetStream refuses a second stream over them (the error says what to set). With its own
    ``prefix=`` each deployment has its own subjects, and sees only its own messages."""
    urls = [f"{server.url}?stream=S{root}{x}&prefix={root}{x}" for x in "ab"]
    a, b = NatsBus.from_url(urls[0]), NatsBus.from_url(urls[1])
    same_subjects = NatsBus.from_url(f"{server.url}?stream=S{root}c&prefix={root}a")
    try:
        await a.connect()
        await b.connect()
        with pytest.raises(InvalidInput) as e:
            await same_subjects.connect()
        assert "prefix=" in e.value.hint
        inboxes = [Inbox(), Inbox()]
        for bus, inbox in zip((a, b), inboxes, strict=True):
            await bus.subscribe("telemetry.>", inbox)
        subjects: list[str] = []

        async def note(msg: Message) -> None:
            subjects.append(msg.subject)

        await a.subscribe("telemetry.*.d", note)
        grouped = Inbox()
        await a.subscribe("telemetry.>", grouped, group="detect")
        await b.subscribe("telemetry.>", grouped, group="detect")
        await a.publish("telemetry.p.d", b"from a")
        await b.publish("telemetry.p.d", b"from b")
        assert await inboxes[0].wait_for(1) == [b"from a"]
        assert await inboxes[1].wait_for(1) == [b"from b"]
        # A group of the same name in each deployment is two consumers: each gets its own.
        assert sorted(await grouped.wait_for(2)) == [b"from a", b"from b"]
        await asyncio.sleep(0.2)
        assert inboxes[0].got == [b"from a"] and inboxes[1].got == [b"from b"]
        assert subjects == ["telemetry.p.d"]  # handlers see Atoll's subjects, not the prefix
    finally:
        for bus in (a, b, same_subjects):
            await bus.close()


def test_a_bad_prefix_is_refused():
    with pytest.raises(InvalidInput):
        NatsBus.from_url("nats://127.0.0.1:4222?prefix=a.b")
