"""Partition leases and checkpoints: both adapters pass the same suites, against a real 3-node
NATS JetStream cluster (R3 buckets) this session starts itself; and the lease coordinator
spreads, hands over and takes over partitions."""

import asyncio
import uuid

import pytest

from atoll.bus.memory import MemoryBus
from atoll.bus.nats import NatsBus
from atoll.bus.nats_partitions import NatsCheckpointStore, NatsLeaseStore
from atoll.bus.partitions import (
    Coordinator,
    Delivery,
    MemoryCheckpointStore,
    MemoryLeaseStore,
    MemoryPartitions,
    partition_of,
    preferred_owner,
    subject_partition,
)
from atoll.testing.nats_server import NatsCluster
from atoll.testing.partitions import check_checkpoint_store, check_lease_store


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("natsc"), size=3) as c:
        yield c


@pytest.fixture
async def cluster_bus(cluster):
    root = "t" + uuid.uuid4().hex[:10]
    bus = NatsBus(cluster.url, stream="S" + root, subjects=(f"{root}.>",), replicas=3)
    await bus.connect()
    yield bus
    await bus.close()


def test_partition_is_stable_and_spread():
    # CRC-32, not hash(): the same number in every process (this one is fixed forever).
    assert partition_of("d1", 64) == 38
    assert subject_partition("telemetry.p.d1", 64) == 38
    # A device's anomaly events share its telemetry's partition (the rules consume both there).
    assert subject_partition("anomaly.p.d1", 64) == 38
    assert subject_partition("alarm.p", 64) is None
    counts = [0] * 64
    for i in range(6400):
        counts[partition_of(f"dev-{i}", 64)] += 1
    assert min(counts) > 50 and max(counts) < 150, counts


async def test_memory_lease_store_conforms():
    # ttl 2 s: a renewal every ttl/4 must never miss a whole ttl on a loaded 2-core CI machine.
    await check_lease_store(MemoryLeaseStore(ttl=2.0))


async def test_memory_checkpoint_store_conforms():
    await check_checkpoint_store(MemoryCheckpointStore())


async def test_nats_lease_store_conforms(cluster_bus):
    # ttl 3 s: a claim and the listing after it must not straddle a whole ttl on a loaded machine.
    await check_lease_store(NatsLeaseStore(cluster_bus, "L" + uuid.uuid4().hex[:8], ttl=3.0))


async def test_nats_checkpoint_store_conforms(cluster_bus):
    await check_checkpoint_store(NatsCheckpointStore(cluster_bus, "C" + uuid.uuid4().hex[:8]))


async def test_coordinator_spreads_hands_over_and_takes_over():
    leases = MemoryLeaseStore(ttl=0.6)
    events: list[tuple[str, str, int]] = []

    def member(name):
        def note(kind):
            return lambda p: events.append((name, kind, p))

        return Coordinator(
            leases,
            "g",
            name,
            16,
            on_claimed=note("claimed"),
            on_handover=note("handover"),
            on_lost=note("lost"),
            heartbeat=0.1,
        )

    a = member("a")
    await a.tick()
    assert sorted(a.held) == list(range(16)), "a lone member takes every partition"
    b = member("b")
    a.start(), b.start()
    want_b = {p for p in range(16) if preferred_owner(p, ["a", "b"]) == "b"}
    assert want_b and len(want_b) < 16
    for _ in range(50):
        await asyncio.sleep(0.1)
        if set(b.held) == want_b and set(a.held) == set(range(16)) - want_b:
            break
    assert set(b.held) == want_b
    assert {p for n, k, p in events if n == "a" and k == "handover"} == want_b
    # a crashes (its task stops, leases are never released): b takes all within a few ttl.
    a._task.cancel()
    await asyncio.gather(a._task, return_exceptions=True)
    for _ in range(50):
        await asyncio.sleep(0.1)
        if set(b.held) == set(range(16)):
            break
    assert set(b.held) == set(range(16))
    await b.stop()
    assert await leases.held("g.") == {}


async def test_memory_partitions_number_each_partition_in_order():
    bus = MemoryBus()
    got: dict[int, list[Delivery]] = {}

    class Handler:
        async def assigned(self, p, start):
            return 100 if p == partition_of("d1", 8) else 0

        async def deliver(self, p, batch):
            got.setdefault(p, []).extend(batch)

        async def revoked(self, p):
            pass

        async def lost(self, p):
            pass

    c = await MemoryPartitions(bus, 8).consume("telemetry.>", "detect", Handler())
    assert c.owned() == set(range(8))
    for i in range(5):
        await bus.publish("telemetry.p.d1", b"%d" % i)
        await bus.publish("telemetry.p.d2", b"x%d" % i)
    await bus.publish("anomaly.p.d1", b"no")
    for _ in range(50):
        await asyncio.sleep(0.01)
        if sum(len(v) for v in got.values()) == 10:
            break
    p1 = partition_of("d1", 8)
    assert [d.data for d in got[p1] if d.subject.endswith("d1")] == [b"%d" % i for i in range(5)]
    assert [d.seq for d in got[p1]][:1] == [101], "numbering goes on from the restored position"
    await c.stop()
    await bus.close()


async def test_a_renewal_stored_despite_its_timeout_keeps_the_lease(cluster_bus):
    """A JetStream cluster electing a leader may store a write and answer too late: the retry
    is then refused against the sequence the first write moved on. The lease is still held
    (the key holds its owner), and another owner's lease never is."""
    import nats.errors

    leases = NatsLeaseStore(cluster_bus, "L" + uuid.uuid4().hex[:8], ttl=30.0)
    a = await leases.claim("g.p1", "a")
    assert a is not None
    kv = await leases._get()
    calls = 0

    async def stored_then_timed_out() -> int:
        nonlocal calls
        calls += 1
        revision = await kv.update(a.name, b"a", last=a.token)
        if calls == 1:
            raise nats.errors.TimeoutError
        return revision

    kept = await leases._write(kv, a.name, "a", stored_then_timed_out, "renewing")
    assert calls == 2 and kept is not None and kept.token > a.token
    assert await leases.renew(kept) is not None, "the lease goes on from the key's revision"
    # The same refusal without a timeout before it: a stale token, the lease is not ours.
    assert await leases.renew(a) is None
    # A lease someone else holds is never taken for ours.
    b = await leases.claim("g.p2", "b")
    assert b is not None
    calls = 0

    async def refused_after_timeout() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise nats.errors.TimeoutError
        return await kv.update(b.name, b"a", last=a.token)

    assert await leases._write(kv, b.name, "a", refused_after_timeout, "renewing") is None
