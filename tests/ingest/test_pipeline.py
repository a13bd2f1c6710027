import asyncio
import threading
from types import SimpleNamespace

import pytest

from atoll.bus.memory import MemoryBus
from atoll.core.errors import InvalidInput, Unavailable
from atoll.ingest.events import decode_telemetry
from atoll.ingest.pipeline import IngestPipeline
from atoll.ingest.validate import MetricSpec


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
