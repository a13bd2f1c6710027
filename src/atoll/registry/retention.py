"""Per-project retention: delete points older than each project's ``retention_days``.

Runs inside ``atoll up`` as a platform service (hourly by default); ``run_once`` is the unit of
work and is what tests and the CLI call.

In a cluster (a NATS bus) retention and command expiry are singletons: each node's service
checks every ``check_s`` seconds, runs only while it holds the deployment's ``leader`` lease
(``atoll.bus.partitions.Leader``), and claims each run with compare-and-set on the job's last
run (``Registry.claim_run``), so one node runs it once per ``interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from atoll.bus.partitions import Leader
from atoll.core.errors import AtollError
from atoll.core.tasks import cancel_and_wait
from atoll.registry.registry import Registry
from atoll.store.port import SeriesStore, UsageReader

log = logging.getLogger(__name__)
DAY_US = 86_400_000_000


class RetentionService:
    def __init__(
        self,
        registry: Registry,
        store: SeriesStore,
        *,
        interval_s: float = 3600.0,
        leader: Leader | None = None,
        check_s: float = 30.0,
    ) -> None:
        self.registry = registry
        self.store = store
        self.interval_s = interval_s
        #: ``None``: this process is the only one (runs every ``interval_s``, as ever).
        self.leader = leader
        self.check_s = min(check_s, interval_s)
        self.runs = 0
        self._task: asyncio.Task | None = None

    def run_once(self, now_us: int | None = None) -> dict[str, int]:
        """Apply every project's retention; returns ``{project: points deleted}``."""
        now_us = now_us if now_us is not None else time.time_ns() // 1000
        deleted = {}
        for project, days in self.registry.retention().items():
            deleted[project] = self.store.delete_before(project, now_us - days * DAY_US)
        if any(deleted.values()):
            log.info("retention deleted %s", {p: n for p, n in deleted.items() if n})
        self.sample_storage(now_us)
        try:
            self.registry.prune_usage(now_us)
        except AtollError as e:
            log.warning("could not prune the hourly usage counters: %s", e.message)
        return deleted

    def sample_storage(self, now_us: int | None = None) -> None:
        """Record what each project holds in the store, for usage metering (the day keeps its
        largest sample). A store that cannot say (no ``usage``) is skipped."""
        if not isinstance(self.store, UsageReader):
            return
        try:
            held = {p: u.points for p, u in self.store.usage(since=now_us or 0).items()}
            self.registry.record_storage(held, at=now_us)
        except AtollError as e:
            log.warning("could not sample storage usage: %s", e.message)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="atoll-retention")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.leader is not None:
            await self.leader.release()

    async def _loop(self) -> None:
        while True:
            try:
                if await self._due():
                    await asyncio.to_thread(self.run_once)
                    await asyncio.to_thread(self.registry.expire_commands)
                    self.runs += 1
            except Exception:  # a failing pass must not stop later ones
                log.exception("retention pass failed")
            await asyncio.sleep(self.interval_s if self.leader is None else self.check_s)

    async def _due(self) -> bool:
        if self.leader is None:
            return True
        if not await self.leader.leading():
            return False
        every = int(self.interval_s * 1_000_000)
        now = time.time_ns() // 1000
        return await asyncio.to_thread(self.registry.claim_run, "retention", now, every)


class RetentionHost(Protocol):
    """What the retention service takes from the platform (``atoll.service.ServiceContext`` has
    it; declared here so the registry does not depend on the service layer above it)."""

    @property
    def registry(self) -> Registry: ...

    @property
    def store(self) -> SeriesStore: ...

    @property
    def bus(self) -> object: ...


#: Seconds the retention leader's lease lives without renewal (it renews every ``check_s``).
LEADER_LEASE_S = 90.0


def create_service(ctx: RetentionHost) -> RetentionService:
    """Hook for ``atoll.platform.SERVICE_MODULES``: on a NATS bus, a singleton of the cluster."""
    from atoll.bus.nats_partitions import leader_for

    return RetentionService(
        ctx.registry, ctx.store, leader=leader_for(ctx.bus, "retention", lease_s=LEADER_LEASE_S)
    )
