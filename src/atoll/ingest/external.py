"""External broker mode: Atoll's ingest workers attach to a broker (Mosquitto) instead of
running one.

* Workers share one subscription (``$share/atoll/...``), so the broker spreads device
  messages over them. Several Atoll processes, on one machine or many, share it too: each
  process is a *node* with its own name, and its workers' client ids are ``atoll-{node}-{i}``.
* The node name is stable across restarts (made once and kept in the data directory, or set
  with ``ATOLL_MQTT_NODE_ID``), and each worker has a persistent session (MQTT 5, clean start
  off, session expiry ``ATOLL_MQTT_SESSION_EXPIRY_S``). Mosquitto keeps queueing a stopped
  worker's share of the messages in its session, so an id made per run (host + pid) would
  strand that share in a session nobody comes back to. A process restarted with fewer workers
  drains the sessions of the ones it dropped and then deletes them (``retire``); with 0
  workers a node retires all of its sessions before it is decommissioned.
* Workers acknowledge a message only after ingest stored it (paho manual acks). If Atoll dies,
  everything unacknowledged is re-delivered when it comes back.
* Two live processes with one node name would take each other's sessions over. On one machine
  a lock file refuses the second at start-up; across machines the workers keep losing their
  connection, and an error names the likely cause.
* The broker enforces device auth and ACLs (see ``atoll.ingest.mosquitto_auth``), so the
  device id in the topic is trustworthy. Bad payloads are still counted per device here;
  refused connections and ACL violations are in the broker's log.
* Rate limits: a device over its own or its tenant's limit has its messages held back, not
  acknowledged to the broker, one at a time and in order, until it is out of debt (counted as
  ``throttled``). The broker has already acknowledged them to the device, and may be replaying
  a backlog queued while Atoll was down, so refusing would lose data the broker accepted. The
  cost: held messages take slots of the worker's receive window, so a flood above its limit
  slows the other devices of this node too; the broker has no per-client rate limit to stop
  it earlier (docs/DEVICES.md, "Rate limits").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import getpass
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from atoll.core import acl, topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.ingest.dispatch import dispatch
from atoll.ingest.mosquitto_auth import MosquittoAuth
from atoll.ingest.pipeline import IngestPipeline, NotPublished

log = logging.getLogger(__name__)

SHARE_GROUP = "atoll"
FILTERS = (
    f"{topics.PREFIX}/+/telemetry",
    f"{topics.PREFIX}/+/twin/reported",
    f"{topics.PREFIX}/+/commands/+/ack",
    # What gateways send for their children (atoll.ingest.gateway).
    f"{topics.PREFIX}/+/gateway/connect",
    f"{topics.PREFIX}/+/gateway/telemetry",
    f"{topics.PREFIX}/+/gateway/commands/+/+/ack",
)
UNKNOWN_DEVICE = "unknown_device"
IDENTITY_TTL_S = 10.0
#: An unknown device is remembered as unknown this long: a burst of its messages asks the
#: registry once, and a device registered through another node is known here within a second.
UNKNOWN_TTL_S = 1.0
NODE_FILE = "mqtt-node.json"
NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
FLAP_COUNT, FLAP_WINDOW_S = 3, 30.0  # connections lost this often suggest a duplicate node
AUTH_RELOAD_S = 5.0  # how long a refused worker waits for mosquitto to reload Atoll's files
RETIRE_QUIET_S = 2.0  # a retiring session is empty once nothing arrived for this long
# A message ingest could not store (the store is down) is tried again after these waits,
# doubling from the first to the last.
RETRY_MIN_S, RETRY_MAX_S = 0.25, 5.0


class _Worker:
    def __init__(self, owner: ExternalIngest, index: int, *, retiring: bool = False) -> None:
        self.owner = owner
        self.index = index
        self.retiring = retiring
        self.client_id = f"{owner.client_prefix}-{owner.node_id}-{index}"
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if owner.username:
            c.username_pw_set(owner.username, owner.password)
        if owner.tls:
            c.tls_set(ca_certs=str(owner.ca_file) if owner.ca_file else None)
        c.max_inflight_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.on_unsubscribe = self._on_unsubscribe
        self.client = c
        self.connected = threading.Event()
        self.unsubscribed = threading.Event()
        self.refused: str | None = None
        self.received = 0
        self.inflight = 0  # handed to ingest, not yet acknowledged or refused
        self.unacked = 0  # could not be stored: left in the session, re-delivered next time
        self.last_message = time.monotonic()
        self.lost: list[float] = []  # when the connection was lost, recently
        self.flap_logged = -FLAP_WINDOW_S

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:  # paho tries again about every second
            self.refused = str(rc)
            self.connected.set()
            return
        self.refused = None
        shared = [f"$share/{SHARE_GROUP}/{f}" for f in FILTERS]
        if self.retiring:  # take no new messages; the session's queue still arrives
            client.unsubscribe(shared)
        else:
            client.subscribe([(f, 1) for f in shared])
        self.connected.set()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, props) -> None:
        self.unsubscribed.set()

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        if not rc.is_failure:
            return
        now = time.monotonic()
        # Mosquitto just closes the socket of a client whose session another connection took
        # over, so a duplicate node name shows as connections lost right after they were made.
        self.lost = [t for t in self.lost if now - t < FLAP_WINDOW_S]
        self.lost.append(now)
        if len(self.lost) >= FLAP_COUNT and now - self.flap_logged > FLAP_WINDOW_S:
            self.flap_logged = now
            log.error(
                "ingest worker %s lost the broker %d times in %.0f s (%s). If another Atoll "
                "process uses the node name %r, the two take each other's sessions over: "
                "give each process its own data directory or ATOLL_MQTT_NODE_ID",
                self.client_id,
                len(self.lost),
                FLAP_WINDOW_S,
                rc,
                self.owner.node_id,
            )
        else:
            log.warning(
                "ingest worker %s lost the broker (%s); paho reconnects", self.client_id, rc
            )

    def _on_message(self, client, userdata, msg) -> None:
        self.received += 1
        self.last_message = time.monotonic()
        self.owner.hand_over((self, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    def start(self, host: str, port: int) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.owner.session_expiry_s
        props.ReceiveMaximum = 1000  # acks wait for the group commit; allow many in flight
        self.client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self, *, end_session: bool = False) -> None:
        props = None
        if end_session:  # the broker deletes the session (and its subscriptions) now
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()


class ExternalIngest:
    def __init__(
        self,
        pipeline: IngestPipeline,
        registry: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        workers: int = 2,
        node_id: str,
        home: Path | None = None,
        client_prefix: str = "atoll-ingest",
        session_expiry_s: int = 7 * 24 * 3600,
        tls: bool = False,
        ca_file: Path | None = None,
        auth: MosquittoAuth | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.registry = registry
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.node_id = node_id
        self.home = home
        self.client_prefix = client_prefix
        self.session_expiry_s = session_expiry_s
        self.tls, self.ca_file = tls, ca_file
        self.auth = auth
        self.loop: asyncio.AbstractEventLoop | None = None
        # 0 workers: the node takes no more device traffic (it retires the sessions it had).
        self._workers = [_Worker(self, i) for i in range(max(0, workers))]
        self._retiring: list[_Worker] = []
        self._claim: NodeClaim | None = None
        self._identities: dict[str, tuple[float, Any]] = {}
        self._lookups: dict[str, asyncio.Future[Any]] = {}  # registry lookups under way
        self._tasks: set[asyncio.Task] = set()
        self._inbox: collections.deque = collections.deque()
        self._drain_scheduled = False
        #: Times paho's threads woke the event loop (once per burst of messages, not per one).
        self.wakeups = 0
        self._stopping = asyncio.Event()

    @classmethod
    def from_settings(
        cls, settings, pipeline: IngestPipeline, directory, registry
    ) -> ExternalIngest:
        if not settings.mqtt_url:
            raise InvalidInput(
                "external MQTT needs a broker URL",
                hint="pass --mqtt-url mqtt://user:password@host:1883 (or ATOLL_MQTT_URL)",
            )
        extra = [
            f
            for f, v in (
                ("--mqtt-tls-port", settings.mqtt_tls_port),
                ("--mqtt-ws-port", settings.mqtt_ws_port),
                ("--mqtt-wss-port", settings.mqtt_wss_port),
            )
            if v is not None
        ]
        if extra:
            raise InvalidInput(
                f"{', '.join(extra)}: listeners of the embedded broker, not of an external one",
                hint="add TLS and WebSocket listeners to the "
                "broker's own configuration (mosquitto.conf), or use --mqtt embedded",
            )
        u = urlsplit(settings.mqtt_url)
        if u.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise InvalidInput(
                f"unsupported broker URL {settings.mqtt_url!r}",
                hint="use mqtt://host:1883, or mqtts://host:8883 for TLS",
            )
        tls = u.scheme in ("mqtts", "ssl")
        ca_file = settings.mqtt_ca_file
        if ca_file is not None and not ca_file.is_file():
            raise InvalidInput(
                f"CA file {ca_file} (ATOLL_MQTT_CA_FILE) does not exist",
                hint="point it at the PEM certificate that signed the broker's one",
            )
        user = unquote(u.username) if u.username else None
        password = unquote(u.password) if u.password else None
        auth = None
        if settings.mosquitto_password_file:
            acl = settings.mosquitto_acl_file or settings.mosquitto_password_file.with_suffix(
                ".acl"
            )
            auth = MosquittoAuth(
                settings.mosquitto_password_file,
                acl,
                settings.mosquitto_pid_file,
                admin_user=user or "atoll-ingest",
                admin_password=password,
            )
        return cls(
            pipeline,
            registry,
            host=u.hostname or "127.0.0.1",
            port=u.port or (8883 if tls else 1883),
            username=user,
            password=password,
            workers=settings.mqtt_workers,
            node_id=node_id(settings.home, settings.mqtt_node_id),
            home=settings.home,
            session_expiry_s=settings.mqtt_session_expiry_s,
            tls=tls,
            ca_file=ca_file,
            auth=auth,
        )

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def client_ids(self) -> list[str]:
        return [w.client_id for w in self._workers]

    @property
    def received(self) -> dict[str, int]:
        """Messages each worker got from the broker (how the shared subscription spreads load)."""
        return {w.client_id: w.received for w in self._workers}

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._claim = claim_node(self.url, self.node_id)
        try:
            await self._start()
        except BaseException:
            await self.stop()  # no paho threads left retrying, and the node lock is released
            raise

    async def _start(self) -> None:
        if self.auth is not None:
            self.auth.attach(self.registry)
            await asyncio.to_thread(self.auth.sync, self.registry)
        for w in self._workers:
            try:
                await asyncio.to_thread(w.start, self.host, self.port)
            except ssl.SSLError as e:
                raise Unavailable(
                    f"no TLS connection to the MQTT broker at {self.host}:{self.port}: {e}",
                    hint="set ATOLL_MQTT_CA_FILE to the CA certificate that "
                    "signed the broker's one",
                ) from None
            except OSError as e:
                raise Unavailable(
                    f"cannot reach the MQTT broker at {self.host}:{self.port}: {e}",
                    hint="start the broker or fix --mqtt-url",
                ) from None
        for w in self._workers:
            ok = await asyncio.to_thread(w.connected.wait, 10)
            if ok and w.refused and self.auth is not None:
                # Mosquitto may still be reloading the password file Atoll has just written.
                deadline = time.monotonic() + AUTH_RELOAD_S
                while w.refused and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
            if not ok or w.refused:
                raise Unavailable(
                    f"the MQTT broker at {self.host}:{self.port} refused Atoll's ingest "
                    f"worker: {w.refused or 'no answer'}",
                    hint="check the user and password in --mqtt-url",
                )
        surplus = self._record_workers()
        if surplus:
            self._retiring = [_Worker(self, i, retiring=True) for i in surplus]
            task = asyncio.create_task(self._retire_all(), name="atoll-mqtt-retire")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self._stopping.set()
        for t in list(self._tasks):
            if t.get_name() == "atoll-mqtt-retire":
                t.cancel()
        for w in [*self._workers, *self._retiring]:
            await asyncio.to_thread(w.stop)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def _record_workers(self) -> list[int]:
        """Note this node's worker count in ``home``; indices of sessions left by a larger one."""
        if self.home is None:
            return []
        with _node_record(self.home) as record:
            counts = record.setdefault("workers", {})
            before = int(counts.get(self.node_id, 0))
            counts[self.node_id] = max(before, len(self._workers))
        return list(range(len(self._workers), before))

    async def _retire_all(self) -> None:
        retired = await asyncio.gather(*(self._retire(w) for w in self._retiring))
        if all(retired) and self.home is not None:
            with _node_record(self.home) as record:
                record.setdefault("workers", {})[self.node_id] = len(self._workers)

    async def _retire(self, w: _Worker) -> bool:
        """Deliver what the broker queued for a dropped worker's session, then delete it."""
        try:
            await asyncio.to_thread(w.start, self.host, self.port)
            if not await asyncio.to_thread(w.connected.wait, 10) or w.refused:
                raise OSError(w.refused or "no answer")
        except OSError as e:
            log.warning(
                "could not retire ingest worker %s (%s); trying again on the next start",
                w.client_id,
                e,
            )
            return False
        await asyncio.to_thread(w.unsubscribed.wait, 10)
        while w.inflight or w.unacked or time.monotonic() - w.last_message < RETIRE_QUIET_S:
            if w.unacked:
                log.warning(
                    "not retiring ingest worker %s: %d messages could not be stored; "
                    "they stay in its session for the next start",
                    w.client_id,
                    w.unacked,
                )
                await asyncio.to_thread(w.stop)
                return False
            await asyncio.sleep(0.25)
        await asyncio.to_thread(w.stop, end_session=True)
        log.info(
            "retired ingest worker %s after delivering %d queued messages", w.client_id, w.received
        )
        return True

    def hand_over(self, item: tuple) -> None:
        """From paho's threads: queue, and wake the event loop once per burst, not per message."""
        self._inbox.append(item)
        if not self._drain_scheduled:
            loop = self.loop
            if loop is not None and not loop.is_closed():
                self._drain_scheduled = True
                self.wakeups += 1
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False  # before draining: a message queued from now on re-arms
        inbox = self._inbox
        pipeline = self.pipeline
        # Telemetry of devices whose identity is cached and that no rate limit holds back:
        # validated here and queued as one unit of the next group commit, with one future for
        # the burst instead of a task and a future per message.
        fast = not pipeline.behind()
        burst: list[tuple[_Worker, int, int]] = []
        parsed: list[Any] = []
        now = time.monotonic()
        while inbox:
            item = inbox.popleft()
            worker, mid, qos, topic, payload = item
            if (
                fast
                and (identity := self._cached_telemetry(topic, now)) is not None
                and pipeline.passes(identity)
            ):
                worker.inflight += 1
                try:
                    parsed.append(pipeline.validate(identity, payload, "mqtt"))
                    pipeline.charge(identity, len(parsed[-1].ts))
                    burst.append((worker, mid, qos))
                except InvalidInput:  # counted by the pipeline; handled, so acknowledged
                    pipeline.charge(identity, 1)
                    self._ack(worker, mid, qos)
                continue
            self.on_message(*item)
        if burst:
            try:
                future = pipeline.enqueue(parsed)
            except Unavailable:  # ingest stopping, or the bus down: the retrying path
                self._redo(burst, parsed)
                return
            future.add_done_callback(lambda f: self._burst_done(f, burst, parsed))

    def _cached_telemetry(self, topic: str, now: float) -> Any:
        """The cached identity of a telemetry message's device (``None``: take the slow path)."""
        parsed = topics.parse(topic)
        if parsed is None or parsed[1] != "telemetry":
            return None
        hit = self._identities.get(parsed[0])
        if hit is None or hit[0] <= now or hit[1] is None:
            return None
        return hit[1] if acl.may_publish(parsed[0], topic) else None

    def _ack(self, worker: _Worker, mid: int, qos: int) -> None:
        worker.inflight -= 1
        if qos > 0:
            worker.client.ack(mid, qos)

    def _burst_done(
        self, future: asyncio.Future, burst: list[tuple[_Worker, int, int]], parsed: list[Any]
    ) -> None:
        error = future.exception() if not future.cancelled() else Unavailable("cancelled")
        if error is None:
            for worker, mid, qos in burst:
                self._ack(worker, mid, qos)
        elif isinstance(error, NotPublished):  # stored: acknowledge once the bus has it
            task = asyncio.ensure_future(self._ack_when_published(error, burst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._redo(burst, parsed)

    async def _ack_when_published(
        self, error: NotPublished, burst: list[tuple[_Worker, int, int]]
    ) -> None:
        published = await self._published(error)
        for worker, mid, qos in burst:
            if published:
                self._ack(worker, mid, qos)
            else:  # stopped first: left in the session, the broker delivers it again
                worker.inflight -= 1
                worker.unacked += 1

    def _redo(self, burst: list[tuple[_Worker, int, int]], parsed: list[Any]) -> None:
        """Not stored: each message takes the retrying path, with its readings as validated
        (stamps included), so it is stored once when the store is back."""
        for (worker, mid, qos), p in zip(burst, parsed, strict=True):
            task = asyncio.ensure_future(self._retry_parsed(worker, mid, qos, p))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _retry_parsed(self, worker: _Worker, mid: int, qos: int, parsed: Any) -> None:
        delay = 0.0
        while True:
            try:
                await self.pipeline.write(parsed)
                break
            except NotPublished as e:
                if await self._published(e):
                    break
            except Unavailable as e:
                if not delay:
                    log.error("not acknowledging a message of %s yet: %s", parsed.device, e.message)
                delay = min(max(2 * delay, RETRY_MIN_S), RETRY_MAX_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if not self._stopping.is_set():
                    continue
            worker.inflight -= 1
            worker.unacked += 1
            return
        self._ack(worker, mid, qos)

    def on_message(self, worker: _Worker, mid: int, qos: int, topic: str, payload: bytes) -> None:
        worker.inflight += 1
        task = asyncio.ensure_future(self._handle(worker, mid, qos, topic, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self, worker: _Worker, mid: int, qos: int, topic: str, payload: bytes
    ) -> None:
        try:
            await self._ingest(worker, mid, qos, topic, payload)
        finally:
            worker.inflight -= 1

    async def _ingest(
        self, worker: _Worker, mid: int, qos: int, topic: str, payload: bytes
    ) -> None:
        parsed = topics.parse(topic)
        delay = 0.0
        while parsed is not None:
            try:
                identity = await self._identity(parsed[0])
                if identity is None:
                    self.pipeline.reject(
                        parsed[0],
                        "mqtt",
                        UNKNOWN_DEVICE,
                        f"no device {parsed[0]!r} in the registry",
                    )
                else:
                    await self.pipeline.hold(identity, "mqtt")
                    await dispatch(self.pipeline, identity, topic, payload, reply=self.publish)
                break
            except NotPublished as e:
                # Stored, but the bus has not taken the event yet: wait for this process's
                # outbox to publish it, then acknowledge. Handing the message in again would
                # stamp its readings without ``ts`` a second time.
                if await self._published(e):
                    break
                worker.unacked += 1  # stopped first: the broker delivers it again
                return
            except Unavailable as e:
                # Not stored (the store or the registry is down, say): not acknowledged, and
                # tried again with a growing wait until it is stored, so ingest resumes by
                # itself when the database is back. Meanwhile the unacknowledged messages fill
                # the worker's receive window and the broker holds the rest: back-pressure
                # instead of loss. On stop it stays in the worker's session, and the broker
                # delivers it again on the next connection.
                if not delay:
                    log.error("not acknowledging %s yet: %s", topic, e.message)
                delay = min(max(2 * delay, RETRY_MIN_S), RETRY_MAX_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    worker.unacked += 1
                    return
        if qos > 0:
            worker.client.ack(mid, qos)

    async def _published(self, e: NotPublished) -> bool:
        """Wait until ``e``'s event is on the bus (``True``), or ingest stops (``False``)."""
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        published: asyncio.Future[Any] = e.published
        try:
            await asyncio.wait([published, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        return published.done() and not published.cancelled() and not published.exception()

    async def _identity(self, device: str) -> Any:
        """The device's identity, cached for ``IDENTITY_TTL_S``. Single-flight: the messages
        of a device that arrive while its identity is being looked up wait for that one
        lookup instead of each asking the registry."""
        hit = self._identities.get(device)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        lookup = self._lookups.get(device)
        if lookup is None:
            lookup = self._lookups[device] = asyncio.ensure_future(self._look_up(device))
        return await asyncio.shield(lookup)  # one waiter cancelled: not the others' lookup

    async def _look_up(self, device: str) -> Any:
        try:
            now = time.monotonic()
            identity = await asyncio.to_thread(self.registry.device_identity, device)
            if self._lookups.get(device) is asyncio.current_task():  # not forgotten meanwhile
                ttl = IDENTITY_TTL_S if identity is not None else UNKNOWN_TTL_S
                self._identities[device] = (now + ttl, identity)
            return identity
        finally:
            if self._lookups.get(device) is asyncio.current_task():
                del self._lookups[device]

    async def disconnect(self, device_id: str, reason: str, *, forget: bool = False) -> int:
        """``DeviceSessions``. Mosquitto holds the device's connections: the registry change
        already rewrote its password file and sent it SIGHUP (``MosquittoAuth.attach``), on
        which Mosquitto (2.0) closes every connection whose credentials no longer hold. Here:
        forget the device's cached identity, then wait for two round trips to the broker, by
        when it has handled the signal. Returns 0: Mosquitto does not say whom it closed."""
        self._identities.pop(device_id, None)
        self._lookups.pop(device_id, None)  # a lookup under way may predate the change
        if self.auth is None or not self._workers:
            return 0
        client = self._workers[0].client
        topic = f"{topics.PREFIX.rsplit('/', 1)[0]}/sync/{self.node_id}"
        for _ in range(2):
            info = client.publish(topic, b"", qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        log.info("asked the broker to close device %s (%s)", device_id, reason)
        return 0

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Cloud → device, through the broker."""
        if not self._workers:
            raise Unavailable(
                "this Atoll process has no MQTT connection (ATOLL_MQTT_WORKERS=0)",
                hint="send it through another Atoll process",
            )
        info = self._workers[0].client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Unavailable(f"could not publish to {topic}: {mqtt.error_string(info.rc)}")


def node_id(home: Path, configured: str | None = None) -> str:
    """This process's name towards the broker: ``configured``, or made once and kept in ``home``."""
    if configured:
        if not NODE_ID.fullmatch(configured):
            raise InvalidInput(
                f"MQTT node id {configured!r} cannot be part of a client id",
                hint="use 1-64 of A-Z a-z 0-9 _ . - in ATOLL_MQTT_NODE_ID",
            )
        return configured
    with _node_record(home) as record:
        if not record.get("node_id"):
            host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:32] or "node"
            record["node_id"] = f"{host}-{secrets.token_hex(4)}"
        return record["node_id"]


@contextlib.contextmanager
def _node_record(home: Path):
    """Read-modify-write ``home/mqtt-node.json`` under a lock (first starts may race)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / NODE_FILE
    with open(home / (NODE_FILE + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = json.loads(path.read_text()) if path.exists() else {}
        before = json.dumps(record, sort_keys=True)
        yield record
        if json.dumps(record, sort_keys=True) != before:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, path)


class NodeClaim:
    """The lock file held while this process is a node on a broker; removed on release."""

    def __init__(self, path: Path, file: Any) -> None:
        self.path, self.file = path, file

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: a waiting opener sees the file is gone
        self.file.close()


def claim_node(broker_url: str, node: str) -> NodeClaim | None:
    """Lock ``node`` on ``broker_url`` for this process (one process per name on a machine)."""
    key = hashlib.sha256(f"{broker_url}|{node}".encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"atoll-mqtt-node-{key}.lock"
    for _ in range(10):
        try:
            f = open(path, "a")  # noqa: SIM115 - held until release()
        except OSError as e:  # e.g. created by another user: the broker-side check still applies
            log.warning(
                "cannot lock %s (%s); not checking for a second process named %r", path, e, node
            )
            return None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise Unavailable(
                f"another Atoll process on this machine is attached to {broker_url} "
                f"as node {node!r}; its ingest workers would take each other's "
                "sessions over",
                hint="give each Atoll process its own data "
                "directory (--home or ATOLL_HOME) or its own ATOLL_MQTT_NODE_ID",
            ) from None
        try:
            current = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return NodeClaim(path, f)
        f.close()  # its last holder removed it after we opened it: lock the new one
    log.warning("could not lock %s; not checking for a second process named %r", path, node)
    return None


def write_mosquitto_conf(
    path: Path, *, port: int, password_file: Path, acl_file: Path, pid_file: Path, extra: str = ""
) -> Path:
    """A minimal broker config wired to Atoll's auth files (used by tests and docs)."""
    path.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
        f"pid_file {pid_file}\n"
        "persistence false\n"
        "max_inflight_messages 1000\n"
        "max_queued_messages 100000\n"
        # As root, mosquitto would switch to the "mosquitto" user, who cannot read our 0600 files.
        f"user {getpass.getuser()}\n" + extra
    )
    return path


def new_admin_password() -> str:
    return secrets.token_urlsafe(24)
