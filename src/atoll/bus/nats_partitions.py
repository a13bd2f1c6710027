"""Partitioned consumption on NATS JetStream (the ports of ``atoll.bus.partitions``).

* ``NatsLeaseStore``: a JetStream key-value bucket whose entries live ``ttl`` seconds (the
  server drops an entry not rewritten in time: a crashed holder's lease lapses on the server's
  clock, not on any Atoll node's). Claim is "create if absent", renew and release are
  compare-and-set on the entry's revision (the lease's token).
* ``NatsCheckpointStore``: a JetStream object store; each checkpoint is one object, the applied
  stream sequence (8 bytes, big-endian) followed by the state, so both are saved as one piece.
* ``NatsPartitions``: per partition ``p`` one durable pull consumer ``{group}-p{p}`` on the bus
  stream, filtered on ``part.{p}.telemetry.*.*`` (``NatsBus`` stores a partitioned subject as
  ``part.{p}.{subject}``), or on ``part.{p}.*.*.*`` for a group that consumes every partitioned
  family (the rules: a device's telemetry and anomaly events, in one sequence). The partitions
  are owned through a ``Coordinator`` on the lease store. A new owner asks the handler for the
  position its restored state has applied (``assigned``; the first owner ever gets the
  consumer's start and checkpoints its empty state there) and recreates the consumer to deliver
  from the next message; messages up to the old consumer's ack floor come marked ``replay``
  (the previous owner already acted on them). Each fetched batch is acknowledged
  (``AckPolicy.ALL``: one ack for the batch) after ``deliver`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from atoll.bus.nats import NatsBus
from atoll.bus.partitions import (
    PARTITIONED_FAMILIES,
    Coordinator,
    Delivery,
    Leader,
    Lease,
    LeaseStore,
    PartitionHandler,
)
from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")

_SEQ = struct.Struct(">Q")
#: JetStream API errors "wrong last sequence" (a compare-and-set that lost).
_WRONG_LAST = (10071, 10164)
#: Tries of one batch's ``deliver`` before it is acknowledged anyway (and logged).
MAX_TRIES = 5


class _MalformedReply(nats.errors.Error):
    """A JetStream API reply nats-py could not read (seen on a busy cluster): asked again."""


_TRANSIENT = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    _MalformedReply,
)


async def _retry(op: Callable[[], Awaitable[T]], what: str, timeout: float = 30.0) -> T:
    """``op()`` again while JetStream is briefly unavailable (a replicated bucket just created,
    a node restarting, a leader election), for up to ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    pause = 0.05
    while True:
        try:
            return await op()
        except _TRANSIENT as e:
            if asyncio.get_running_loop().time() >= deadline:
                raise Unavailable(f"{what}: JetStream did not answer ({e!r})") from None
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)


async def _consumer_info(js: Any, stream: str, name: str) -> Any:
    try:
        return await js.consumer_info(stream, name)
    except TypeError as e:  # nats-py building ConsumerInfo from a reply without its fields
        raise _MalformedReply(str(e)) from None


async def _bucket_kv(bus: NatsBus, bucket: str, ttl: float) -> KeyValue:
    js = await bus._connected()
    try:
        return await js.create_key_value(
            api.KeyValueConfig(
                bucket=bucket,
                ttl=ttl,
                history=1,
                storage=api.StorageType.FILE,
                replicas=bus.replicas,
            )
        )
    except nats.js.errors.BadRequestError:
        return await js.key_value(bucket)  # exists with another configuration: use it


class NatsLeaseStore:
    """``LeaseStore`` in the KV bucket ``bucket`` (created with ``ttl`` if absent)."""

    def __init__(self, bus: NatsBus, bucket: str, ttl: float = 10.0) -> None:
        self.bus, self.bucket, self.ttl = bus, bucket, float(ttl)
        self._kv: KeyValue | None = None
        self._opening = asyncio.Lock()

    async def _get(self) -> KeyValue:
        async with self._opening:
            if self._kv is None:
                self._kv = await _retry(
                    lambda: _bucket_kv(self.bus, self.bucket, self.ttl), f"opening {self.bucket}"
                )
        return self._kv

    async def claim(self, name: str, owner: str) -> Lease | None:
        kv = await self._get()
        return await self._write(
            kv, name, owner, lambda: kv.create(name, owner.encode()), f"claiming {name}"
        )

    async def renew(self, lease: Lease) -> Lease | None:
        kv = await self._get()
        return await self._write(
            kv,
            lease.name,
            lease.owner,
            lambda: kv.update(lease.name, lease.owner.encode(), last=lease.token),
            f"renewing {lease.name}",
        )

    async def _write(
        self, kv: KeyValue, name: str, owner: str, op: Callable[[], Awaitable[int]], what: str
    ) -> Lease | None:
        """A conditional write of the lease (create, or update at the last token), retried
        while JetStream is briefly unavailable.

        A write that timed out may have been stored all the same (a JetStream cluster electing
        a leader answers late or not at all); its retry is then refused, against a sequence the
        first write moved on. Only then, the key is read: if it holds ``owner`` (members are
        unique per process, nobody else writes that value), the first write took and the
        lease is held at the key's revision. Without a timeout first, a refusal is final."""
        timed_out = False

        async def attempt() -> int:
            nonlocal timed_out
            try:
                return await op()
            except _TRANSIENT:
                timed_out = True
                raise

        try:
            return Lease(name, owner, await _retry(attempt, what))
        except nats.js.errors.KeyWrongLastSequenceError:
            return await self._ours(kv, name, owner) if timed_out else None

    async def _ours(self, kv: KeyValue, name: str, owner: str) -> Lease | None:
        try:
            entry = await _retry(lambda: kv.get(name), f"reading {name}")
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if entry.value is None or entry.value.decode() != owner or entry.revision is None:
            return None
        log.warning("%s: a write that timed out was stored; the lease is still %s's", name, owner)
        return Lease(name, owner, entry.revision)

    async def release(self, lease: Lease) -> None:
        kv = await self._get()
        try:
            await _retry(lambda: kv.delete(lease.name, last=lease.token), "releasing")
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # lost meanwhile: it is someone else's now
        except nats.js.errors.BadRequestError as e:
            if e.err_code not in _WRONG_LAST:
                raise

    async def held(self, prefix: str = "") -> dict[str, str]:
        kv = await self._get()
        watcher = await _retry(lambda: kv.watchall(ignore_deletes=True), "listing leases")
        out: dict[str, str] = {}
        try:
            async for entry in watcher:
                if entry is None:  # caught up with the bucket
                    break
                if entry.key.startswith(prefix) and entry.value:
                    out[entry.key] = entry.value.decode()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return out


class NatsCheckpointStore:
    """``CheckpointStore`` in the object store ``bucket``."""

    def __init__(self, bus: NatsBus, bucket: str) -> None:
        self.bus, self.bucket = bus, bucket
        self._obs: ObjectStore | None = None

    async def _get(self) -> ObjectStore:
        if self._obs is None:
            js = await self.bus._connected()
            try:
                self._obs = await js.create_object_store(
                    self.bucket,
                    api.ObjectStoreConfig(storage=api.StorageType.FILE, replicas=self.bus.replicas),
                )
            except nats.js.errors.BadRequestError:
                self._obs = await js.object_store(self.bucket)
        return self._obs

    async def save(self, name: str, seq: int, state: bytes) -> None:
        obs = await self._get()
        data = _SEQ.pack(int(seq)) + bytes(state)
        try:
            await _retry(lambda: obs.put(name, data), f"saving checkpoint {name}")
        except (TimeoutError, nats.errors.Error) as e:
            raise Unavailable(f"saving checkpoint {name} failed: {e!r}") from None

    async def load(self, name: str) -> tuple[int, bytes] | None:
        obs = await self._get()
        try:
            got = await _retry(lambda: obs.get(name), f"loading checkpoint {name}")
        except nats.js.errors.ObjectNotFoundError:
            return None
        except nats.js.errors.NotFoundError:
            return None
        data = got.data or b""
        if len(data) < _SEQ.size:
            return None
        return _SEQ.unpack_from(data)[0], data[_SEQ.size :]


class _Owned:
    def __init__(self, p: int, psub: object, replay_upto: int) -> None:
        self.p, self.psub, self.replay_upto = p, psub, replay_upto
        self.stopping = False
        #: Applying a batch (a graceful stop waits for it; a fetch is simply cancelled).
        self.busy = False
        self.task: asyncio.Task[None] | None = None


class NatsConsumption:
    """One member's share of a group's partitions (``owned``), until ``stop``."""

    def __init__(
        self,
        bus: NatsBus,
        leases: LeaseStore,
        group: str,
        member: str,
        handler: PartitionHandler,
        *,
        families: tuple[str, ...] = ("telemetry",),
        batch: int,
        ack_wait: float,
        heartbeat: float | None,
    ) -> None:
        self.bus, self.group, self.member, self.handler = bus, group, member, handler
        self.batch, self.ack_wait = batch, ack_wait
        self.families = families
        self._owned: dict[int, _Owned] = {}
        self.coordinator = Coordinator(
            leases,
            group,
            member,
            bus.partitions,
            on_claimed=self._claimed,
            on_handover=self._handover,
            on_lost=self._lost,
            heartbeat=heartbeat,
        )

    def owned(self) -> set[int]:
        return set(self._owned)

    def consumer(self, p: int) -> str:
        return f"{self.group}-p{p}"

    def _filter(self, p: int) -> str:
        # One filter per consumer (nats-server 2.9 has no lists): all families, or one.
        return self.bus.partition_filter(p, self.families[0] if len(self.families) == 1 else None)

    def _config(self, p: int, start: int | None) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=self.consumer(p),
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.NEW
            if start is None
            else api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_wait=self.ack_wait,
            filter_subject=self._filter(p),
            max_ack_pending=-1,
        )

    async def ensure_consumers(self) -> None:
        """Every partition's consumer, created (from the next message) where missing, so what
        is published from now on waits for its partition's owner."""
        js = await self.bus._connected()
        for p in range(self.bus.partitions):
            await self._ensure_consumer(js, p)

    async def _ensure_consumer(self, js: Any, p: int) -> None:
        name = self.consumer(p)
        try:
            await _retry(lambda: _consumer_info(js, self.bus.stream, name), f"consumer {name}")
        except nats.js.errors.NotFoundError:
            config = self._config(p, None)
            await _retry(lambda: js.add_consumer(self.bus.stream, config), f"creating {name}")

    async def _claimed(self, p: int) -> None:
        js = await self.bus._connected()
        name = self.consumer(p)
        acked = 0
        try:
            info = await _retry(
                lambda: _consumer_info(js, self.bus.stream, name), f"consumer {name}"
            )
            # Of a consumer nothing was delivered by yet: the stream position it starts after.
            acked = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        except nats.js.errors.NotFoundError:
            info = None
        applied = await self.handler.assigned(p, acked)
        # Deliver from the message after the restored state's position (0: the first), always
        # by recreating the consumer: nothing waits for a dead owner's ack_wait, and what it
        # acknowledged after its checkpoint comes again, as replay.
        start = applied + 1
        if info is not None:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await _retry(lambda: js.delete_consumer(self.bus.stream, name), "deleting")
        config = self._config(p, start)
        await _retry(lambda: js.add_consumer(self.bus.stream, config), f"creating {name}")
        psub = await _retry(lambda: js.pull_subscribe_bind(name, self.bus.stream), "binding")
        owned = _Owned(p, psub, acked if acked > applied else 0)
        owned.task = asyncio.create_task(self._pump(owned), name=f"partition:{self.group}:{p}")
        self._owned[p] = owned
        log.info(
            "%s owns partition %d of %s (from seq %s, replaying to %d)",
            self.member,
            p,
            self.group,
            start,
            owned.replay_upto,
        )

    async def _pump(self, o: _Owned) -> None:
        logical = self.bus.logical
        fresh = self.coordinator.fresh
        wait = max(0.1, min(1.0, self.coordinator.leases.ttl / 8))
        while not o.stopping:
            if not fresh(o.p):  # a renewal is late: fetch nothing until it is renewed (or lost)
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await o.psub.fetch(self.batch, timeout=wait)  # type: ignore[attr-defined]
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # e.g. a NATS node going away: try again shortly
                log.warning("partition %d of %s: fetch failed: %r", o.p, self.group, e)
                await asyncio.sleep(0.5)
                continue
            if not msgs:
                continue
            while not fresh(o.p):  # renewed late meanwhile: apply once renewed (lost: cancelled)
                if o.stopping:
                    return  # not applied, not acked: the next owner gets them
                await asyncio.sleep(0.05)
            batch = [
                Delivery(
                    logical(m.subject),
                    m.data,
                    o.p,
                    m.metadata.sequence.stream,
                    m.metadata.sequence.stream <= o.replay_upto,
                )
                for m in msgs
            ]
            o.busy = True
            try:
                await self._apply(o, msgs, batch)
            finally:
                o.busy = False

    async def _apply(self, o: _Owned, msgs: list[Any], batch: list[Delivery]) -> None:
        for attempt in range(1, MAX_TRIES + 1):
            if o.stopping:
                return  # not applied, not acked: the next owner gets them again
            try:
                await self.handler.deliver(o.p, batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "partition %d of %s: applying %d messages failed (try %d of %d)",
                    o.p,
                    self.group,
                    len(batch),
                    attempt,
                    MAX_TRIES,
                )
                await asyncio.sleep(0.2 * attempt)
        with contextlib.suppress(nats.errors.Error):
            await msgs[-1].ack()  # AckPolicy.ALL: the whole batch

    async def _halt(self, p: int, graceful: bool) -> None:
        o = self._owned.pop(p, None)
        if o is None or o.task is None:
            return
        o.stopping = True
        if graceful and o.busy:  # the batch under way is applied and acked, then the loop ends
            await asyncio.wait({o.task})
        await cancel_and_wait(o.task)  # waiting for messages (or lost): nothing to finish
        with contextlib.suppress(Exception):
            await o.psub.unsubscribe()  # type: ignore[attr-defined]

    async def _handover(self, p: int) -> None:
        await self._halt(p, graceful=True)  # the batch under way is applied and acked first
        await self.handler.revoked(p)

    async def _lost(self, p: int) -> None:
        await self._halt(p, graceful=False)
        await self.handler.lost(p)

    async def stop(self) -> None:
        await self.coordinator.stop()


class NatsPartitions:
    """``PartitionedConsumer`` on a ``NatsBus`` (its stream, its partition count)."""

    def __init__(
        self,
        bus: NatsBus,
        leases: LeaseStore,
        *,
        member: str | None = None,
        batch: int = 256,
        ack_wait: float = 30.0,
        heartbeat: float | None = None,
    ) -> None:
        self.bus, self.leases = bus, leases
        self.count = bus.partitions
        self.member = member or uuid.uuid4().hex[:12]
        self.batch, self.ack_wait, self.heartbeat = batch, ack_wait, heartbeat

    async def consume(
        self, subject: str | tuple[str, ...], group: str, handler: PartitionHandler
    ) -> NatsConsumption:
        subjects = (subject,) if isinstance(subject, str) else tuple(subject)
        families = tuple(dict.fromkeys(s.partition(".")[0] for s in subjects))
        if (
            not subjects
            or any(not s.endswith(".>") or s.count(".") != 1 for s in subjects)
            or any(f not in PARTITIONED_FAMILIES for f in families)
            or (len(families) > 1 and set(families) != set(PARTITIONED_FAMILIES))
        ):
            raise InvalidInput(
                f"partitioned consumption of {subject!r} is not supported",
                hint="one of telemetry.> or anomaly.>, or all of them together",
            )
        c = NatsConsumption(
            self.bus,
            self.leases,
            group,
            self.member,
            handler,
            families=families,
            batch=self.batch,
            ack_wait=self.ack_wait,
            heartbeat=self.heartbeat,
        )
        await c.ensure_consumers()
        await c.coordinator.tick()  # claim what this member prefers now
        c.coordinator.start()
        return c


def partitioned_for(
    bus: object, group: str, *, lease_s: float, member: str | None = None
) -> tuple[NatsPartitions, NatsCheckpointStore] | None:
    """The partitioned consumer and checkpoint store of ``group`` on ``bus`` (buckets
    ``{stream}_{group}_leases`` and ``{stream}_{group}_state``); ``None`` for a bus that is not
    NATS (one process owns everything there)."""
    if not isinstance(bus, NatsBus):
        return None
    leases = NatsLeaseStore(bus, f"{bus.stream}_{group}_leases", ttl=lease_s)
    return (
        NatsPartitions(bus, leases, member=member, ack_wait=max(30.0, 3 * lease_s)),
        NatsCheckpointStore(bus, f"{bus.stream}_{group}_state"),
    )


def leader_for(
    bus: object, name: str, *, lease_s: float, member: str | None = None
) -> Leader | None:
    """The lease of the deployment's singleton ``name`` (``leader`` in the bucket
    ``{stream}_{name}_leader``) on a NATS bus; ``None`` elsewhere (one process: it always leads)."""
    if not isinstance(bus, NatsBus):
        return None
    leases = NatsLeaseStore(bus, f"{bus.stream}_{name}_leader", ttl=lease_s)
    return Leader(leases, "leader", member or uuid.uuid4().hex[:12])


__all__ = [
    "NatsCheckpointStore",
    "NatsConsumption",
    "NatsLeaseStore",
    "NatsPartitions",
    "leader_for",
    "partitioned_for",
]
