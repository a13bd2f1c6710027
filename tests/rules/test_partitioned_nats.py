"""Partitioned rules on a real 3-node NATS JetStream cluster (R3 stream and buckets) and a real
PostgreSQL, with rule worker processes (``atoll.testing.rules_worker``) and a webhook channel to a
real local HTTP receiver.

Two workers share the partitions; one is killed with SIGKILL while readings are being published;
afterwards the other leaves (SIGTERM) and readings are published while no rules worker runs; a
third starts. Every hot reading raises exactly one alarm, each is cleared exactly once by the
cool reading after it, and the webhook gets each alarm's "raised" and "cleared" exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest

from atoll.bus.nats import NatsBus
from atoll.bus.nats_partitions import NatsLeaseStore
from atoll.ingest.events import encode_telemetry
from atoll.rules.model import ChannelSpec
from atoll.rules.service import RulesService
from atoll.testing.nats_server import NatsCluster
from atoll.testing.postgres import database_fixture

from .test_channels import Receiver

T0 = 1_764_000_000_000_000
SEC = 1_000_000
PARTITIONS = 16
LEASE = 3.0
DEVICES = 24

pg_url = database_fixture("atoll_rules_cluster", scope="module")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("natsc"), size=3) as c:
        yield c


def _worker(url: str, db: str, member: str, log_dir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "atoll.testing.rules_worker", url, db, "--member", member]
        + ["--lease", str(LEASE), "--tick", "0.3", "--checkpoint", "1"],
        stdout=subprocess.PIPE,
        stderr=open(log_dir / f"{member}.log", "w"),  # noqa: SIM115 - the process keeps it
        text=True,
    )


async def _owners(leases: NatsLeaseStore) -> dict[int, str]:
    held = await leases.held("rules.p")
    return {int(name.rpartition(".p")[2]): owner for name, owner in held.items()}


async def _wait(cond, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await cond():
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


async def _cycle(bus: NatsBus, device: str, r: int) -> None:
    """Cool, hot, cool: one alarm raised and cleared."""
    for i, temp in enumerate((50.0, 150.0, 50.0)):
        ts = T0 + (r * 10 + i) * SEC
        await bus.publish(
            f"telemetry.p.{device}", encode_telemetry("p", device, ["temp"], [0], [ts], [temp])
        )


async def test_killed_rules_worker_every_alarm_raised_once_cleared_once_notified_once(
    cluster, pg_url, tmp_path
):
    root = "t" + uuid.uuid4().hex[:8]
    url = (
        f"{cluster.url}?stream=S{root}&prefix={root}&replicas=3&partitions={PARTITIONS}&timeout=15"
    )
    bus = NatsBus.from_url(url)
    await bus.connect()
    devices = [f"dev{d}" for d in range(DEVICES)]
    # The API of a node that evaluates nothing: it sets up the channel and the rule.
    api = RulesService(bus, db=pg_url, tick_interval=0, evaluate=False)
    await api.start()
    leases = NatsLeaseStore(bus, f"S{root}_rules_leases", ttl=LEASE)
    workers: list[subprocess.Popen] = []
    with Receiver() as rx:
        api.put_channel(
            ChannelSpec(
                name="hook", project="p", type="webhook", config={"url": rx.url, "backoff": 0.05}
            )
        )
        await api.create_rule(
            {
                "name": "Hot",
                "project": "p",
                "target": {"devices": devices},
                "condition": {"type": "threshold", "metric": "temp", "value": 100, "clear": 90},
                "notify": {"channels": ["hook"], "on": ["raised", "cleared"]},
            }
        )
        try:
            a = _worker(url, pg_url, "wa", tmp_path)
            b = _worker(url, pg_url, "wb", tmp_path)
            workers += [a, b]
            for w in (a, b):
                assert (await asyncio.to_thread(w.stdout.readline)).strip() == "ready"

            async def shared():
                owners = await _owners(leases)
                return len(owners) == PARTITIONS and set(owners.values()) == {"wa", "wb"}

            await _wait(shared, 40, "both workers owning partitions")
            for d in devices:
                await _cycle(bus, d, 0)
            await _wait(_all_cleared(api, DEVICES), 60, "round 0 evaluated")

            # Round 1: wa is killed half-way through the publishing.
            for i, d in enumerate(devices):
                if i == DEVICES // 2:
                    a.kill()  # SIGKILL: no hand-over, no last checkpoint, acks in flight lost
                    killed = time.monotonic()
                await _cycle(bus, d, 1)

            async def taken_over():
                owners = await _owners(leases)
                return len(owners) == PARTITIONS and set(owners.values()) == {"wb"}

            await _wait(taken_over, 15, "partitions taken over")
            took = time.monotonic() - killed
            assert took < 10, f"takeover took {took:.1f} s"
            print(f"takeover {took:.1f} s")
            await _wait(_all_cleared(api, 2 * DEVICES), 60, "round 1 evaluated")

            # Round 2: published while no rules worker runs; evaluated once one starts.
            b.terminate()
            try:
                assert await asyncio.to_thread(b.wait, 90) == 0  # hands 16 partitions over
            except subprocess.TimeoutExpired:
                # A clean stop once hung here for good: a cancellation swallowed by Python
                # 3.11's wait_for inside nats-py left the lease loop running (atoll.core.tasks).
                # Should it hang again, its stacks go to its log before it is killed.
                b.send_signal(signal.SIGUSR1)
                await asyncio.sleep(1.0)
                b.kill()
                b.wait(10)
                log = (tmp_path / "wb.log").read_text(errors="replace")[-6000:]
                pytest.fail(f"worker wb did not stop within 90 s; its log ends:\n{log}")
            for d in devices:
                await _cycle(bus, d, 2)
            await asyncio.sleep(1.0)
            assert len(api.alarms.list(limit=1000)) == 2 * DEVICES, "nobody evaluated round 2"
            c = _worker(url, pg_url, "wc", tmp_path)
            workers.append(c)
            assert (await asyncio.to_thread(c.stdout.readline)).strip() == "ready"
            await _wait(_all_cleared(api, 3 * DEVICES), 60, "round 2 evaluated")

            alarms = api.alarms.list(limit=1000)
            per_device = Counter(x.device for x in alarms)
            assert per_device == dict.fromkeys(devices, 3), per_device
            for x in alarms:
                kinds = [e.kind for e in api.alarms.history(x.id)]
                assert kinds == ["raised", "cleared"], (x.device, kinds)
            wanted = {(ev, x.id) for x in alarms for ev in ("raised", "cleared")}

            def notes() -> Counter:
                return Counter((r["body"]["event"], r["body"]["alarm"]["id"]) for r in rx.requests)

            async def delivered():
                return set(notes()) >= wanted

            try:
                await _wait(delivered, 60, "every notification delivered")
            finally:
                missing = sorted(wanted - set(notes()))
                byid = {x.id: x for x in alarms}
                print("missing", [(ev, i, byid[i].device, byid[i].raised_at) for ev, i in missing])
                print("deliveries", api.notifier.deliveries("p", limit=5))
            await asyncio.sleep(1.0)  # a late second copy would arrive by now
            twice = {k: n for k, n in notes().items() if n > 1}
            if twice:
                import sqlalchemy as sa

                from atoll.rules import db

                t = db.deliveries
                with api.db.connect() as conn:
                    rows = conn.execute(
                        sa.select(
                            t.c.alarm_id, t.c.event, t.c.owner, t.c.attempts, t.c.status
                        ).where(t.c.alarm_id.in_([i for _, i in twice]))
                    ).all()
                print("deliveries of those sent twice", rows, "killed at", killed)
            assert not twice, f"notifications sent twice: {twice}"
            assert set(notes()) == wanted
        finally:
            for w in workers:
                if w.poll() is None:
                    w.terminate()
                    try:
                        await asyncio.to_thread(w.wait, 30)
                    except subprocess.TimeoutExpired:
                        w.kill()  # never leave a worker behind
                        await asyncio.to_thread(w.wait, 10)
            await api.stop()
            await bus.close()
    assert c.returncode == 0, "the last worker stops cleanly"


def _all_cleared(api: RulesService, n: int):
    async def check() -> bool:
        alarms = api.alarms.list(limit=1000)
        return len(alarms) >= n and all(x.status == "cleared" for x in alarms)

    return check
