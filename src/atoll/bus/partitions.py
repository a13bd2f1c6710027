"""Partitioned consumption: the ports behind "one owner per device", and their in-process adapters.

A bus subject of the ``telemetry`` or ``anomaly`` family names its device
(``telemetry.{project}.{device}``, ``anomaly.{project}.{device}``);
its **partition** is ``partition_of(device, count)``: CRC-32 of the device id modulo ``count``
(default ``DEFAULT_PARTITIONS``), the same in every process and every Python (never ``hash()``,
which is salted per process). Every reading of a device thus lands in one partition, in the order
it was published.

Three small ports:

* ``LeaseStore``: named leases with an owner and a time to live, claimed with compare-and-set
  and renewed by heartbeats. A lease that is not renewed within its time to live lapses and can
  be claimed by another owner. Each claim or renewal returns a new **token** (a number that only
  grows), which the holder shows to renew or release.
* ``CheckpointStore``: per partition, one blob (the owner's state) together with the last stream
  position applied to it (``seq``), saved and loaded as one piece.
* ``PartitionedConsumer``: ``consume(subject, group, handler)`` hands each partition to exactly
  one ``PartitionHandler`` of the group at a time: ``assigned(p, start)`` (restore; returns
  the last applied position), ``deliver(p, batch)`` (apply; returning means applied, and the
  messages are then acknowledged), ``revoked(p)`` (hand-over: checkpoint, then forget) and
  ``lost(p)`` (the lease lapsed: forget without checkpointing, another owner may hold it).

``Coordinator`` runs the leases for any ``LeaseStore``: members announce themselves with
heartbeats; each partition's preferred owner among the live members is the one with the highest
``crc32(member, partition)`` (rendezvous hashing), so a join or leave moves only the partitions
that must move. A member claims the free partitions it prefers (any free one after ``grace``),
renews what it holds, and hands over what another live member prefers.

In-process adapters (the embedded mode, and the conformance suites' reference):
``MemoryLeaseStore``, ``MemoryCheckpointStore`` and ``MemoryPartitions`` (one process owns every
partition of any ``MessageBus``). The NATS JetStream adapters are in ``atoll.bus.nats_partitions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import zlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 64
#: The bus subject families that carry a device and are partitioned (a device's telemetry and
#: its anomaly events land in the same partition: the rules consume both there).
PARTITIONED_FAMILIES = ("telemetry", "anomaly")


def partition_of(device: str, count: int = DEFAULT_PARTITIONS) -> int:
    """The partition of a device: stable across processes, machines and Python versions.

    >>> partition_of("d1", 64), partition_of("d1", 64) == partition_of("d1", 64)
    (38, True)
    """
    return zlib.crc32(device.encode()) % count


def subject_partition(subject: str, count: int = DEFAULT_PARTITIONS) -> int | None:
    """The partition of a ``telemetry.{project}.{device}`` or ``anomaly.{project}.{device}``
    subject (``None``: not partitioned).

    >>> subject_partition("telemetry.p1.d1"), subject_partition("anomaly.p1.d1")
    (38, 38)
    >>> subject_partition("alarm.p1") is None
    True
    """
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] not in PARTITIONED_FAMILIES:
        return None
    return partition_of(parts[2], count)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message of a partition. ``seq`` grows in publish order within the partition;
    ``replay``: a previous owner already acknowledged it (apply it to the state, don't emit)."""

    subject: str
    data: bytes
    partition: int
    seq: int
    replay: bool = False


class PartitionHandler(Protocol):
    async def assigned(self, partition: int, start: int) -> int:
        """Restore the partition's state; the last position applied to it. With nothing to
        restore (the partition's first owner ever), empty state is valid at ``start`` (where the
        partition's messages begin): keep that as the position, durably if state is kept, so that
        a next owner never starts from a position this owner's state does not match."""

    async def deliver(self, partition: int, batch: list[Delivery]) -> None:
        """Apply the messages, in order; returning means applied (they are then acked)."""

    async def revoked(self, partition: int) -> None:
        """Hand-over: checkpoint the partition and forget it."""

    async def lost(self, partition: int) -> None:
        """The lease lapsed (another owner may hold it): forget it, don't checkpoint."""


class PartitionedConsumption(Protocol):
    def owned(self) -> set[int]: ...

    async def stop(self) -> None:
        """Hand every partition over (``revoked``) and leave the group."""


@runtime_checkable
class PartitionedConsumer(Protocol):
    #: How many partitions a subject family has.
    count: int

    async def consume(
        self, subject: str | tuple[str, ...], group: str, handler: PartitionHandler
    ) -> PartitionedConsumption:
        """``subject``: one partitioned family's ``{family}.>`` or several (``("telemetry.>",
        "anomaly.>")``: a partition's messages of both, in one sequence, in publish order)."""


# -- leases ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    owner: str
    token: int


@runtime_checkable
class LeaseStore(Protocol):
    """Leases that lapse unless renewed within ``ttl`` seconds (the store's, fixed)."""

    ttl: float

    async def claim(self, name: str, owner: str) -> Lease | None:
        """The lease if it was free (or lapsed) and is now ``owner``'s, else ``None``."""

    async def renew(self, lease: Lease) -> Lease | None:
        """The renewed lease (a new token), ``None`` if it is no longer held by its owner."""

    async def release(self, lease: Lease) -> None:
        """Give it up now (no-op if it was lost meanwhile)."""

    async def held(self, prefix: str = "") -> dict[str, str]:
        """Live leases whose name starts with ``prefix``: ``{name: owner}``."""


class MemoryLeaseStore:
    """In-process ``LeaseStore`` (monotonic clock)."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._leases: dict[str, tuple[str, int, float]] = {}
        self._tokens = itertools.count(1)

    def _live(self, name: str) -> tuple[str, int, float] | None:
        got = self._leases.get(name)
        if got is not None and got[2] <= self._clock():
            del self._leases[name]
            return None
        return got

    async def claim(self, name: str, owner: str) -> Lease | None:
        if self._live(name) is not None:
            return None
        token = next(self._tokens)
        self._leases[name] = (owner, token, self._clock() + self.ttl)
        return Lease(name, owner, token)

    async def renew(self, lease: Lease) -> Lease | None:
        got = self._live(lease.name)
        if got is None or got[:2] != (lease.owner, lease.token):
            return None
        token = next(self._tokens)
        self._leases[lease.name] = (lease.owner, token, self._clock() + self.ttl)
        return Lease(lease.name, lease.owner, token)

    async def release(self, lease: Lease) -> None:
        got = self._live(lease.name)
        if got is not None and got[:2] == (lease.owner, lease.token):
            del self._leases[lease.name]

    async def held(self, prefix: str = "") -> dict[str, str]:
        return {
            n: got[0]
            for n in list(self._leases)
            if n.startswith(prefix) and (got := self._live(n)) is not None
        }


# -- checkpoints ----------------------------------------------------------------------------------


@runtime_checkable
class CheckpointStore(Protocol):
    async def save(self, name: str, seq: int, state: bytes) -> None:
        """Keep ``state`` and the last position applied to it, as one piece."""

    async def load(self, name: str) -> tuple[int, bytes] | None:
        """``(seq, state)`` last saved, ``None`` if never."""


class MemoryCheckpointStore:
    def __init__(self) -> None:
        self._saved: dict[str, tuple[int, bytes]] = {}

    async def save(self, name: str, seq: int, state: bytes) -> None:
        self._saved[name] = (int(seq), bytes(state))

    async def load(self, name: str) -> tuple[int, bytes] | None:
        return self._saved.get(name)


# -- who owns what --------------------------------------------------------------------------------


def preferred_owner(partition: int, members: Sequence[str]) -> str | None:
    """Rendezvous hashing: the live member that should own ``partition``.

    >>> preferred_owner(3, ["a", "b"]) in ("a", "b"), preferred_owner(3, [])
    (True, None)
    """
    if not members:
        return None
    return max(members, key=lambda m: (zlib.crc32(f"{m}/{partition}".encode()), m))


class Coordinator:
    """Claims, renews and hands over partition leases for one member (see the module doc).

    ``on_claimed(p, lease)`` / ``on_handover(p)`` / ``on_lost(p)`` are awaited on the loop;
    ``tick()`` does one round (``run()`` loops every ``heartbeat`` seconds)."""

    def __init__(
        self,
        leases: LeaseStore,
        group: str,
        member: str,
        count: int,
        *,
        on_claimed: Callable[[int], object],
        on_handover: Callable[[int], object],
        on_lost: Callable[[int], object],
        heartbeat: float | None = None,
        grace: float | None = None,
    ) -> None:
        self.leases, self.group, self.member, self.count = leases, group, member, count
        self._on_claimed, self._on_handover, self._on_lost = on_claimed, on_handover, on_lost
        self.heartbeat = heartbeat if heartbeat is not None else leases.ttl / 4
        #: A free partition its preferred member has not claimed for this long: anyone takes it.
        self.grace = grace if grace is not None else 2 * self.heartbeat
        self.held: dict[int, Lease] = {}
        #: ``time.monotonic()`` when each held lease was last claimed or renewed: it is valid
        #: on the store until at least ``ttl`` after that (see ``fresh``).
        self.renewed_at: dict[int, float] = {}
        self._me: Lease | None = None
        self._free_since: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._busy: dict[int, asyncio.Future[None]] = {}
        self._leaving = False

    def fresh(self, p: int) -> bool:
        """Whether ``p``'s lease is surely still this member's on the store: renewed less than
        two thirds of its ``ttl`` ago (by this member's clock, which starts before the store's).
        An owner acts on a partition only while it is fresh, so one that stalls (a slow round, a
        paused process) stops before another can take the partition over."""
        at = self.renewed_at.get(p)
        return at is not None and p in self.held and time.monotonic() - at < self.leases.ttl * 2 / 3

    def _key(self, p: int) -> str:
        return f"{self.group}.p{p}"

    async def tick(self) -> None:
        """One round: renew what is held (all at once), then claim and hand over. Taking over
        or handing over a partition (restoring, checkpointing) runs in a task of its own, so
        renewals never wait for it."""
        await self._renew()
        if not self._leaving:
            await self._balance()

    async def _renew(self) -> None:
        member_key = f"{self.group}.member.{self.member}"
        if self._me is not None:
            self._me = await self.leases.renew(self._me)
        if self._me is None:
            self._me = await self.leases.claim(member_key, self.member)
        parts = list(self.held.items())
        # Measured from before the requests: the store's clock runs from their writes, later.
        asked = time.monotonic()
        got = await asyncio.gather(
            *(self.leases.renew(lease) for _, lease in parts), return_exceptions=True
        )
        for (p, _), renewed in zip(parts, got, strict=True):
            if isinstance(renewed, BaseException):
                log.warning("renewing partition %d of %s failed: %r", p, self.group, renewed)
            elif renewed is None:
                if self.held.pop(p, None) is None:
                    continue  # released meanwhile
                log.warning("%s lost partition %d of %s", self.member, p, self.group)
                busy = self._busy.pop(p, None)
                await cancel_and_wait(busy)
                await _call(self._on_lost, p)
            elif p in self.held:
                self.held[p] = renewed
                self.renewed_at[p] = asked

    async def _balance(self) -> None:
        held = await self.leases.held(f"{self.group}.")
        members = sorted(
            {o for n, o in held.items() if n.startswith(f"{self.group}.member.")} | {self.member}
        )
        for p in list(self.held):
            if p in self._busy or preferred_owner(p, members) == self.member:
                continue
            # Another live member prefers it: checkpoint, then release (in a task).
            self._spawn(p, self._hand_over(p))
        now = time.monotonic()
        for p in range(self.count):
            if p in self.held:
                continue
            if self._key(p) in held:
                self._free_since.pop(p, None)
                continue
            since = self._free_since.setdefault(p, now)
            if preferred_owner(p, members) == self.member or now - since >= self.grace:
                asked = time.monotonic()
                got = await self.leases.claim(self._key(p), self.member)
                if got is not None:
                    self._free_since.pop(p, None)
                    self.held[p] = got
                    self.renewed_at[p] = asked
                    self._spawn(p, self._take_over(p))

    def _spawn(self, p: int, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._busy[p] = task

        def done(t: asyncio.Future[None]) -> None:
            if self._busy.get(p) is t:
                del self._busy[p]

        task.add_done_callback(done)

    async def _take_over(self, p: int) -> None:
        try:
            await _call(self._on_claimed, p)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("taking over partition %d of %s failed", p, self.group)
            lease = self.held.pop(p, None)
            if lease is not None:
                await self.leases.release(lease)

    async def _hand_over(self, p: int) -> None:
        try:
            await _call(self._on_handover, p)
        except Exception:
            log.exception("handing over partition %d of %s failed", p, self.group)
        lease = self.held.pop(p, None)
        if lease is not None:
            await self.leases.release(lease)

    async def run(self) -> None:
        while not self._leaving:  # (a cancellation may be swallowed: see atoll.core.tasks)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("partition leases of %s (%s): round failed", self.group, self.member)
            await asyncio.sleep(self.heartbeat)

    async def settled(self) -> None:
        """Wait for the take-overs and hand-overs under way."""
        while self._busy:
            await asyncio.gather(*list(self._busy.values()), return_exceptions=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"leases:{self.group}:{self.member}")

    async def stop(self) -> None:
        """Hand every held partition over and leave."""
        self._leaving = True
        await cancel_and_wait(self._task)
        await self.settled()
        await asyncio.gather(*(self._hand_over(p) for p in sorted(self.held)))
        if self._me is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(self._me)
            self._me = None


class Leader:
    """One member of a deployment at a time runs the singletons (scheduled reports, retention,
    command expiry): the holder of the lease ``name`` on a ``LeaseStore``. ``leading()`` claims
    or renews it and says whether this member holds it now (call it at least every ``ttl / 2``
    seconds while leading, e.g. on each timer pass). A lease is no lock on its own (a holder
    that stalls past ``ttl`` may overlap with the next): each job also claims its run with
    compare-and-set on its last run, so a slot runs once."""

    def __init__(self, leases: LeaseStore, name: str, member: str) -> None:
        self.leases, self.name, self.member = leases, name, member
        self._lease: Lease | None = None
        self._at = 0.0

    async def leading(self) -> bool:
        asked = time.monotonic()
        try:
            if self._lease is not None:
                self._lease = await self.leases.renew(self._lease)
            if self._lease is None:
                self._lease = await self.leases.claim(self.name, self.member)
        except Exception as e:  # the lease store is unavailable: not leading until it is back
            log.warning("leader lease %s: %r", self.name, e)
            return self._lease is not None and asked - self._at < self.leases.ttl * 2 / 3
        if self._lease is not None:
            self._at = asked
        return self._lease is not None

    async def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(lease)


async def _call(fn: Callable[[int], object], p: int) -> None:
    got = fn(p)
    if asyncio.iscoroutine(got) or isinstance(got, asyncio.Future):
        await got


# -- the in-process consumer ----------------------------------------------------------------------


class _MemoryConsumption:
    def __init__(self, count: int, subs: list[Subscription], task: asyncio.Task[None]) -> None:
        self._count, self._subs, self._task = count, subs, task
        self.handler: PartitionHandler | None = None

    def owned(self) -> set[int]:
        return set(range(self._count))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        await cancel_and_wait(self._task)
        if self.handler is not None:
            for p in range(self._count):
                await self.handler.revoked(p)


class MemoryPartitions:
    """One process owns every partition of ``bus`` (the embedded mode): messages are numbered
    per partition as they arrive and handed over in batches of what is queued."""

    def __init__(self, bus: MessageBus, count: int = DEFAULT_PARTITIONS, batch: int = 256) -> None:
        self.bus, self.count, self.batch = bus, count, batch

    async def consume(
        self, subject: str | tuple[str, ...], group: str, handler: PartitionHandler
    ) -> _MemoryConsumption:
        subjects = (subject,) if isinstance(subject, str) else tuple(subject)
        seqs = [0] * self.count
        for p in range(self.count):
            seqs[p] = await handler.assigned(p, seqs[p])
        queue: asyncio.Queue[Delivery] = asyncio.Queue()

        async def on_msg(msg: Message) -> None:
            p = subject_partition(msg.subject, self.count)
            if p is None:
                return
            seqs[p] += 1
            queue.put_nowait(Delivery(msg.subject, msg.data, p, seqs[p]))

        async def drain() -> None:
            while True:
                got = [await queue.get()]
                while len(got) < self.batch and not queue.empty():
                    got.append(queue.get_nowait())
                by_p: dict[int, list[Delivery]] = {}
                for d in got:
                    by_p.setdefault(d.partition, []).append(d)
                for p, batch in by_p.items():
                    try:
                        await handler.deliver(p, batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "partition %d of %s failed on %d messages", p, group, len(batch)
                        )

        subs = [await self.bus.subscribe(s, on_msg, group=group) for s in subjects]
        out = _MemoryConsumption(self.count, subs, asyncio.create_task(drain(), name="partitions"))
        out.handler = handler
        return out


__all__ = [
    "DEFAULT_PARTITIONS",
    "PARTITIONED_FAMILIES",
    "CheckpointStore",
    "Coordinator",
    "Delivery",
    "Lease",
    "LeaseStore",
    "Leader",
    "MemoryCheckpointStore",
    "MemoryLeaseStore",
    "MemoryPartitions",
    "PartitionHandler",
    "PartitionedConsumer",
    "PartitionedConsumption",
    "partition_of",
    "preferred_owner",
    "subject_partition",
]
