import asyncio

import numpy as np

from atoll.core.points import PointBatch, SeriesKey
from atoll.registry.retention import DAY_US, RetentionService
from atoll.store.memory import MemoryStore

NOW = 1_700_000_000_000_000  # 2023, safely in the past


def _fill(store, project):
    ts = NOW - np.arange(10, dtype=np.int64) * DAY_US  # one point a day, 10 days back
    store.append(PointBatch.of_series(SeriesKey(project, "d", "m"), ts, np.arange(10.0)))


def test_each_project_keeps_its_own_window(registry):
    boot = registry.bootstrap()
    registry.create_project(boot.tenant, "Short", project_id="short", retention_days=3)
    registry.create_project(boot.tenant, "Forever", project_id="forever")
    store = MemoryStore()
    _fill(store, "short")
    _fill(store, "forever")
    deleted = RetentionService(registry, store).run_once(NOW)
    assert deleted == {"short": 6}
    assert len(store.query_raw(SeriesKey("short", "d", "m"), 0, NOW + 1).ts) == 4
    assert len(store.query_raw(SeriesKey("forever", "d", "m"), 0, NOW + 1).ts) == 10


async def test_runs_as_a_service(registry):
    boot = registry.bootstrap()
    registry.create_project(boot.tenant, "Short", project_id="short", retention_days=1)
    store = MemoryStore()
    _fill(store, "short")  # relative to a fixed past NOW: everything is older than a day
    svc = RetentionService(registry, store, interval_s=0.01)
    await svc.start()
    for _ in range(200):
        if not store.series("short"):
            break
        await asyncio.sleep(0.01)
    await svc.stop()
    assert len(store.query_raw(SeriesKey("short", "d", "m"), 0, NOW + 1).ts) == 0


def test_a_singleton_run_is_claimed_once_per_slot(registry):
    """Compare-and-set on the job's last run: of nodes asking at once, one gets the slot."""
    hour = 3600 * 1_000_000
    assert registry.claim_run("retention", NOW, hour)
    assert not registry.claim_run("retention", NOW, hour)
    assert not registry.claim_run("retention", NOW + hour - 1, hour)
    assert registry.claim_run("retention", NOW + hour, hour)
    assert not registry.claim_run("retention", NOW + hour, hour)
    assert registry.claim_run("other-job", NOW, hour)  # each job has its own last run


async def test_in_a_cluster_only_the_leader_runs_and_once_per_interval(registry):
    from atoll.bus.partitions import Leader, MemoryLeaseStore

    boot = registry.bootstrap()
    registry.create_project(boot.tenant, "Short", project_id="short", retention_days=1)
    store = MemoryStore()
    leases = MemoryLeaseStore(ttl=5.0)
    nodes = [
        RetentionService(
            registry, store, interval_s=3600, check_s=0.01, leader=Leader(leases, "leader", name)
        )
        for name in ("a", "b", "c")
    ]
    for svc in nodes:
        await svc.start()
    await asyncio.sleep(0.3)  # ~30 checks each
    for svc in nodes:
        await svc.stop()
    assert sum(svc.runs for svc in nodes) == 1
    assert [svc.runs for svc in nodes].count(1) == 1
