"""``MessageBus`` on NATS JetStream: the bus for running Atoll as several processes.

``open_bus("nats://127.0.0.1:4222?stream=ATOLL&max_age=86400")``

Guarantees (what the memory bus gives in one process, made durable):

* **Stream.** One stream (default ``ATOLL``, file storage, limits-based retention, messages
  older than ``max_age`` seconds — default one day — are dropped, oldest first) holds
  ``telemetry.>``, ``anomaly.>``, ``alarm.>``, ``twin.>``, ``command_ack.>``, ``rules.>`` and
  ``quotas.>`` (``atoll.core.topics.ALL_BUS_SUBJECTS``). The adapter
  creates it, or adds missing subjects to an existing one. Publishing or subscribing outside
  those subjects is ``InvalidInput``: a typo must not silently go nowhere.
* **Partitions.** A subject of a partitioned family (``telemetry.{project}.{device}``,
  ``anomaly.{project}.{device}``) is stored as ``part.{partition}.{subject}``
  (``atoll.bus.partitions.partition_of``, out of ``partitions``, default 64), so one consumer
  filter (``part.{p}.>``) takes a partition's messages of every family, and
  ``part.{p}.telemetry.>`` of one; handlers see the subject without the partition, patterns are
  widened to match it. ``atoll.bus.nats_partitions`` consumes one durable consumer per partition.
  ``replicas=3`` keeps the stream on three nodes of a JetStream cluster.
* **Prefix.** With ``prefix=P`` every subject on the wire is ``P.{subject}`` (the stream's
  too), and handlers still see ``{subject}``: two deployments on one NATS server, each with
  its own prefix and stream, are isolated. ``stream=`` alone names the stream, not subjects.
* **Publish** returns once JetStream has stored the message (the PubAck), so a returned
  publish survives a crash of every Atoll process.
* **Subscribe without a group**: an ephemeral consumer that starts at the next message and
  is deleted on ``unsubscribe`` (what a live WebSocket view needs).
* **Subscribe with a group**: a durable consumer named after the group and the subject,
  shared by every subscriber with that group in any process (a NATS queue group on its push
  subject). It outlives its subscribers: what is published while all workers are down waits
  for the next one. A new group starts at the next message, not at the stream's history.
* **Acks.** A message is acked after its handler returns. A handler that raises gets the
  message again after ``retry_delay`` seconds, ``max_deliver`` times in all; then it is
  dropped and logged. Messages a worker had not acked when it stopped or died (including
  ones the server was pushing to it as it left) go to the group again after ``ack_wait``
  seconds. Acks are not confirmed (a round trip per message would halve throughput), so after
  a server restart recently handled messages can come again. Delivery is therefore at least
  once: handlers must tolerate a repeat (the detection service skips readings it has seen).
* **Back-pressure.** At most ``max_ack_pending`` messages per consumer are unacked at a time;
  the rest wait in the stream.
* **Order.** One subscription's handler runs one message at a time, in stream order (= the
  order of awaited publishes); a redelivered message arrives out of order. A group spreads
  messages over its members with no order between members.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from atoll.bus.partitions import DEFAULT_PARTITIONS, PARTITIONED_FAMILIES, subject_partition
from atoll.bus.port import Handler, Message
from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

SUBJECTS: tuple[str, ...] = topics.ALL_BUS_SUBJECTS
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The wire root of partitioned subjects (``part.{partition}.{subject}``).
PART = "part"
_STREAM_IN_USE = 10058  # JetStream API error: stream name already in use (with another config)
#: How long ``subscribe`` keeps trying while JetStream does not answer (a leader election).
SUBSCRIBE_RETRY_S = 30.0


class NatsSubscription:
    def __init__(self, bus: NatsBus, sub: object, consumer: str | None) -> None:
        self._bus = bus
        self._sub = sub
        self._ephemeral = consumer  # deleted on unsubscribe; a group's durable consumer stays

    async def unsubscribe(self) -> None:
        if self._sub is None:
            return
        sub, self._sub = self._sub, None
        self._bus._subs.discard(self)
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await sub.unsubscribe()  # type: ignore[attr-defined]
            if self._ephemeral is not None:
                await self._bus._js.delete_consumer(self._bus.stream, self._ephemeral)


class NatsBus:
    """A ``MessageBus`` on a JetStream stream. Connects on ``connect()`` or first use."""

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "ATOLL",
        subjects: Sequence[str] = SUBJECTS,
        max_age: float = 86400.0,
        max_bytes: int = -1,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        retry_delay: float = 0.5,
        max_ack_pending: int = 256,
        timeout: float = 5.0,
        prefix: str = "",
        partitions: int = DEFAULT_PARTITIONS,
        replicas: int = 1,
    ) -> None:
        if prefix and not _PREFIX.fullmatch(prefix):
            raise InvalidInput(
                f"bad NATS subject prefix {prefix!r}", hint="one token of A-Z a-z 0-9 _ -"
            )
        self.servers = _split_servers(servers) if isinstance(servers, str) else list(servers)
        self.stream = stream
        # On the wire every subject is ``{prefix}.{subject}``: two deployments on one NATS
        # (each with its own prefix and stream) never see each other's messages.
        self.prefix = prefix
        self.subjects = tuple(subjects)
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        # The ack_wait clock starts when the server sends a message, not when its handler
        # starts: a small window keeps messages from timing out while queued behind a slow handler.
        self.max_ack_pending = max_ack_pending
        self.timeout = timeout
        if not 1 <= partitions <= 4096 or not 1 <= replicas <= 5:
            raise InvalidInput("need 1 <= partitions <= 4096 and 1 <= replicas <= 5")
        #: Telemetry subjects carry their device's partition on the wire (a last token): every
        #: process of a deployment must use the same count.
        self.partitions = partitions
        #: Copies JetStream keeps of the stream (3 on a 3-node cluster: survives one node).
        self.replicas = replicas
        self._nc: nats.NATS | None = None
        self._js: nats.js.JetStreamContext = None  # type: ignore[assignment]
        self._lock = asyncio.Lock()
        self._subs: set[NatsSubscription] = set()
        self._closed = False
        self._last_error: Exception | None = None

    @classmethod
    def from_url(cls, url: str) -> NatsBus:
        """``nats://[user:password@]host:port[?stream=ATOLL&max_age=SECONDS&max_bytes=N&...]``"""
        u = urlsplit(url)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        ints = {"max_bytes", "max_deliver", "max_ack_pending", "partitions", "replicas"}
        texts = {"stream", "prefix"}
        unknown = set(q) - ints - texts - {"max_age", "ack_wait", "timeout"}
        if unknown:
            raise InvalidInput(
                f"unknown NATS bus URL option(s) {sorted(unknown)}",
                hint="options: stream, prefix, max_age, max_bytes, ack_wait, max_deliver, "
                "max_ack_pending, timeout, partitions, replicas",
            )
        try:
            kw = {k: (v if k in texts else int(v) if k in ints else float(v)) for k, v in q.items()}
        except ValueError as e:
            raise InvalidInput(f"bad NATS bus URL option: {e}") from None
        return cls(urlunsplit((u.scheme, u.netloc, "", "", "")), **kw)  # type: ignore[arg-type]

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        async with self._lock:
            if self._closed:
                raise Unavailable("bus is closed")
            if self._nc is not None:
                return
            nc = nats.NATS()
            try:
                # Once connected, reconnect forever (a restarted server must not stop Atoll);
                # the first connect, though, gives up after ``timeout`` with a clear error.
                await asyncio.wait_for(
                    nc.connect(
                        servers=self.servers,
                        # nats-py annotates both as int but hands them to asyncio (float).
                        connect_timeout=self.timeout,  # type: ignore[arg-type]
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.5,  # type: ignore[arg-type]
                        error_cb=self._on_error,
                    ),
                    self.timeout,
                )
            except (TimeoutError, nats.errors.Error, OSError) as e:
                with contextlib.suppress(Exception):
                    await nc.close()
                why = self._last_error or e
                raise Unavailable(
                    f"cannot connect to NATS at {', '.join(self.servers)}: {why!r}",
                    hint="start nats-server -js, or fix ATOLL_BUS_URL",
                ) from None
            self._js = nc.jetstream(timeout=self.timeout)
            try:
                await self._ensure_stream()
            except BaseException:
                await nc.close()
                raise
            self._nc = nc

    async def _ensure_stream(self) -> None:
        wanted = self._stream_subjects()
        config = api.StreamConfig(
            name=self.stream,
            subjects=wanted,
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            num_replicas=self.replicas,
        )
        try:
            # Look first: on a JetStream cluster, nodes starting together must not all send
            # the (meta-leader) create request for a stream that is there already.
            try:
                info = await self._js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                info = None
            if info is not None and all(s in (info.config.subjects or []) for s in wanted):
                return
            try:
                await self._js.add_stream(config)
                return
            except nats.js.errors.BadRequestError as e:
                if e.err_code != _STREAM_IN_USE:
                    raise
            # It exists with another configuration (an operator's, or another version's):
            # keep its limits, only make sure our subjects land in it.
            info = await self._js.stream_info(self.stream)
            have = list(info.config.subjects or [])
            missing = [s for s in wanted if s not in have]
            if missing:
                info.config.subjects = have + missing
                await self._js.update_stream(info.config)
        except nats.js.errors.ServiceUnavailableError:
            raise Unavailable(
                "NATS has no JetStream", hint="start the server with nats-server -js"
            ) from None
        except nats.errors.NoRespondersError:
            raise Unavailable(
                "NATS has no JetStream", hint="start the server with nats-server -js"
            ) from None
        except nats.js.errors.APIError as e:
            overlap = "overlap" in (e.description or "")
            raise InvalidInput(
                f"cannot set up JetStream stream {self.stream}: {e.description}",
                hint="another deployment on this NATS uses these subjects: give each its own "
                "prefix= and stream= in ATOLL_BUS_URL"
                if overlap
                else None,
            ) from None
        except (TimeoutError, nats.errors.Error) as e:
            raise Unavailable(f"cannot set up JetStream stream {self.stream}: {e!r}") from None

    async def _connected(self) -> nats.js.JetStreamContext:
        if self._closed:
            raise Unavailable("bus is closed")
        if self._nc is None:
            await self.connect()
        return self._js

    async def _on_error(self, e: Exception) -> None:
        self._last_error = e
        log.warning("NATS (%s): %r", ", ".join(self.servers), e)

    # -- the port -----------------------------------------------------------------------------

    def max_payload(self) -> int | None:
        """The server's ``max_payload`` from its INFO (1 MB by default), once connected."""
        nc = self._nc
        return nc.max_payload if nc is not None and nc.max_payload > 0 else None

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_subject(subject)
        js = await self._connected()
        try:
            await js.publish(self._wire_out(subject), bytes(data), stream=self.stream)
        except nats.errors.MaxPayloadError as e:
            raise InvalidInput(
                f"bus message on {subject} is too large: {e}",
                hint="raise max_payload in the nats-server configuration",
            ) from None
        except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
            raise Unavailable(
                f"JetStream did not store {subject}: no stream answered",
                hint=f"is stream {self.stream} deleted, or JetStream off?",
            ) from None
        except nats.js.errors.APIError as e:
            raise Unavailable(f"JetStream refused {subject}: {e.description}") from None
        except (TimeoutError, nats.errors.Error) as e:
            raise Unavailable(
                f"NATS publish on {subject} failed: {e!r}",
                hint="the message was not acknowledged; retry",
            ) from None

    async def subscribe(
        self, subject: str, handler: Handler, *, group: str | None = None
    ) -> NatsSubscription:
        self._check_subject(subject)
        await self._connected()  # not connected at all: fail now, not after the retries
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            filter_subject=self._wire_in(subject),
            max_ack_pending=self.max_ack_pending,
        )
        cb = self._callback(handler)
        # A JetStream cluster that just lost a node answers nothing while it elects new leaders
        # (seconds): a node starting then would die on its first subscription. Try again for
        # a while, as the partition leases do (``nats_partitions._retry``).
        deadline = asyncio.get_running_loop().time() + SUBSCRIBE_RETRY_S
        pause = 0.1
        while True:
            try:
                return await self._subscribe_once(subject, cb, group, config)
            except Unavailable:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                log.warning("NATS subscribe to %s: JetStream not answering, trying again", subject)
                await asyncio.sleep(pause)
                pause = min(2.0, pause * 2)

    async def _subscribe_once(
        self,
        subject: str,
        cb: Callable[[Msg], Awaitable[None]],
        group: str | None,
        config: api.ConsumerConfig,
    ) -> NatsSubscription:
        js = await self._connected()
        try:
            if group is None:
                psub = await js.subscribe(
                    self._wire_in(subject),
                    cb=cb,
                    stream=self.stream,
                    config=config,
                    manual_ack=True,
                )
                sub = NatsSubscription(self, psub, psub._consumer)
            else:
                name = consumer_name(group, subject)
                psub = await js.subscribe(
                    self._wire_in(subject),
                    queue=name,
                    cb=cb,
                    stream=self.stream,
                    config=config,
                    manual_ack=True,
                )
                sub = NatsSubscription(self, psub, None)
        except (nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError) as e:
            raise Unavailable(
                f"JetStream cannot create a consumer for {subject}: {e.description}"
            ) from None
        except nats.js.errors.APIError as e:  # a bad request: the subject, the group name, ...
            raise InvalidInput(f"cannot subscribe to {subject}: {e.description}") from None
        except (TimeoutError, nats.errors.Error) as e:
            raise Unavailable(f"NATS subscribe to {subject} failed: {e!r}") from None
        self._subs.add(sub)
        return sub

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._subs):
            await sub.unsubscribe()
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await nc.close()

    # -- internals ----------------------------------------------------------------------------

    def _wire(self, subject: str) -> str:
        return f"{self.prefix}.{subject}" if self.prefix else subject

    def _wire_out(self, subject: str) -> str:
        """A published subject on the wire: a partitioned one goes under ``part.{p}.``."""
        p = subject_partition(subject, self.partitions)
        return self._wire(subject if p is None else f"{PART}.{p}.{subject}")

    def _wire_in(self, pattern: str) -> str:
        """A subscription's pattern on the wire (``telemetry.p1.*`` → ``part.*.telemetry.p1.*``)."""
        family, _, _ = pattern.partition(".")
        if family in PARTITIONED_FAMILIES:
            pattern = f"{PART}.*.{pattern}"
        return self._wire(pattern)

    def partition_filter(self, p: int, family: str | None = None) -> str:
        """The wire filter of partition ``p``: of one family, or of all (``None``)."""
        return self._wire(f"{PART}.{p}.{family}.*.*" if family else f"{PART}.{p}.*.*.*")

    def _stream_subjects(self) -> list[str]:
        out = [self._wire(s) for s in self.subjects if _family(s) not in PARTITIONED_FAMILIES]
        if any(_family(s) in PARTITIONED_FAMILIES for s in self.subjects):
            out.append(self._wire(f"{PART}.>"))
        return out

    def logical(self, wire: str) -> str:
        """What handlers see of a wire subject: no prefix, no partition."""
        s = wire[len(self.prefix) + 1 :] if self.prefix else wire
        if s.startswith(PART + "."):
            s = s.split(".", 2)[2]
        return s

    def _check_subject(self, subject: str) -> None:
        if not any(_covers(s, subject) for s in self.subjects):
            raise InvalidInput(
                f"subject {subject!r} is not in bus stream {self.stream}",
                hint=f"stream subjects: {', '.join(self.subjects)}",
            )

    def _callback(self, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        logical = self.logical

        async def on_msg(msg: Msg) -> None:
            try:
                await handler(Message(logical(msg.subject), msg.data))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - any handler failure means: deliver again
                await self._failed(msg)
                return
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()

        return on_msg

    async def _failed(self, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered or 1
        with contextlib.suppress(nats.errors.Error):
            if delivered >= self.max_deliver:
                log.exception(
                    "bus handler failed on %s %d times; dropping the message",
                    msg.subject,
                    delivered,
                )
                await msg.term()
            else:
                log.exception(
                    "bus handler failed on %s (try %d of %d); will retry",
                    msg.subject,
                    delivered,
                    self.max_deliver,
                )
                await msg.nak(delay=self.retry_delay)


def _family(subject: str) -> str:
    return subject.partition(".")[0]


def _split_servers(servers: str) -> list[str]:
    """``nats://a:1,b:2`` (or ``nats://a:1,nats://b:2``): every node of a cluster.

    >>> _split_servers("nats://a:1,b:2")
    ['nats://a:1', 'nats://b:2']
    """
    parts = [s.strip() for s in servers.split(",") if s.strip()]
    scheme = parts[0].partition("://")[0] if parts and "://" in parts[0] else "nats"
    return [s if "://" in s else f"{scheme}://{s}" for s in parts]


def consumer_name(group: str, subject: str) -> str:
    """A durable consumer per (group, subject), as the memory bus groups by both.

    >>> consumer_name("detect", "telemetry.>")
    'detect_telemetry_gt_e1d753'
    """
    readable = subject.replace("*", "star").replace(">", "gt")
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", f"{group}_{readable}")[:48]
    digest = hashlib.sha1(f"{group}\0{subject}".encode()).hexdigest()[:6]
    return f"{readable}_{digest}"


def _covers(stream_subject: str, subject: str) -> bool:
    """Whether every subject that ``subject`` (maybe a wildcard) matches lies in the stream.

    >>> _covers("telemetry.>", "telemetry.p1.*"), _covers("telemetry.>", ">")
    (True, False)
    """
    p, s = stream_subject.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or s[i] == ">" or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


__all__ = ["SUBJECTS", "NatsBus", "NatsSubscription", "consumer_name"]
