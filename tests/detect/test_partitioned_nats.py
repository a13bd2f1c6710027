"""Partitioned detection on a real 3-node NATS JetStream cluster (R3 stream and buckets) with
two worker processes: one is killed with SIGKILL mid-stream, and every published reading is
still scored, its partitions taken over within 10 s; then a third joins and gets its share, and
the second leaves (SIGTERM) handing all over, and every reading is still scored."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import pytest

from atoll.bus.nats import NatsBus
from atoll.bus.nats_partitions import NatsLeaseStore
from atoll.bus.partitions import partition_of
from atoll.core.events import decode_anomalies
from atoll.ingest.events import encode_telemetry
from atoll.testing.nats_server import NatsCluster

T0 = 1_764_000_000_000_000
SEC = 1_000_000
PARTITIONS = 16
LEASE = 3.0
DEVICES = 40


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("natsc"), size=3) as c:
        yield c


def _worker(url: str, member: str, log_dir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "atoll.testing.detect_worker", url, "--member", member]
        + ["--lease", str(LEASE), "--lateness", "0.3", "--checkpoint", "1"],
        stdout=subprocess.PIPE,
        stderr=open(log_dir / f"{member}.log", "w"),  # noqa: SIM115 - the process keeps it
        text=True,
    )


async def _owners(leases: NatsLeaseStore) -> dict[int, str]:
    held = await leases.held("detect.p")
    return {int(name.rpartition(".p")[2]): owner for name, owner in held.items()}


async def _wait(cond, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await cond():
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


async def _publish_round(bus: NatsBus, first: int, rounds: int) -> set[tuple[str, int]]:
    sent = set()
    for r in range(first, first + rounds):
        for d in range(DEVICES):
            device = f"dev{d}"
            ts = [T0 + (r * 5 + i) * SEC for i in range(5)]
            await bus.publish(
                f"telemetry.p.{device}",
                encode_telemetry("p", device, ["temp"], [0] * 5, ts, [20.0 + i for i in range(5)]),
            )
            sent.update((device, t) for t in ts)
    return sent


async def test_killed_worker_partitions_are_taken_over_and_every_reading_scored(cluster, tmp_path):
    root = "t" + uuid.uuid4().hex[:8]
    url = (
        f"{cluster.url}?stream=S{root}&prefix={root}&replicas=3&partitions={PARTITIONS}&timeout=15"
    )
    bus = NatsBus.from_url(url)
    await bus.connect()
    scored: list[tuple[str, int]] = []

    async def on_anomaly(msg):
        scored.extend((e.device, e.ts) for e in decode_anomalies(msg.data))

    await bus.subscribe("anomaly.>", on_anomaly, group="check")  # durable: misses nothing
    leases = NatsLeaseStore(bus, f"S{root}_detect_leases", ttl=LEASE)
    a = _worker(url, "wa", tmp_path)
    b = _worker(url, "wb", tmp_path)
    c = None
    try:
        for w in (a, b):
            assert (await asyncio.to_thread(w.stdout.readline)).strip() == "ready"

        async def shared():
            owners = await _owners(leases)
            return len(owners) == PARTITIONS and set(owners.values()) == {"wa", "wb"}

        await _wait(shared, 20, "both workers owning partitions")
        sent = await _publish_round(bus, 0, 10)
        await _wait(lambda: _true(len(set(scored)) >= len(sent) // 2), 30, "scoring under way")
        a_owned = {p for p, o in (await _owners(leases)).items() if o == "wa"}
        a.kill()  # SIGKILL: no hand-over, no last checkpoint
        killed = time.monotonic()
        sent |= await _publish_round(bus, 10, 10)

        async def taken_over():
            owners = await _owners(leases)
            return len(owners) == PARTITIONS and set(owners.values()) == {"wb"}

        await _wait(taken_over, 15, "partitions taken over")
        took = time.monotonic() - killed
        assert took < 10, f"takeover took {took:.1f} s"
        await _all_scored(scored, sent)
        print(f"takeover {took:.1f} s; {len(scored) - len(sent)} readings scored twice")
        assert a_owned, "the killed worker owned partitions"

        # A worker joins: it gets its share, handed over with state and position.
        c = _worker(url, "wc", tmp_path)
        assert (await asyncio.to_thread(c.stdout.readline)).strip() == "ready"

        async def joined():
            owners = await _owners(leases)
            return len(owners) == PARTITIONS and set(owners.values()) == {"wb", "wc"}

        await _wait(joined, 15, "the joining worker owning partitions")
        sent |= await _publish_round(bus, 20, 4)
        # One leaves: it hands every partition over on SIGTERM.
        b.terminate()
        await asyncio.to_thread(b.wait, 30)
        sent |= await _publish_round(bus, 24, 4)

        async def left():
            owners = await _owners(leases)
            return len(owners) == PARTITIONS and set(owners.values()) == {"wc"}

        await _wait(left, 15, "the remaining worker owning every partition")
        await _all_scored(scored, sent)
    finally:
        for w in (a, b, c):
            if w is not None and w.poll() is None:
                w.terminate()
                await asyncio.to_thread(w.wait, 20)
        await bus.close()
    assert b.returncode == 0 and c.returncode == 0, "workers stop cleanly"


async def _all_scored(scored: list[tuple[str, int]], sent: set[tuple[str, int]]) -> None:
    try:
        await _wait(lambda: _true(set(scored) >= sent), 30, "every reading scored")
    finally:
        missing = sorted(sent - set(scored))
        by_p = sorted({partition_of(d, PARTITIONS) for d, _ in missing})
        print(f"missing {len(missing)}: partitions {by_p}, first {missing[:3]}")
    assert set(scored) == sent, "nothing scored that was not sent"


async def _true(value: bool) -> bool:
    return value
