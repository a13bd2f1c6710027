"""The ingest pipeline every transport (embedded MQTT, external MQTT, HTTP) goes through.

validate → queue → one writer thread that *group-commits* everything queued into a single
``SeriesStore.append`` → publish the points' telemetry events on the bus → resolve each
submitter only after both returned. So ``await submit_telemetry(...)`` returning means the
points are durable in the store *and* their events are on the bus (on NATS: stored by
JetStream), and the transports answer (PUBACK, HTTP 2xx) only after it returned: detection and
rules see every acknowledged reading.

When the bus refuses an event (NATS down), the stored points' submitters get ``NotPublished``
(an ``Unavailable``: 503, no PUBACK); the event stays in this process's outbox and is published
again with a growing wait until the bus takes it. Until then new telemetry is refused before
it is stored (``Unavailable``), so nothing piles up and nothing is stored twice while the device
re-sends. External MQTT waits for ``NotPublished.published`` before acknowledging to the
broker, instead of handing the message in again (which would stamp readings without ``ts``
a second time).

Transports that receive many messages at once (the embedded broker reads a whole TCP chunk)
``validate`` each message and ``enqueue`` them as one unit with one future, so a group of
messages costs one future and one callback instead of one awaiting task per message.

Rejections are counted in memory and flushed to the registry about once a second, so a
device flooding bad messages cannot turn into a database write per message.

Rate limits (``atoll.ingest.quota``): every message handled here is charged to its device and
tenant. HTTP asks ``admit`` before taking a request (it can refuse: 429); transports that
cannot refuse wait instead: message by message in ``hold`` (MQTT over WebSockets, external
MQTT), or before each read of a connection (``read_pacer``, the embedded fast path).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from atoll.bus.port import MessageBus
from atoll.core import topics
from atoll.core.errors import (
    AtollError,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    StorageFull,
    Unavailable,
)
from atoll.core.tasks import cancel_and_wait
from atoll.ingest import events
from atoll.ingest.devices import DeviceDirectory, Identity
from atoll.ingest.quota import Quotas, ReadPacer
from atoll.ingest.validate import (
    DEFAULT_LIMITS,
    INTEGER_TOO_LARGE,
    MALFORMED_JSON,
    OPEN_SCHEMA,
    TOO_LARGE,
    UNPARSEABLE,
    WRONG_TYPE,
    InvalidTelemetry,
    Limits,
    ParsedTelemetry,
    ServerClock,
    TelemetrySchema,
    merge,
    parse_telemetry,
)
from atoll.store.port import SeriesStore

log = logging.getLogger(__name__)

OUT_OF_RANGE_ACCEPTED = "out_of_range_accepted"
#: Over the rate limit: refused (HTTP 429) / waited for (MQTT; stored).
RATE_LIMITED = "rate_limited"
THROTTLED = "throttled"
#: Counted with the rejections, but the message was stored.
ACCEPTED_REASONS = frozenset({OUT_OF_RANGE_ACCEPTED, THROTTLED})
#: Twin documents and command ack results nest at most this deep (they are merged and copied
#: recursively, and a deeper document is no device's honest state).
MAX_JSON_DEPTH = 32
#: A traceback of an unexpected validator failure is logged at most once per this many seconds:
#: a device repeating the message that triggers it must not fill the log.
TRACEBACK_LOG_INTERVAL_S = 60.0
#: A telemetry event the bus refused is published again after these waits, doubling.
REPUBLISH_MIN_S, REPUBLISH_MAX_S = 0.25, 5.0
#: Devices' telemetry events of one commit published at once (each device's in order).
PUBLISHERS = 16


class NotPublished(Unavailable):
    """The points are stored, but the bus has not taken their event yet: not acknowledged.
    ``published`` resolves when this process's outbox got it onto the bus (``None``), or fails
    when the process stopped first."""

    def __init__(self, message: str, published: asyncio.Future[None]) -> None:
        super().__init__(
            message,
            hint="retry; a reading re-sent with the same ts is stored once",
            retry_after=1.0,
        )
        self.published = published


@dataclass
class IngestStats:
    messages: int = 0
    points: int = 0
    commits: int = 0
    rejected: int = 0
    commit_seconds: float = 0.0
    last_commit_points: int = 0
    #: Refusals by reason over all devices (unknown devices included; the registry keeps
    #: per-device counts only for devices it knows).
    by_reason: dict[str, int] = field(default_factory=dict)
    #: Embedded MQTT connections paused for being over their rate limit, and for how long.
    throttled: int = 0
    throttled_seconds: float = 0.0


class _Item:
    """Messages queued together; they are committed together and share one future."""

    __slots__ = ("future", "parsed", "points")

    def __init__(self, parsed: list[ParsedTelemetry], points: int, future: asyncio.Future) -> None:
        self.parsed = parsed
        self.points = points
        self.future = future


class _Event:
    """A device's telemetry for the bus: one event, or several ``chunks`` (in point order)
    when its points are more than the bus takes in one message."""

    __slots__ = ("chunks", "device", "subject")

    def __init__(self, device: tuple[str, str], subject: str, chunks: list[bytes]) -> None:
        self.device = device
        self.subject = subject
        self.chunks = chunks


class _Held:
    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class IngestPipeline:
    def __init__(
        self,
        store: SeriesStore,
        bus: MessageBus | None = None,
        directory: DeviceDirectory | None = None,
        limits: Limits = DEFAULT_LIMITS,
        *,
        max_commit_points: int = 500_000,
        max_queued_points: int = 2_000_000,
        flush_interval: float = 1.0,
        storage_check: Callable[[], Mapping[str, tuple[int, int]]] | None = None,
        rates_check: Callable[[], Mapping[str, float]] | None = None,
        quota_check_s: float = 60.0,
        quotas: Quotas | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.directory = directory
        self.limits = limits
        self.max_commit_points = max_commit_points
        self.max_queued_points = max_queued_points
        self.flush_interval = flush_interval
        #: The platform operator's quotas, asked again every ``quota_check_s`` (in a worker
        #: thread) and at once when one changes (``refresh_quotas``): ``storage_check`` says
        #: ``{tenant: (points held, quota)}`` of the tenants at their storage quota,
        #: ``rates_check`` the ingest rate (points/s) of every tenant that has one.
        self.storage_check, self.rates_check = storage_check, rates_check
        self.quota_check_s = quota_check_s
        self.storage_full: dict[str, tuple[int, int]] = {}
        self._quotas_checked = -math.inf
        self._quotas_refresh = asyncio.Lock()
        #: Every limit; ``quotas`` is ``None`` while none applies (nothing to charge).
        self._quota_book = quotas
        self.quotas = quotas if quotas is not None and not quotas.unlimited else None
        self.stats = IngestStats()
        # Server stamps in this writer's slot of the store: unique across nodes on one store.
        self.stamps = ServerClock(store.stamp_slot)
        self._throttled_s: dict[str, float] = {}  # per device, since start
        self._held: dict[str, _Held] = {}  # devices whose messages wait in ``hold``
        self._cv = threading.Condition()
        self._pending: list[_Item] = []
        self._pending_points = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task | None = None
        self._publishing: set[asyncio.Task] = set()
        #: Since when (monotonic) the bus refuses events; new telemetry is refused meanwhile.
        self._bus_down_since: float | None = None
        self._bus_error = ""
        self._schemas: dict[str, tuple[Any, TelemetrySchema]] = {}
        # (device, transport, reason) -> [count, last_message, last_at]
        self._rejections: dict[tuple[str, str, str], list] = {}
        self._seen: dict[str, int] = {}
        #: Stored since the last counter flush, per project: [messages, points] (metering).
        self._usage: dict[str, list[int]] = {}
        self._flushing = asyncio.Lock()
        self._traceback_logged_at = -TRACEBACK_LOG_INTERVAL_S

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.store.stamp_slot)  # claimed now, not on a device's message
        self._stopping = False
        self._thread = threading.Thread(
            target=self._writer, name="atoll-ingest-writer", daemon=True
        )
        self._thread.start()
        self._flusher = asyncio.create_task(self._flush_loop(), name="atoll-ingest-flush")

    async def stop(self) -> None:
        """Write everything queued, then stop."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        await cancel_and_wait(self._flusher)
        self._flusher = None
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        await self.flush_counters()

    # -- telemetry -------------------------------------------------------------------------

    def schema_for(self, identity: Identity) -> TelemetrySchema:
        metrics = identity.metrics
        if not metrics:
            return OPEN_SCHEMA
        cached = self._schemas.get(identity.device)
        if cached is not None and cached[0] is metrics:
            return cached[1]
        schema = TelemetrySchema.of(metrics.values())
        self._schemas[identity.device] = (metrics, schema)
        return schema

    async def submit_telemetry(
        self, identity: Identity, body: bytes, transport: str = "mqtt"
    ) -> int:
        """Validate and durably store one message; returns the number of points stored.

        Raises ``InvalidInput`` (counted as a rejection) or ``Unavailable`` (store failed).
        """
        try:
            parsed = self.validate(identity, body, transport)
        except InvalidInput:
            self.charge(identity, 1)
            raise
        self.charge(identity, len(parsed.ts))
        return await self.write(parsed)

    def validate(self, identity: Identity, body: bytes, transport: str = "mqtt") -> ParsedTelemetry:
        """Validate one telemetry message; a refusal is counted and raised as ``InvalidInput``
        (``StorageFull`` when the device's tenant is at its storage quota)."""
        if self.storage_full and identity.tenant in self.storage_full:
            raise self._storage_full(identity, transport)
        try:
            parsed = parse_telemetry(
                body,
                project=identity.project,
                device=identity.device,
                schema=self.schema_for(identity),
                limits=self.limits,
                stamps=self.stamps,
            )
        except InvalidInput as e:
            self.reject(identity.device, transport, getattr(e, "reason", e.code), e.message)
            raise
        except Exception as e:  # noqa: BLE001 - a validator bug costs the message, not the connection
            raise self._unparseable(identity, transport, "telemetry", e) from None
        if parsed.out_of_range:
            self.reject(
                identity.device,
                transport,
                OUT_OF_RANGE_ACCEPTED,
                f"{parsed.out_of_range} value(s) outside the declared range of "
                f"{', '.join(parsed.out_of_range_metrics)} (stored)",
                log_level=logging.INFO,
            )
        return parsed

    def _storage_full(self, identity: Identity, transport: str) -> StorageFull:
        held, limit = self.storage_full[identity.tenant]
        message = (
            f"enterprise {identity.tenant!r} is at its storage quota: {held:,} of {limit:,} "
            "points held; telemetry is refused until there is room"
        )
        self.reject(identity.device, transport, "storage_quota", message)
        return StorageFull(
            message,
            hint="shorten a project's retention or delete series, or ask the platform operator "
            "to raise the 'storage_points' quota",
        )

    async def refresh_quotas(self) -> None:
        """Ask ``storage_check`` which tenants are at their storage quota and ``rates_check``
        every tenant's ingest rate quota (in a worker thread), and apply both: every
        ``quota_check_s``, and at once when a quota changed (``atoll.ingest.quota_changes``)."""
        async with self._quotas_refresh:  # one at a time: a later answer is never overwritten
            self._quotas_checked = time.monotonic()
            if self.storage_check is not None:
                try:
                    self.storage_full = dict(await asyncio.to_thread(self.storage_check))
                except AtollError as e:
                    log.warning("storage quota check failed: %s", e.message)
                except Exception:
                    log.exception("storage quota check failed")
            if self.rates_check is not None and self._quota_book is not None:
                try:
                    rates = await asyncio.to_thread(self.rates_check)
                except AtollError as e:
                    log.warning("ingest rate quota check failed: %s", e.message)
                    return
                except Exception:
                    log.exception("ingest rate quota check failed")
                    return
                book = self._quota_book
                book.set_tenant_rates(rates)
                self.quotas = None if book.unlimited else book

    def set_tenant_rate(self, tenant: str, per_s: float | None) -> bool:
        """Apply a tenant's ingest rate quota here now (``refresh_quotas`` applies the
        registry's, and replaces this at its next run); ``False`` if rate limits are off."""
        book = self._quota_book
        if book is None:
            return False
        book.set_tenant_rate(tenant, per_s)
        self.quotas = None if book.unlimited else book
        return True

    async def write(self, parsed: ParsedTelemetry) -> int:
        """Queue validated points for the next group commit and wait until they are durable."""
        await self.room()
        await self.enqueue([parsed])
        return len(parsed)

    # -- rate limits -----------------------------------------------------------------------

    def charge(self, identity: Identity, points: int) -> float:
        """Charge ``points`` (at least 1 per message) to the device and its tenant; returns the
        seconds the sender is now in debt."""
        quotas = self.quotas
        if quotas is None:
            return 0.0
        return quotas.charge(identity.device, identity.tenant, points)

    def read_pacer(self, identity: Identity, largest: int) -> ReadPacer | None:
        """Read sizes for one connection of ``identity`` (``None``: no limit applies)."""
        quotas = self.quotas
        if quotas is None or quotas.policy(identity.tenant).unlimited:
            return None
        return ReadPacer(quotas, identity.device, identity.tenant, largest)

    def over_limit(self, identity: Identity) -> float:
        """Seconds until the device and its tenant have a point to spend again (0: now)."""
        quotas = self.quotas
        if quotas is None:
            return 0.0
        return quotas.wait(identity.device, identity.tenant)

    def admit(self, identity: Identity, transport: str) -> None:
        """For transports that can refuse: raise ``RateLimited`` (counted) while over the limit."""
        wait = self.over_limit(identity)
        if wait > 0:
            assert self.quotas is not None
            msg = (
                f"over the rate limit ({self.quotas.describe(identity.tenant)}); "
                f"retry in {wait:.1f} s"
            )
            self.reject(identity.device, transport, RATE_LIMITED, msg, log_level=logging.INFO)
            raise RateLimited(
                msg,
                retry_after=wait,
                hint=(
                    "send less often, or ask the platform operator to raise the enterprise's"
                    f" ingest_rate quota (PUT /api/v1/tenants/{identity.tenant}/quotas)"
                ),
            )

    def passes(self, identity: Identity) -> bool:
        """Whether ``hold`` would let a message of ``identity`` through at once (no message of
        the device waits, and it and its tenant are within their limits)."""
        return self.quotas is None or (
            identity.device not in self._held and self.over_limit(identity) <= 0
        )

    async def hold(self, identity: Identity, transport: str) -> None:
        """For transports that handle messages one by one and cannot refuse them: wait until
        the device and its tenant are within their limits (counted as ``throttled``). A
        device's held messages go one at a time, in arrival order (``asyncio.Lock`` is fair).

        The caller must hand the message on (``dispatch``) without awaiting anything else
        first: it is charged there, and the next held message must see that charge.
        """
        if self.quotas is None:
            return
        device = identity.device
        held = self._held.get(device)
        if held is None:
            if self.over_limit(identity) <= 0:
                return
            held = self._held[device] = _Held()
        held.waiting += 1
        try:
            async with held.lock:
                backoff = 0.0  # as ReadPacer.wait: still over after a wait, wait longer
                while (wait := self.over_limit(identity)) > 0:
                    wait = max(wait, backoff)
                    backoff = min(2 * wait, ReadPacer.MAX_BACKOFF_S)
                    self.paused(identity, transport, wait)
                    await asyncio.sleep(wait)
        finally:
            held.waiting -= 1
            if not held.waiting:
                del self._held[device]

    def paused(self, identity: Identity, transport: str, seconds: float) -> None:
        """Count that a sender's messages wait ``seconds`` (``throttled``; they are stored)."""
        total = self._throttled_s.get(identity.device, 0.0) + seconds
        self._throttled_s[identity.device] = total
        self.stats.throttled += 1
        self.stats.throttled_seconds += seconds
        policy = self.quotas.describe(identity.tenant) if self.quotas else "none"
        self.reject(
            identity.device,
            transport,
            THROTTLED,
            f"reading paused {seconds:.2f} s ({total:.1f} s since the server started): "
            f"over the rate limit ({policy}); nothing is lost",
            log_level=logging.INFO,
        )

    def behind(self) -> bool:
        """Whether ``room()`` would wait (a check without a coroutine, for hot paths)."""
        return self._pending_points > self.max_queued_points

    async def room(self) -> None:
        """Back-pressure: wait while the writer is behind."""
        while self._pending_points > self.max_queued_points:
            await asyncio.sleep(0.002)

    def enqueue(self, parsed: list[ParsedTelemetry]) -> asyncio.Future[None]:
        """Queue validated messages as one unit of the next group commit.

        The future resolves once they are durable, or fails with ``Unavailable``. Callers that
        enqueue without awaiting ``room()`` first must apply back-pressure themselves.
        """
        loop = self._loop
        if loop is None or self._stopping:
            raise Unavailable("ingest is not running", retry_after=1.0)
        if self._bus_down_since is not None:
            raise Unavailable(
                f"the message bus has refused telemetry events for "
                f"{time.monotonic() - self._bus_down_since:.0f} s ({self._bus_error}); "
                "nothing of this message was stored",
                hint="retry later; ingest resumes by itself when the bus is back",
                retry_after=1.0,
            )
        fut = loop.create_future()
        n = 0
        for p in parsed:
            n += len(p.ts)
        with self._cv:
            self._pending.append(_Item(parsed, n, fut))
            self._pending_points += n
            if len(self._pending) == 1:
                self._cv.notify()
        return fut

    def _writer(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if not self._pending:
                    return
                taken, total = self._take()
            err: BaseException | None = None
            t0 = time.perf_counter()
            try:
                self.store.append(merge([p for i in taken for p in i.parsed]))
            except Unavailable as e:  # the database is down: one line, no traceback each time
                log.warning("store append of %d points failed: %s", total, e.message)
                err = e
            except Exception as e:
                log.exception("store append of %d points failed", total)
                err = e
            elapsed = time.perf_counter() - t0
            with self._cv:
                self._pending_points -= total
            payloads = (
                self._bus_payloads(taken, self.bus.max_payload())
                if err is None and self.bus is not None
                else []
            )
            self.stats.commits += 1
            self.stats.commit_seconds += elapsed
            self.stats.last_commit_points = total
            loop = self._loop
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._resolve, taken, total, err, payloads)
                except RuntimeError:  # loop closed while we were writing
                    pass

    def _take(self) -> tuple[list[_Item], int]:
        items = self._pending
        total = 0
        for n, item in enumerate(items):
            total += item.points
            if total >= self.max_commit_points:
                taken, self._pending = items[: n + 1], items[n + 1 :]
                return taken, total
        self._pending = []
        return items, total

    def _resolve(
        self,
        taken: list[_Item],
        total: int,
        err: BaseException | None,
        payloads: list[_Event],
    ) -> None:
        if err is None:
            now, seen, usage = _now_us(), self._seen, self._usage
            messages = 0
            for item in taken:
                messages += len(item.parsed)
                for p in item.parsed:
                    seen[p.device] = now
                    slot = usage.get(p.project)
                    if slot is None:
                        usage[p.project] = [1, len(p.ts)]
                    else:
                        slot[0] += 1
                        slot[1] += len(p.ts)
            self.stats.messages += messages
            self.stats.points += total
            if payloads:  # acknowledged once the bus has the events too
                task = asyncio.ensure_future(self._publish_then_ack(taken, payloads))
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)
            else:
                for item in taken:
                    if not item.future.done():
                        item.future.set_result(None)
        else:
            exc = Unavailable(
                f"the store could not persist the points: {err}",
                hint="retry later; nothing of this message was acknowledged",
                retry_after=1.0,
            )
            for item in taken:
                if not item.future.done():
                    item.future.set_exception(exc)

    async def _publish_then_ack(self, taken: list[_Item], events_: list[_Event]) -> None:
        """Publish a commit's events, then resolve its submitters; events the bus refused go
        to the outbox and their submitters get ``NotPublished``."""
        failed = await self._publish_events(events_)
        if failed:
            assert self._loop is not None
            published: asyncio.Future[None] = self._loop.create_future()
            published.add_done_callback(_consume)
            devices = {e.device for e in failed}
            exc = NotPublished(
                f"the points are stored, but the message bus did not take their event "
                f"({self._bus_error})",
                published,
            )
        for item in taken:
            if item.future.done():
                continue
            if failed and any((p.project, p.device) in devices for p in item.parsed):
                item.future.set_exception(exc)
            else:
                item.future.set_result(None)
        if failed:
            await self._outbox(failed, published)

    async def _publish_events(self, events_: list[_Event]) -> list[_Event]:
        """Publish (a device's chunks in order, a few devices at once); the events the bus
        refused as ``Unavailable``. Other refusals are logged and dropped (retrying cannot
        help). A device's chunks are consecutive in ``events_``."""
        assert self.bus is not None
        bus = self.bus
        todo = iter(events_)
        failed: list[_Event] = []

        async def publisher() -> None:
            for e in todo:
                for n, data in enumerate(e.chunks):
                    try:
                        await bus.publish(e.subject, data)
                    except Unavailable as err:
                        self._bus_error = err.message
                        failed.append(_Event(e.device, e.subject, e.chunks[n:]))
                        break
                    except Exception:  # noqa: BLE001 - e.g. too large: retrying cannot help
                        log.exception("bus publish on %s failed; the event is dropped", e.subject)

        # A few publishers share the devices: on NATS each publish waits for its PubAck, so
        # they keep several round trips in flight (a task per device would cost more than the
        # publish itself on the in-process bus). A device's chunks go in order, by one of them.
        n = min(len(events_), PUBLISHERS)
        if n == 1:
            await publisher()
        else:
            await asyncio.gather(*(publisher() for _ in range(n)))
        if failed and self._bus_down_since is None:
            self._bus_down_since = time.monotonic()
            log.error(
                "the message bus refused the telemetry of %d device(s) (%s); refusing new "
                "telemetry until it takes them",
                len(failed),
                self._bus_error,
            )
        return failed

    async def _outbox(self, failed: list[_Event], published: asyncio.Future[None]) -> None:
        """Publish stored points' events again, with a growing wait, until the bus takes them
        (or ingest stops: then they are logged as lost to the bus, not to the store)."""
        delay = REPUBLISH_MIN_S
        while failed:
            if self._stopping:
                log.error(
                    "ingest stopped with the telemetry of %d device(s), stored, not on the bus",
                    len(failed),
                )
                published.set_exception(Unavailable("ingest stopped"))
                return
            await asyncio.sleep(delay)
            delay = min(2 * delay, REPUBLISH_MAX_S)
            failed = await self._publish_events(failed)
        if self._bus_down_since is not None:
            log.warning(
                "the message bus takes telemetry events again after %.1f s",
                time.monotonic() - self._bus_down_since,
            )
            self._bus_down_since = None
        published.set_result(None)

    @staticmethod
    def _bus_payloads(taken: list[_Item], max_bytes: int | None) -> list[_Event]:
        """One telemetry event per device, in chunks under the bus's ``max_bytes``."""
        by_device: dict[tuple[str, str], list[ParsedTelemetry]] = {}
        for item in taken:
            for p in item.parsed:
                by_device.setdefault((p.project, p.device), []).append(p)
        out = []
        for (project, device), parts in by_device.items():
            if len(parts) == 1:
                p = parts[0]
                metrics, idx, ts, val = p.metrics, p.key_index, p.ts, p.value
            else:
                lut: dict[str, int] = {}
                idx, ts, val = [], [], []
                for p in parts:
                    if len(p.metrics) == 1:  # single-reading messages: no remapping per point
                        idx.extend([lut.setdefault(p.metrics[0], len(lut))] * len(p.ts))
                    else:
                        remap = [lut.setdefault(m, len(lut)) for m in p.metrics]
                        idx.extend([remap[i] for i in p.key_index])
                    ts.extend(p.ts)
                    val.extend(p.value)
                metrics = list(lut)
            subject = topics.bus_telemetry(project, device)
            chunks = events.encode_telemetry_chunks(
                project, device, metrics, idx, ts, val, max_bytes
            )
            out.append(_Event((project, device), subject, list(chunks)))
        return out

    # -- twins and commands ------------------------------------------------------------------

    async def twin_reported(self, identity: Identity, body: bytes, transport: str = "mqtt") -> Any:
        self.charge(identity, 1)
        doc = self.json_object(identity, body, transport, "twin reported")
        try:
            result = await asyncio.to_thread(
                self.require_directory().patch_reported, identity.device, doc
            )
        except InvalidInput as e:  # the shape and values passed: the merged twin is too large
            self.reject(identity.device, transport, TOO_LARGE, e.message)
            raise
        await self._bus_publish(
            topics.bus_twin(identity.project, identity.device),
            events.encode_twin(identity.project, identity.device, doc, _now_us()),
        )
        return result

    async def command_ack(
        self, identity: Identity, command_id: str, body: bytes, transport: str = "mqtt"
    ) -> Any:
        self.charge(identity, 1)
        doc = self.json_object(identity, body, transport, "command ack")
        status = doc.get("status", "ok")
        if status not in ("ok", "error"):
            msg = f'command ack status must be "ok" or "error", not {_short(status)}'
            self.reject(identity.device, transport, "bad_command_ack", msg)
            raise InvalidTelemetry("bad_command_ack", msg)
        try:
            result = await asyncio.to_thread(
                self.require_directory().command_ack,
                identity.device,
                command_id,
                status,
                doc.get("result"),
            )
        except (NotFound, Conflict) as e:  # unknown, or finished (a late or repeated ack)
            self.reject(identity.device, transport, "unknown_command", e.message)
            raise
        await self._bus_publish(
            topics.bus_command_ack(identity.project, identity.device),
            events.encode_command_ack(
                identity.project, identity.device, command_id, status, doc.get("result"), _now_us()
            ),
        )
        return result

    def json_object(self, identity: Identity, body: bytes, transport: str, what: str) -> dict:
        try:
            return self._parse_object(body, what)
        except InvalidTelemetry as e:
            self.reject(identity.device, transport, e.reason, e.message)
            raise
        except Exception as e:  # noqa: BLE001 - defence in depth, as in validate()
            raise self._unparseable(identity, transport, what, e) from None

    def _parse_object(self, body: bytes, what: str) -> dict:
        if len(body) > self.limits.max_bytes:
            raise InvalidTelemetry(
                TOO_LARGE, f"{what} is {len(body)} bytes; the limit is {self.limits.max_bytes}"
            )
        try:
            doc = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise InvalidTelemetry(MALFORMED_JSON, f"{what}: malformed JSON: {reason}") from None
        if not isinstance(doc, dict):
            raise InvalidTelemetry(WRONG_TYPE, f"{what} must be a JSON object")
        _check_json(doc, what)
        return doc

    def _unparseable(
        self, identity: Identity, transport: str, what: str, error: Exception
    ) -> InvalidTelemetry:
        """Count an unexpected failure to parse a device message as a refusal."""
        now = time.monotonic()
        if now - self._traceback_logged_at >= TRACEBACK_LOG_INTERVAL_S:
            self._traceback_logged_at = now
            log.error(
                "could not parse a %s message of device %s (tracebacks of this kind are "
                "logged at most every %g s)",
                what,
                identity.device,
                TRACEBACK_LOG_INTERVAL_S,
                exc_info=error,
            )
        msg = f"{what} could not be parsed ({type(error).__name__})"
        self.reject(identity.device, transport, UNPARSEABLE, msg)
        return InvalidTelemetry(UNPARSEABLE, msg)

    def require_directory(self) -> DeviceDirectory:
        if self.directory is None:
            raise Unavailable("no device registry is attached")
        return self.directory

    async def _bus_publish(self, subject: str, data: bytes) -> None:
        if self.bus is not None:
            try:
                await self.bus.publish(subject, data)
            except Exception:
                log.exception("bus publish on %s failed", subject)

    # -- rejections ----------------------------------------------------------------------------

    def reject(
        self,
        device: str,
        transport: str,
        reason: str,
        message: str,
        *,
        log_level: int = logging.WARNING,
    ) -> None:
        """Count a refused message (cheap; flushed to the registry in the background)."""
        key = (device, transport, reason)
        row = self._rejections.get(key)
        if row is None:
            self._rejections[key] = [1, message, _now_us()]
            log.log(
                log_level,
                "%s rejected from device %s (%s): %s",
                transport,
                device,
                reason,
                message,
                extra={"limit_key": reason},
            )  # rate-limited per reason (ingest.log_limit)
        else:
            row[0] += 1
            row[1] = message
            row[2] = _now_us()
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        if reason not in ACCEPTED_REASONS:
            self.stats.rejected += 1

    def mark_seen(self, device: str) -> None:
        """Remember that ``device`` was in contact now (``last_seen``, flushed with the counters):
        a gateway whose messages carry only its children's data is seen too."""
        self._seen[device] = _now_us()

    def pending_rejections(self) -> Mapping[tuple[str, str, str], list]:
        return self._rejections

    async def flush_counters(self) -> None:
        """Push counted rejections and last-seen times to the registry; everything counted
        before the call is there when it returns, even if the periodic flush took it first."""
        async with self._flushing:
            # Swap on the event loop (the only thread that counts), write in a worker thread.
            rej, self._rejections = self._rejections, {}
            seen, self._seen = self._seen, {}
            usage, self._usage = self._usage, {}
            # (Usage goes every time, even empty: the registry writes its other pending
            # counters, API calls, with it.)
            if self.directory is not None:
                await asyncio.to_thread(self._write_counters, rej, seen, usage)

    def _write_counters(self, rej: dict, seen: dict, usage: dict) -> None:
        if self.directory is None:
            return
        try:
            if rej:
                self.directory.record_rejections(
                    [(d, t, r, m, at, n) for (d, t, r), (n, m, at) in rej.items()]
                )
            if seen:
                self.directory.touch_devices(seen)
            self.directory.record_usage({p: (m, n) for p, (m, n) in usage.items()})
        except AtollError as e:
            log.warning("could not record ingest counters: %s", e.message)
        except Exception:
            log.exception("could not record ingest counters")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            if self.quotas is not None:
                self.quotas.prune()
            await self.flush_counters()
            if time.monotonic() - self._quotas_checked >= self.quota_check_s:
                await self.refresh_quotas()


def _check_json(doc: Any, what: str) -> None:
    """Refuse what the registry cannot store or merge: deep nesting, integers beyond 64 bits."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidTelemetry(WRONG_TYPE, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
        if type(value) is dict:
            stack.extend((v, depth + 1) for v in value.values())
        elif type(value) is list:
            stack.extend((v, depth + 1) for v in value)
        elif type(value) is int and not -(2**63) <= value < 2**64:
            raise InvalidTelemetry(
                INTEGER_TOO_LARGE, f"{what} holds an integer beyond the 64-bit range"
            )


def _consume(fut: asyncio.Future) -> None:
    """Retrieve an unawaited future's exception (no "never retrieved" warning)."""
    if not fut.cancelled():
        fut.exception()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _now_us() -> int:
    return time.time_ns() // 1000
