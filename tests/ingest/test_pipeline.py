import asyncio
import threading
from types import SimpleNamespace

import pytest

from atoll.bus.memory import MemoryBus
from atoll.core.errors import InvalidInput, Unavailable
from atoll.ingest.events import decode_telemetry
from atoll.ingest.pipeline import IngestPipeline
from atoll.ingest.validate import MetricSpec
from atoll.store import ONE_WRITER
from atoll.testing.postgres import database_fixture

pg_url = database_fixture("atoll_ingest_nodes")


class GatedStore:
    """Records appends; each append waits for the test to open the gate (to observe ordering)."""

    def __init__(self) -> None:
        self.appends = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def append(self, batch) -> None:
        self.gate.wait(5)
        if self.fail:
            raise OSError("disk full")
        self.appends.append(batch)

    def stamp_slot(self):
        return ONE_WRITER


def ident(device="d1", metrics=None):
    return SimpleNamespace(device=device, project="p", tenant="t", metrics=metrics)


@pytest.fixture
async def rig():
    store, bus = GatedStore(), MemoryBus()
    pipe = IngestPipeline(store, bus, flush_interval=0.05)
    await pipe.start()
    yield pipe, store, bus
    store.gate.set()
    await pipe.stop()
    await bus.close()


async def test_submit_returns_only_after_the_append_returned(rig):
    pipe, store, _ = rig
    store.gate.clear()
    task = asyncio.create_task(pipe.submit_telemetry(ident(), b'{"values": {"t": 1}}'))
    await asyncio.sleep(0.2)
    assert not task.done(), "acknowledged before the store append returned"
    store.gate.set()
    assert await asyncio.wait_for(task, 5) == 1
    assert sum(len(b) for b in store.appends) == 1


async def test_concurrent_submits_are_group_committed(rig):
    pipe, store, _ = rig
    store.gate.clear()
    first = asyncio.create_task(pipe.submit_telemetry(ident(), b'{"values": {"t": 0}}'))
    await asyncio.sleep(0.05)  # the writer is now blocked in the first append
    rest = [
        asyncio.create_task(pipe.submit_telemetry(ident(f"d{i % 5}"), b'{"values": {"t": %d}}' % i))
        for i in range(1, 200)
    ]
    await asyncio.sleep(0.1)
    store.gate.set()
    assert await asyncio.gather(first, *rest) == [1] * 200
    assert len(store.appends) == 2, "everything queued behind the first append goes in one commit"
    assert sorted(store.appends[1].value.tolist()) == list(range(1, 200))


async def test_invalid_message_is_counted_and_not_stored(rig):
    pipe, store, _ = rig
    for body in (b"{oops", b'{"values": {"t": "x"}}', b'{"values": {"t": "y"}}'):
        with pytest.raises(InvalidInput):
            await pipe.submit_telemetry(ident(), body, transport="http")
    counts = {k: v[0] for k, v in pipe.pending_rejections().items()}
    assert counts == {("d1", "http", "malformed_json"): 1, ("d1", "http", "wrong_type"): 2}
    assert store.appends == []


async def test_an_unexpected_parse_failure_is_a_counted_refusal_with_one_traceback(rig, caplog):
    """Defence in depth: whatever a validator bug raises costs that message (counted as
    ``unparseable``), never the connection, and the log gets one traceback, not one per message."""
    pipe, store, _ = rig
    corrupt = ident(metrics={"t": MetricSpec("t", min="not a number")})  # float() raises ValueError
    for _ in range(3):
        with pytest.raises(InvalidInput) as e:
            await pipe.submit_telemetry(corrupt, b'{"values": {"t": 1}}')
        assert e.value.reason == "unparseable" and "ValueError" in e.value.message
    counts = {k: v[0] for k, v in pipe.pending_rejections().items()}
    assert counts == {("d1", "mqtt", "unparseable"): 3}
    assert len([r for r in caplog.records if r.exc_info]) == 1
    assert store.appends == []


async def test_declared_metrics_are_enforced():
    store = GatedStore()
    pipe = IngestPipeline(store)
    await pipe.start()
    dev = ident(metrics={"t": MetricSpec("t", min=0, max=10)})
    with pytest.raises(InvalidInput):
        await pipe.submit_telemetry(dev, b'{"values": {"h": 1}}')
    assert await pipe.submit_telemetry(dev, b'{"values": {"t": 11}}') == 1
    reasons = {k[2] for k in pipe.pending_rejections()}
    assert reasons == {"unknown_series", "out_of_range_accepted"}
    await pipe.stop()


async def test_store_failure_reaches_every_waiting_submitter_and_ingest_goes_on(rig):
    pipe, store, _ = rig
    store.fail = True
    results = await asyncio.gather(
        *(pipe.submit_telemetry(ident(), b'{"values": {"t": 1}}') for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, Unavailable) for r in results)
    store.fail = False
    assert await pipe.submit_telemetry(ident(), b'{"values": {"t": 2}}') == 1


async def test_stored_points_are_published_on_the_bus_per_device(rig):
    pipe, _, bus = rig
    got = []

    async def handler(msg):
        got.append((msg.subject, decode_telemetry(msg.data)))

    await bus.subscribe("telemetry.p.>", handler)
    await asyncio.gather(
        pipe.submit_telemetry(ident("a"), b'[{"values": {"t": 1}}, {"values": {"t": 2, "h": 3}}]'),
        pipe.submit_telemetry(ident("b"), b'{"values": {"t": 4}}'),
    )
    for _ in range(100):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.01)
    by_subject = {s: b for s, b in got}
    assert set(by_subject) == {"telemetry.p.a", "telemetry.p.b"}
    assert sorted(by_subject["telemetry.p.a"].value.tolist()) == [1, 2, 3]
    assert [k.metric for k in by_subject["telemetry.p.a"].keys] == ["t", "h"]


async def test_messages_enqueued_together_share_one_future_and_one_commit(rig):
    pipe, store, bus = rig
    got = []

    async def handler(msg):
        got.append(decode_telemetry(msg.data))

    await bus.subscribe("telemetry.p.a", handler)
    bodies = [b'{"ts": %d, "values": {"t": %d}}' % (1_767_225_600_000 + i, i) for i in range(50)]
    bodies.append(b'{"ts": 1767225601000, "values": {"t": 50, "h": 51}}')
    store.gate.clear()
    future = pipe.enqueue([pipe.validate(ident("a"), b) for b in bodies])
    await asyncio.sleep(0.1)
    assert not future.done(), "resolved before the store append returned"
    store.gate.set()
    await asyncio.wait_for(future, 5)
    assert len(store.appends) == 1 and len(store.appends[0]) == 52
    assert pipe.stats.messages == 51 and pipe.stats.points == 52
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    (event,) = got
    assert [k.metric for k in event.keys] == ["t", "h"]
    assert event.value.tolist() == list(range(52))
    assert [event.keys[i].metric for i in event.key_index.tolist()] == ["t"] * 51 + ["h"]


async def test_stop_writes_everything_queued():
    store = GatedStore()
    pipe = IngestPipeline(store)
    await pipe.start()
    store.gate.clear()
    tasks = [
        asyncio.create_task(pipe.submit_telemetry(ident(), b'{"values": {"t": 1}}'))
        for _ in range(50)
    ]
    await asyncio.sleep(0.05)
    store.gate.set()
    await pipe.stop()
    assert await asyncio.gather(*tasks) == [1] * 50
    assert sum(len(b) for b in store.appends) == 50


async def test_flush_counters_returns_after_a_flush_already_under_way():
    """The periodic flush may have taken the counts a moment before an explicit flush; the
    explicit one must still return only once they are in the registry."""
    written, gate = [], threading.Event()

    class SlowDirectory:
        def record_rejections(self, rows):
            gate.wait(5)
            written.extend(rows)

        def touch_devices(self, seen):
            pass

        def record_usage(self, stored):
            pass

    pipe = IngestPipeline(GatedStore(), directory=SlowDirectory(), flush_interval=3600)
    await pipe.start()
    try:
        pipe.reject("d1", "mqtt", "unknown_series", "no such metric")
        periodic = asyncio.create_task(pipe.flush_counters())
        await asyncio.sleep(0.05)  # the periodic flush is writing
        explicit = asyncio.create_task(pipe.flush_counters())
        await asyncio.sleep(0.05)
        assert not explicit.done()
        gate.set()
        await explicit
        assert [r[2] for r in written] == ["unknown_series"]
        await periodic
    finally:
        gate.set()
        await pipe.stop()


# One node: an ingest pipeline with its own PostgreSQL session on the shared store. It sends
# timestamp-less batches of one series as fast as it can once told to go, and writes the values
# that were acknowledged to a file.
NODE = """
import asyncio, json, sys
from types import SimpleNamespace
from atoll.ingest.pipeline import IngestPipeline
from atoll.store.postgres import PostgresStore

url, node, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MESSAGES, PER_MESSAGE, WINDOW = 100, 500, 10
who = SimpleNamespace(device="d1", project="p", tenant="t", metrics=None)

def body(m):
    return ("[" + ",".join('{"values": {"v": %d}}' % (node * 10**6 + m * 1000 + r)
                           for r in range(PER_MESSAGE)) + "]").encode()

async def main():
    store = PostgresStore(url)
    pipe = IngestPipeline(store, flush_interval=0.05)
    await pipe.start()
    print(json.dumps([store.stamp_slot().slot, store.stamp_slot().of]), flush=True)
    sys.stdin.readline()  # go
    acked = []
    for w in range(0, MESSAGES, WINDOW):
        ms = range(w, min(w + WINDOW, MESSAGES))
        res = await asyncio.gather(*(pipe.submit_telemetry(who, body(m)) for m in ms),
                                   return_exceptions=True)
        acked += [node * 10**6 + m * 1000 + r for m, n in zip(ms, res) if n == PER_MESSAGE
                  for r in range(PER_MESSAGE)]
    await pipe.stop()
    store.close()
    with open(out, "w") as f:
        json.dump(acked, f)

asyncio.run(main())
"""


def test_two_nodes_stamping_one_series_store_every_acknowledged_reading(pg_url, tmp_path):
    """Two processes ingesting into one PostgreSQL store are two nodes. Each stamps the
    timestamp-less readings it gets in its own slot of the microseconds, so readings of one
    series sent to both at once never share a timestamp (the later would replace the other)."""
    import json
    import subprocess
    import sys

    from atoll.core.points import SeriesKey
    from atoll.store.postgres import PostgresStore

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", NODE, pg_url, str(node), str(tmp_path / f"acked{node}")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    slots = []
    for p in procs:
        assert p.stdout is not None and p.stdin is not None
        slots.append(json.loads(p.stdout.readline()))
    assert slots[0][0] != slots[1][0] and slots[0][1] == slots[1][1] == 100
    for p in procs:  # both nodes start sending at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(120) == 0
    acked = [json.loads((tmp_path / f"acked{node}").read_text()) for node in (0, 1)]
    assert len(acked[0]) == len(acked[1]) == 100 * 500
    store = PostgresStore(pg_url)
    try:
        got = store.query_raw(SeriesKey("p", "d1", "v"), 0, 2**62)
    finally:
        store.close()
    # Every acknowledged reading is stored, once.
    assert len(got.ts) == len(set(got.ts.tolist())) == len(acked[0]) + len(acked[1])
    assert sorted(got.value.tolist()) == sorted(acked[0] + acked[1])
    # Each node's stamps are in its slot and strictly increasing in the order it sent them.
    for node, (slot, of) in enumerate(slots):
        mine = [(t, v) for t, v in zip(got.ts.tolist(), got.value.tolist(), strict=True)]
        mine = sorted((t, v) for t, v in mine if v // 10**6 == node)
        assert {t % of for t, _ in mine} == {slot}
        assert [v for _, v in mine] == sorted(acked[node])


async def test_a_device_batch_over_the_bus_max_payload_reaches_subscribers_in_chunks(tmp_path):
    """nats-server refuses messages over its ``max_payload``: a device's batch larger than
    that is published as several telemetry events that each fit, so subscribers (detection,
    rules) get every stored point, in order."""
    from atoll.bus.nats import NatsBus
    from atoll.core.points import SeriesKey
    from atoll.store.memory import MemoryStore
    from atoll.testing.nats_server import NatsServer

    limit = 16 * 1024
    with NatsServer(tmp_path / "nats", max_payload=limit) as server:
        bus = NatsBus(server.url, stream="CHUNKS")
        await bus.connect()
        assert bus.max_payload() == limit
        got: list[bytes] = []

        async def on_telemetry(msg):
            got.append(msg.data)

        sub = await bus.subscribe("telemetry.>", on_telemetry)
        store = MemoryStore()
        pipe = IngestPipeline(store, bus, flush_interval=0.05)
        await pipe.start()
        try:
            n = 4_000  # ~25-30 bytes per point in the event: several times the limit
            body = (
                "["
                + ",".join(
                    f'{{"ts": {1_700_000_000_000 + i}, "values": {{"v": {i}.25}}}}'
                    for i in range(n)
                )
                + "]"
            )
            assert await pipe.submit_telemetry(ident("big"), body.encode()) == n
            assert await pipe.submit_telemetry(ident("small"), b'{"values": {"v": 1}}') == 1
            for _ in range(200):
                if sum(len(decode_telemetry(d).ts) for d in got) >= n + 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            await pipe.stop()
            await sub.unsubscribe()
            await bus.close()
    assert len(got) > 2 and max(len(d) for d in got) <= limit
    big = [decode_telemetry(d) for d in got if decode_telemetry(d).keys[0].device == "big"]
    ts = [t for b in big for t in b.ts.tolist()]
    stored = store.query_raw(SeriesKey("p", "big", "v"), 0, 2**62)
    assert ts == stored.ts.tolist()  # every stored point, in order, once
    assert [v for b in big for v in b.value.tolist()] == stored.value.tolist()


async def test_an_acknowledged_reading_is_on_the_bus_and_ingest_refuses_while_nats_is_down(
    tmp_path,
):
    """A submit returns (PUBACK, 2xx) only once the store *and* JetStream have the reading.
    While NATS is down the reading whose event could not be published is not acknowledged
    (``NotPublished``), new ones are refused before being stored, and once NATS is back the
    outbox publishes the held event and ingest resumes by itself."""
    import time

    import nats

    from atoll.bus.nats import NatsBus
    from atoll.core.points import SeriesKey
    from atoll.ingest.pipeline import NotPublished
    from atoll.store.memory import MemoryStore
    from atoll.testing.nats_server import NatsServer

    server = NatsServer(tmp_path / "nats").start()
    bus = NatsBus.from_url(f"{server.url}?timeout=1&stream=OUTAGE")
    store = MemoryStore()
    pipe = IngestPipeline(store, bus, flush_interval=0.05)
    try:
        await bus.connect()
        await pipe.start()
        acked: list[int] = []
        refused: list[int] = []
        held: list[NotPublished] = []

        async def send(v: int) -> None:
            try:
                await pipe.submit_telemetry(
                    ident("d1"), b'{"ts": %d, "values": {"v": %d}}' % (1_700_000_000_000 + v, v)
                )
                acked.append(v)
            except NotPublished as e:
                held.append(e)
            except Unavailable as e:
                assert e.retry_after is not None and e.hint
                refused.append(v)

        await send(0)
        await asyncio.to_thread(server.stop)
        await send(1)  # stored, its event not published: not acknowledged
        assert acked == [0] and len(held) == 1 and not held[0].published.done()
        for v in (2, 3):  # refused up front: nothing stored while the bus is down
            await send(v)
        assert refused == [2, 3]
        assert store.query_raw(SeriesKey("p", "d1", "v"), 0, 2**62).value.tolist() == [0, 1]
        await asyncio.to_thread(server.restart)
        await asyncio.wait_for(held[0].published, 30)  # the outbox got it onto the bus
        deadline = time.monotonic() + 30
        v = 4
        while not acked[1:] and time.monotonic() < deadline:
            await send(v)
            v += 1
            await asyncio.sleep(0.05)
        assert acked[1:], "ingest did not resume after NATS came back"
        # Every acknowledged reading, and the held one, is in the stream.
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            # Everything in the stream (only telemetry here), whatever its wire subjects.
            sub = await js.subscribe(">", stream="OUTAGE", ordered_consumer=True)
            on_bus: set[float] = set()
            end = time.monotonic() + 10
            while time.monotonic() < end and not set(acked) | {1} <= on_bus:
                try:
                    msg = await sub.next_msg(timeout=1)
                except TimeoutError:
                    continue
                on_bus.update(decode_telemetry(msg.data).value.tolist())
            assert set(acked) | {1} <= on_bus, (acked, on_bus)
        finally:
            await nc.close()
    finally:
        await pipe.stop()
        await bus.close()
        server.stop()


async def test_the_operators_ingest_rate_applies_where_the_settings_set_no_limit():
    from atoll.core.errors import RateLimited
    from atoll.ingest.quota import UNLIMITED, QuotaPolicy, Quotas

    rates: dict[str, float] = {}
    pipe = IngestPipeline(
        GatedStore(), quotas=Quotas(QuotaPolicy(UNLIMITED, UNLIMITED)), rates_check=lambda: rates
    )
    await pipe.start()
    try:
        await pipe.refresh_quotas()
        assert pipe.quotas is None  # nothing to charge
        rates["t"] = 1.0  # burst 2
        await pipe.refresh_quotas()
        await pipe.submit_telemetry(
            ident(), b'[{"values": {"x": 1}}, {"values": {"x": 2}}, {"values": {"x": 3}}]'
        )
        with pytest.raises(RateLimited):
            pipe.admit(ident(), "http")
        del rates["t"]
        await pipe.refresh_quotas()
        assert pipe.quotas is None
        pipe.admit(ident(), "http")
    finally:
        await pipe.stop()
