"""The detection service on partitions: each process judges the devices of the partitions it owns.

``DetectionService(..., partitions=consumer, checkpoints=store)`` consumes telemetry through a
``PartitionedConsumer`` (``atoll.bus.partitions``) instead of a plain group subscription. For each
partition it owns it

* **restores** on ``assigned``: the partition's checkpoint (every series of its devices: detector
  state, episode state, model records, and the readings in its reorder buffer) and the last
  stream position applied to it; the consumer delivers from the next message, and messages the
  previous owner had already acknowledged come as ``replay``: learned, and what they release
  from the reorder buffer by event time is not published again (the previous owner did, before
  acknowledging); what is still held afterwards is published when due (at least once);
* **applies** each delivered batch (``deliver``): readings go through the partition's reorder
  buffer (``atoll.detect.reorder``, ``lateness`` seconds), what is due is scored and learned in
  the service's worker thread, the events published and the scores stored, and only then does
  ``deliver`` return, so the consumer acknowledges what is judged (or held in the buffer, which
  the checkpoint keeps);
* **checkpoints** every ``checkpoint_interval`` seconds and on hand-over (``revoked``): state and
  position are encoded together under the service's lock, so they always match;
* **forgets** a partition on ``revoked`` or ``lost``.

Fleet baselines (one per device type, across partitions) and the service's bindings are not in
the checkpoints: each process learns its own fleet baselines from the devices it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from atoll.bus.partitions import CheckpointStore, Delivery, PartitionedConsumer, partition_of
from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.core.tasks import cancel_and_wait
from atoll.detect.lineage import MemoryModelLog
from atoll.detect.reorder import ReorderBuffer

log = logging.getLogger(__name__)

_FORMAT = 1


class PartitionedDetection:
    """The ``PartitionHandler`` of one ``DetectionService`` (see the module doc)."""

    def __init__(
        self,
        service: Any,
        consumer: PartitionedConsumer,
        checkpoints: CheckpointStore | None,
        *,
        lateness: float = 0.0,
        checkpoint_interval: float = 10.0,
        encode_choice: Callable[[Any], Any] = lambda c: c,
        decode_choice: Callable[[Any], Any] = lambda row: row,
    ) -> None:
        #: The ``DetectionService`` whose lock, worker thread, series and sending it uses.
        self.svc, self.consumer, self.checkpoints = service, consumer, checkpoints
        self._encode_choice, self._decode_choice = encode_choice, decode_choice
        self.count = consumer.count
        self.lateness, self.checkpoint_interval = float(lateness), float(checkpoint_interval)
        self.group = service.group or "detect"
        #: Owned partitions and the last stream position applied to each.
        self.applied: dict[int, int] = {}
        self.buffers: dict[int, ReorderBuffer] = {}
        self._consumption: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def name(self, p: int) -> str:
        return f"{self.group}.p{p}"

    def owned(self) -> set[int]:
        return set(self.applied)

    async def start(self) -> None:
        self._consumption = await self.consumer.consume(topics.ALL_TELEMETRY, self.group, self)
        if self.checkpoints is not None and self.checkpoint_interval > 0:
            self._tasks.append(asyncio.create_task(self._checkpoint_forever(), name="detect-ckpt"))
        if self.lateness > 0:
            self._tasks.append(asyncio.create_task(self._release_forever(), name="detect-reorder"))

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
        async with self.svc._lock:
            buffer = ReorderBuffer(self.lateness) if self.lateness > 0 else None
            if got is not None:
                seq, blob = got
                await self.svc._in_worker(self._restore, partition, blob, buffer)
            if buffer is not None:
                self.buffers[partition] = buffer
            self.applied[partition] = seq
        if got is None and self.checkpoints is not None:
            # The first owner: its (empty) state and position are durable before it applies
            # anything, so whoever comes next restores a state that matches its position.
            await self.checkpoint(partition)
        return seq

    async def deliver(self, partition: int, batch: list[Delivery]) -> None:
        svc = self.svc
        async with svc._lock:
            if partition not in self.applied:
                raise RuntimeError(f"partition {partition} is not owned here")
            replay = [d.data for d in batch if d.replay]
            live = [d.data for d in batch if not d.replay]
            results = await svc._in_worker(self._apply, partition, replay, live, time.monotonic())
            for done in results:
                await svc._send(done)
            self.applied[partition] = batch[-1].seq
        if svc.store is not None:
            await svc.flush()  # the scores are stored before the batch is acknowledged

    async def revoked(self, partition: int) -> None:
        if partition not in self.applied:
            return
        if self.checkpoints is None and partition in self.buffers:
            # Nowhere to keep what the reorder buffer holds: judge it now.
            async with self.svc._lock:
                done = await self.svc._in_worker(self._release, 0.0, partition)
                if done is not None:
                    await self.svc._send(done)
            if done is not None and self.svc.store is not None:
                await self.svc.flush()
        if self.checkpoints is not None:
            try:
                await self.checkpoint(partition)
            except Exception:
                log.exception("checkpoint of partition %d failed on hand-over", partition)
        await self._forget(partition)

    async def lost(self, partition: int) -> None:
        await self._forget(partition)

    # -- checkpoints ----------------------------------------------------------------------------
    async def checkpoint(self, partition: int) -> None:
        """Save the partition's state and position (encoded together, under the lock)."""
        if self.checkpoints is None:
            return
        async with self.svc._lock:
            if partition not in self.applied:
                return
            seq = self.applied[partition]
            blob = await self.svc._in_worker(self._encode, partition)
        await self.checkpoints.save(self.name(partition), seq, blob)
        self.svc.stats["checkpoints"] = self.svc.stats.get("checkpoints", 0) + 1

    async def _checkpoint_forever(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            for p in sorted(self.applied):
                try:
                    await self.checkpoint(p)
                except Exception:
                    log.exception("checkpoint of partition %d failed", p)

    async def _release_forever(self) -> None:
        """Readings whose wait in the reorder buffer is over, though nothing newer arrived."""
        pause = max(0.05, self.lateness / 4)
        while True:
            await asyncio.sleep(pause)
            try:
                async with self.svc._lock:
                    done = await self.svc._in_worker(self._release, time.monotonic())
                    if done is not None:
                        await self.svc._send(done)
                if done is not None and self.svc.store is not None:
                    await self.svc.flush()
            except Exception:
                log.exception("releasing reordered readings failed")

    # -- in the worker thread -------------------------------------------------------------------
    def _apply(
        self, partition: int, replay: list[bytes], live: list[bytes], now: float
    ) -> list[Any]:
        from atoll.ingest.events import decode_telemetry

        svc = self.svc
        buffer = self.buffers.get(partition)
        out = []
        for datas, emit in ((replay, False), (live, True)):
            if not datas:
                continue
            units = []
            for data in datas:
                try:
                    batch = decode_telemetry(data)
                except (msgspec.DecodeError, ValueError) as exc:
                    svc.stats["bad_messages"] += 1
                    log.warning("bad telemetry event: %s", exc)
                    continue
                units.extend(svc._units(batch))
            if buffer is not None:
                buffer.add(units, now)
                # Replayed: the previous owner had emitted what newer readings made due by the
                # last message it acknowledged (it emits before it acks), and only that.
                units = buffer.due(now, waited=emit)
            scored = svc._score_units(units, keep_events=False, park=False) if units else None
            if not emit:
                svc.stats["replayed"] = svc.stats.get("replayed", 0) + len(datas)
            elif scored is not None:
                scored.messages = len(datas)
                out.append(scored)
            else:
                svc.stats["messages"] += len(datas)  # all held in the reorder buffer
        return out

    def _release(self, now: float, everything_of: int | None = None) -> Any:
        """(worker) What the reorder buffers release now (or all ``everything_of`` holds)."""
        units = []
        if everything_of is not None:
            buffer = self.buffers.get(everything_of)
            units = buffer.due(now, everything=True) if buffer is not None else []
        else:
            for buffer in self.buffers.values():
                units.extend(buffer.due(now))
        if not units:
            return None
        done = self.svc._score_units(units, keep_events=False, park=False)
        done.messages = 0
        return done

    def _keys(self, partition: int) -> list[SeriesKey]:
        return [k for k in self.svc.series if partition_of(k.device, self.count) == partition]

    def _encode(self, partition: int) -> bytes:
        svc = self.svc
        keys = self._keys(partition)
        buffer = self.buffers.get(partition)
        held = []
        if buffer is not None:
            for row in buffer.rows():
                choice = row[3]
                held.append(
                    [*row[:3], None if choice is None else self._encode_choice(choice), *row[4:]]
                )
        mine = set(keys)
        return msgspec.msgpack.encode(
            {
                "format": _FORMAT,
                "series": [svc._row(k, svc.series[k]) for k in keys],
                "models": [r for r in svc.models.dump() if r.key in mine],
                "reorder": held,
            }
        )

    def _restore(self, partition: int, blob: bytes, buffer: ReorderBuffer | None) -> None:
        svc = self.svc
        raw = msgspec.msgpack.decode(blob)
        if raw.get("format") != _FORMAT:
            log.error("checkpoint of partition %d: unknown format; starting fresh", partition)
            return
        for record in MemoryModelLog.load(raw.get("models") or []).dump():
            svc.models.add(record)
        now = time.time()
        for row in raw.get("series") or []:
            svc._restore_row(row, now)
        if buffer is not None:
            rows = raw.get("reorder") or []
            for row in rows:
                if row[3] is not None:
                    row[3] = self._decode_choice(row[3])
            buffer.restore(rows, time.monotonic())

    async def _forget(self, partition: int) -> None:
        async with self.svc._lock:
            self.applied.pop(partition, None)
            self.buffers.pop(partition, None)
            await self.svc._in_worker(self._drop, partition)

    def _drop(self, partition: int) -> None:
        svc = self.svc
        for key in self._keys(partition):
            del svc.series[key]
            svc._dirty.pop(key, None)
            keys = svc._by_device.get((key.project, key.device))
            if keys is not None:
                with contextlib.suppress(ValueError):
                    keys.remove(key)
                if not keys:
                    del svc._by_device[(key.project, key.device)]
