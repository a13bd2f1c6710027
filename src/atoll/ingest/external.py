"""External broker mode: Atoll's ingest workers attach to a broker (Mosquitto) instead of
running one.

* Workers share one subscription (``$share/atoll/...``), so the broker spreads device
  messages over them; run more Atoll processes with the same settings to add workers.
* Each worker has a fixed client id and a persistent session (MQTT 5, clean start off,
  long session expiry) and acknowledges a message only after ingest stored it (paho manual
  acks). If Atoll dies, everything unacknowledged is re-delivered when it comes back.
* The broker enforces device auth and ACLs (see ``atoll.ingest.mosquitto_auth``), so the
  device id in the topic is trustworthy. Bad payloads are still counted per device here;
  refused connections and ACL violations are in the broker's log.
"""

from __future__ import annotations

import asyncio
import collections
import getpass
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.ingest.dispatch import dispatch
from atoll.ingest.mosquitto_auth import MosquittoAuth
from atoll.ingest.pipeline import IngestPipeline

log = logging.getLogger(__name__)

SHARE_GROUP = "atoll"
FILTERS = (
    f"{topics.PREFIX}/+/telemetry",
    f"{topics.PREFIX}/+/twin/reported",
    f"{topics.PREFIX}/+/commands/+/ack",
)
UNKNOWN_DEVICE = "unknown_device"
IDENTITY_TTL_S = 10.0


class _Worker:
    def __init__(self, owner: ExternalIngest, index: int) -> None:
        self.owner = owner
        self.client_id = f"{owner.client_prefix}-{index}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        if owner.username:
            c.username_pw_set(owner.username, owner.password)
        c.max_inflight_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        self.connected = threading.Event()
        self.refused: str | None = None

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            self.refused = str(rc)
            self.connected.set()
            return
        client.subscribe([(f"$share/{SHARE_GROUP}/{f}", 1) for f in FILTERS])
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            log.warning("ingest worker %s lost the broker (%s); paho reconnects", self.client_id, rc)

    def _on_message(self, client, userdata, msg) -> None:
        loop = self.owner.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.owner.on_message, self, msg.mid, msg.qos, msg.topic,
                                      bytes(msg.payload))

    def start(self, host: str, port: int) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        props.ReceiveMaximum = 1000  # acks wait for the group commit; allow many in flight
        self.client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class ExternalIngest:
    def __init__(self, pipeline: IngestPipeline, registry: Any, *, host: str = "127.0.0.1",
                 port: int = 1883, username: str | None = None, password: str | None = None,
                 workers: int = 2, client_prefix: str = "atoll-ingest",
                 auth: MosquittoAuth | None = None) -> None:
        self.pipeline = pipeline
        self.registry = registry
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.client_prefix = client_prefix
        self.auth = auth
        self.loop: asyncio.AbstractEventLoop | None = None
        self._workers = [_Worker(self, i) for i in range(max(1, workers))]
        self._identities: dict[str, tuple[float, Any]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._inbox: collections.deque = collections.deque()
        self._drain_scheduled = False

    @classmethod
    def from_settings(cls, settings, pipeline: IngestPipeline, directory, registry) -> ExternalIngest:
        if not settings.mqtt_url:
            raise InvalidInput("external MQTT needs a broker URL",
                               hint="pass --mqtt-url mqtt://user:password@host:1883 (or ATOLL_MQTT_URL)")
        u = urlsplit(settings.mqtt_url)
        if u.scheme not in ("mqtt", "tcp"):
            raise InvalidInput(f"unsupported broker URL {settings.mqtt_url!r}", hint="use mqtt://host:port")
        user = unquote(u.username) if u.username else None
        password = unquote(u.password) if u.password else None
        auth = None
        if settings.mosquitto_password_file:
            acl = settings.mosquitto_acl_file or settings.mosquitto_password_file.with_suffix(".acl")
            auth = MosquittoAuth(settings.mosquitto_password_file, acl, settings.mosquitto_pid_file,
                                 admin_user=user or "atoll-ingest", admin_password=password)
        return cls(pipeline, registry, host=u.hostname or "127.0.0.1", port=u.port or 1883,
                   username=user, password=password, workers=settings.mqtt_workers, auth=auth)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.auth is not None:
            self.auth.attach(self.registry)
            await asyncio.to_thread(self.auth.sync, self.registry)
        for w in self._workers:
            try:
                await asyncio.to_thread(w.start, self.host, self.port)
            except OSError as e:
                raise Unavailable(f"cannot reach the MQTT broker at {self.host}:{self.port}: {e}",
                                  hint="start the broker or fix --mqtt-url") from None
        for w in self._workers:
            if not await asyncio.to_thread(w.connected.wait, 10) or w.refused:
                raise Unavailable(f"the MQTT broker at {self.host}:{self.port} refused Atoll's ingest "
                                  f"worker: {w.refused or 'no answer'}",
                                  hint="check the user and password in --mqtt-url")

    async def stop(self) -> None:
        for w in self._workers:
            await asyncio.to_thread(w.stop)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def hand_over(self, item: tuple) -> None:
        """From paho's threads: queue, and wake the event loop once per burst, not per message."""
        self._inbox.append(item)
        if not self._drain_scheduled:
            loop = self.loop
            if loop is not None and not loop.is_closed():
                self._drain_scheduled = True
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False  # before draining: a message queued from now on re-arms
        inbox = self._inbox
        while inbox:
            self.on_message(*inbox.popleft())

    def on_message(self, worker: _Worker, mid: int, qos: int, topic: str, payload: bytes) -> None:
        task = asyncio.ensure_future(self._handle(worker, mid, qos, topic, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, worker: _Worker, mid: int, qos: int, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is not None:
            identity = await self._identity(parsed[0])
            if identity is None:
                self.pipeline.reject(parsed[0], "mqtt", UNKNOWN_DEVICE,
                                     f"no device {parsed[0]!r} in the registry")
            else:
                try:
                    await dispatch(self.pipeline, identity, topic, payload)
                except Unavailable as e:
                    # Not acknowledged: the broker keeps it in this worker's session and delivers
                    # it again on the next connection (e.g. after a restart). Once the receive
                    # maximum of unacknowledged messages is reached the broker stops sending
                    # to this worker: back-pressure instead of loss.
                    log.error("not acknowledging %s: %s", topic, e.message)
                    return
        if qos > 0:
            worker.client.ack(mid, qos)

    async def _identity(self, device: str) -> Any:
        hit = self._identities.get(device)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = await asyncio.to_thread(self.registry.device_identity, device)
        self._identities[device] = (now + IDENTITY_TTL_S, identity)
        return identity

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Cloud → device, through the broker."""
        info = self._workers[0].client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Unavailable(f"could not publish to {topic}: {mqtt.error_string(info.rc)}")


def write_mosquitto_conf(path: Path, *, port: int, password_file: Path, acl_file: Path,
                         pid_file: Path, extra: str = "") -> Path:
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
        f"user {getpass.getuser()}\n"
        + extra
    )
    return path


def new_admin_password() -> str:
    return secrets.token_urlsafe(24)
