"""The rules service on partitions: each process evaluates the devices of the partitions it owns.

``RulesService(..., partitions=consumer, checkpoints=store)`` consumes a device's telemetry and
anomaly events through a ``PartitionedConsumer`` (``atoll.bus.partitions``; on NATS the same
leases, consumers and checkpoint objects detection uses, under the group ``rules``) instead of
plain group subscriptions. For each partition it owns it

* **restores** on ``assigned``: the partition's checkpoint (the state of every rule instance
  whose key lies in the partition: latches, ``for`` timers, rate windows, k-of-n hits, last
  seen) and the last stream position applied to it; the consumer delivers from the next
  message, and what the previous owner had already acknowledged comes as ``replay``: fed to
  the conditions, its alarm changes not made again (the previous owner made them);
* **applies** each delivered batch (``deliver``): every message is evaluated and its alarm
  changes written to the database, and only then does ``deliver`` return and the consumer
  acknowledge. An alarm change carries the stream position of its message: ``AlarmBook``
  raises once per position and clears only what an earlier position raised, so a batch
  delivered again after a crash (evaluated, not yet acknowledged) changes nothing twice;
* **checkpoints** every ``checkpoint_interval`` seconds (what changed) and on hand-over;
* **forgets** a partition on ``revoked`` or ``lost``.

A rule instance's key (``RuleEngine``) is its device, or ``project:{project}`` for a
cross-device rule (a condition on another device's series): such instances are evaluated by the
owner of the project key's partition, fed by a plain (live) subscription to every device's
telemetry and anomalies that each rules process opens only while such rules exist; their state
is in that partition's checkpoint, but what was published while no process owned it is not
replayed to them (docs/RULES.md).

The timer pass (``for`` and ``no_data`` conditions, escalations, repeats) touches only the
instances and alarms whose key lies in a partition owned here and fresh (``Coordinator.fresh``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from atoll.bus.partitions import CheckpointStore, Delivery, PartitionedConsumer, partition_of
from atoll.core import topics
from atoll.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_FORMAT = 1
PROJECT_KEY = "project:"


class PartitionedRules:
    """The ``PartitionHandler`` of one ``RulesService`` (see the module doc)."""

    def __init__(
        self,
        service: Any,
        consumer: PartitionedConsumer,
        checkpoints: CheckpointStore | None,
        *,
        checkpoint_interval: float = 10.0,
    ) -> None:
        #: The ``RulesService`` whose engine, alarms and stats it uses.
        self.svc, self.consumer, self.checkpoints = service, consumer, checkpoints
        self.count = consumer.count
        self.checkpoint_interval = float(checkpoint_interval)
        self.group = service.group or "rules"
        #: Owned partitions and the last stream position applied to each.
        self.applied: dict[int, int] = {}
        self._saved: dict[int, int] = {}
        self._dirty: set[int] = set()
        #: Held while the engine is fed and its changes written, and while a checkpoint is
        #: taken: a checkpoint's state always matches its position.
        self.lock = asyncio.Lock()
        self._consumption: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Senders of pending deliveries whose member lease was missing, and since when.
        self._missing: dict[str, float] = {}

    def name(self, p: int) -> str:
        return f"{self.group}.p{p}"

    def owned(self) -> set[int]:
        return set(self.applied)

    def owns(self, key: str) -> bool:
        """Whether the instance or alarm with this key is evaluated here now: its partition is
        owned, and its lease surely still this process's (fresh)."""
        p = partition_of(key, self.count)
        if p not in self.applied:
            return False
        coordinator = getattr(self._consumption, "coordinator", None)
        return coordinator is None or coordinator.fresh(p)

    def owns_cross(self, key: str) -> bool:
        return key.startswith(PROJECT_KEY) and self.owns(key)

    def _in(self, p: int):  # noqa: ANN202 - an Accept
        return lambda key: partition_of(key, self.count) == p

    @property
    def member(self) -> str | None:
        """This process's member name in the group (``None``: the only process)."""
        coordinator = getattr(self._consumption, "coordinator", None)
        return None if coordinator is None else str(coordinator.member)

    async def adopt_deliveries(self) -> None:
        """Send what rules processes that are gone left pending: their member lease has been
        missing for two lease times (a blip, or a renewal late under load, is not death)."""
        coordinator = getattr(self._consumption, "coordinator", None)
        if coordinator is None:
            return
        notifier = self.svc.notifier
        owners = await asyncio.to_thread(notifier.pending_owners)
        owners.discard(coordinator.member)
        if not owners:
            self._missing.clear()
            return
        prefix = f"{self.group}.member."
        held = await coordinator.leases.held(prefix)
        live = {name[len(prefix) :] for name in held}
        now = time.monotonic()
        gone = set()
        for owner in owners:
            if owner in live:
                self._missing.pop(owner, None)
            elif now - self._missing.setdefault(owner, now) >= 2 * coordinator.leases.ttl:
                gone.add(owner)
        if gone:
            notifier.adopt(gone)

    async def start(self) -> None:
        self._consumption = await self.consumer.consume(
            (topics.ALL_TELEMETRY, topics.ALL_ANOMALIES), self.group, self
        )
        self.svc.notifier.owner = self.member
        if self.checkpoints is not None and self.checkpoint_interval > 0:
            self._tasks.append(asyncio.create_task(self._checkpoint_forever(), name="rules-ckpt"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self._consumption is not None:
            await self._consumption.stop()  # hands every partition over: revoked → checkpoint
            self._consumption = None

    # -- the PartitionHandler -----------------------------------------------------------------
    async def assigned(self, partition: int, start: int) -> int:
        got = await self.checkpoints.load(self.name(partition)) if self.checkpoints else None
        seq = start
        async with self.lock:
            engine = self.svc.engine
            engine.restart(self._in(partition))  # whatever this process knew is stale
            if got is not None:
                seq, blob = got
                try:
                    raw = msgspec.msgpack.decode(blob)
                except msgspec.DecodeError:
                    raw = None
                if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
                    log.error("rules checkpoint of partition %d unreadable: fresh", partition)
                else:
                    # Only rules unchanged since: a changed rule starts afresh, as everywhere.
                    versions = self.svc._versions
                    saved = raw.get("versions") or {}
                    same = {r for r, v in saved.items() if versions.get(r) == v}
                    restored = engine.load(raw.get("state") or {}, same)
                    self.svc.stats["restored"] = self.svc.stats.get("restored", 0) + restored
            self.applied[partition] = self._saved[partition] = seq
        if got is None and self.checkpoints is not None:
            # The first owner: its (empty) state and position are durable before it applies
            # anything, so whoever comes next restores a state that matches its position.
            self._dirty.add(partition)
            await self.checkpoint(partition)
        return seq

    async def deliver(self, partition: int, batch: list[Delivery]) -> None:
        svc = self.svc
        async with self.lock:
            if partition not in self.applied:
                raise RuntimeError(f"partition {partition} is not owned here")
            for d in batch:
                family, _, rest = d.subject.partition(".")
                device = rest.rpartition(".")[2]
                only = _only(device)
                if family == "telemetry":
                    changes = svc._telemetry_changes(d.subject, d.data, only)
                else:
                    changes = svc._anomaly_changes(d.subject, d.data, only)
                if d.replay:
                    svc.stats["replayed"] = svc.stats.get("replayed", 0) + 1
                elif changes:
                    await svc._apply(changes, seq=d.seq)
            self.applied[partition] = batch[-1].seq
            self._dirty.add(partition)

    async def revoked(self, partition: int) -> None:
        if partition not in self.applied:
            return
        if self.checkpoints is not None:
            self._dirty.add(partition)
            try:
                await self.checkpoint(partition)
            except Exception:
                log.exception("rules checkpoint of partition %d failed on hand-over", partition)
        await self._forget(partition)

    async def lost(self, partition: int) -> None:
        await self._forget(partition)

    async def _forget(self, partition: int) -> None:
        async with self.lock:
            self.applied.pop(partition, None)
            self._saved.pop(partition, None)
            self._dirty.discard(partition)
            self.svc.engine.restart(self._in(partition))

    # -- the timer pass -------------------------------------------------------------------------
    async def tick_changes(self) -> None:
        """Time-based conditions of the instances owned here (their state changes: dirty)."""
        async with self.lock:
            changes = self.svc.engine.on_tick(accept=self.owns)
            if changes:
                await self.svc._apply(changes)
            for p in self.applied:
                self._dirty.add(p)  # timers moved ``since``/``out`` state on

    # -- checkpoints ----------------------------------------------------------------------------
    async def checkpoint(self, partition: int) -> None:
        """Save the partition's rule-instance state and position (taken together, under the
        lock), if anything changed since the last save."""
        if self.checkpoints is None:
            return
        async with self.lock:
            if partition not in self.applied or partition not in self._dirty:
                return
            seq = self.applied[partition]
            state = self.svc.engine.dump(self._in(partition))
            versions = {r: self.svc._versions.get(r) for r in state}
            blob = msgspec.msgpack.encode({"format": _FORMAT, "versions": versions, "state": state})
            self._dirty.discard(partition)
        try:
            await self.checkpoints.save(self.name(partition), seq, blob)
        except BaseException:
            self._dirty.add(partition)
            raise
        self._saved[partition] = seq
        self.svc.stats["checkpoints"] = self.svc.stats.get("checkpoints", 0) + 1

    async def _checkpoint_forever(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            for p in sorted(self.applied):
                try:
                    await self.checkpoint(p)
                except Exception:
                    log.exception("rules checkpoint of partition %d failed", p)


def _only(device: str):  # noqa: ANN202 - an Accept
    """Instances fed by a partition's message: the device's own (cross-device ones are fed on
    their project key's owner)."""
    return lambda key: key == device


__all__ = ["PROJECT_KEY", "PartitionedRules"]
