"""The embedded MQTT broker: amqtt, with Atoll's device auth, ACLs and in-process ingest.

How "PUBACK means durable" is achieved: amqtt's protocol handler normally queues an incoming
QoS 1 PUBLISH and sends PUBACK right away. amqtt keeps CONNECT, sessions, SUBSCRIBE, QoS 2
and everything sent to devices; after CONNECT, a device connection is read by Atoll's own
loop (``embedded_connection``). It reads what the socket has, splits it into packets with
amqtt's decoders, queues all the chunk's telemetry as one unit of the pipeline's next group
commit, and sends the chunk's PUBACKs in one write once that commit returned. If the store
fails, no PUBACK is sent and the connection is closed, so the client re-sends on reconnect.
QoS 0 is ingested the same way (no ack). QoS 2 goes through amqtt's own flow and is ingested
on delivery (its PUBREC/PUBCOMP do not wait for the store; use QoS 1 for durable
at-least-once).

Device telemetry is consumed by Atoll, not re-broadcast to other MQTT subscribers. Devices
only ever receive what Atoll publishes to them (commands, desired twin). Who may publish,
subscribe to and receive what is ``atoll.core.acl``; this broker asks it on every path: a
publish (``dispatch``, QoS 2 included), a Will (at CONNECT, and ingested through ``dispatch``
when the device drops, never broadcast), a SUBSCRIBE, and every delivery to a device, live,
queued or retained (amqtt alone sends a connecting client the retained messages of *every*
session's subscriptions).

Authentication happens *before* amqtt touches session state: an unauthenticated CONNECT can
neither take over nor wipe another client's session. A device's client id must be its device
id, ``{device_id}:{suffix}``, or empty (clean session).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import websockets
import websockets.asyncio.server
from amqtt.broker import Action, Broker
from amqtt.contexts import ListenerType
from amqtt.errors import AMQTTError, BrokerError, MQTTError, NoDataError
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.session import Session
from amqtt.utils import gen_client_id

from atoll.core import acl, topics
from atoll.core.errors import AtollError, Forbidden, InvalidInput, Unavailable
from atoll.ingest.admission import Admission, AdmissionLimits
from atoll.ingest.connect import ConnectRefused, read_connect
from atoll.ingest.devices import DeviceDirectory, Identity
from atoll.ingest.dispatch import dispatch
from atoll.ingest.embedded_connection import DeviceHandler, DeviceStreamReader
from atoll.ingest.mqtt_frames import PacketError
from atoll.ingest.pipeline import IngestPipeline
from atoll.ingest.transports import TcpWriter, adapt_broker

log = logging.getLogger(__name__)

AUTH_FAILED = "auth_failed"
DEVICE_DISABLED = "device_disabled"
ACL_SUBSCRIBE = "acl_subscribe"
ACL_WILL = "acl_will"
BAD_CLIENT_ID = "bad_client_id"
ANONYMOUS = "(anonymous)"  # counts what is refused before a device is known


def _client_id_ok(device: str, session: Session, random_id: bool) -> bool:
    cid = session.client_id or ""
    return (
        cid == device or cid.startswith(device + ":") or (random_id and bool(session.clean_session))
    )


class _AtollAmqttBroker(Broker):
    def __init__(self, config: dict[str, Any], atoll: EmbeddedBroker) -> None:
        super().__init__(config)
        self._atoll = atoll

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        # Same contract as amqtt's, but the first packet must be a small CONNECT (read whole,
        # see ``atoll.ingest.connect``) and credentials are checked before any session is
        # looked up.
        admission = self._atoll.admission
        try:
            connect = await read_connect(reader, admission.limits.max_connect_bytes)
            handler, session = await DeviceHandler.init_from_connect(
                connect, writer, self.plugins_manager
            )
        except (ConnectRefused, PacketError) as e:  # before authentication: counted as anonymous
            admission.refuse(e.reason, f"{e.message} (from {remote_address})")
            if isinstance(e, ConnectRefused) and e.answer:
                with contextlib.suppress(ConnectionError):
                    writer.write(e.answer)
                    await writer.drain()
            await _close(writer)
            raise AMQTTError(e.message) from None
        except (MQTTError, NoDataError, EOFError) as exc:
            await _close(writer)
            raise AMQTTError(exc) from exc
        fd = writer.fileno()
        admission.connect_read(fd)
        random_id = (session.client_id or "").startswith("amqtt/")
        identity = await self._atoll.authenticate(session, random_id)  # and the Will's topic
        if identity is None:
            handler.attach(session, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await _close(writer)
            raise AMQTTError(f"refused CONNECT from {remote_address} as {session.username!r}")
        admission.authenticated(fd)
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            old, _ = self._sessions[session.client_id]
            for attr in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(old, attr, getattr(session, attr))
            session, old.parent = old, 1
        else:
            session.parent = 0
        session.atoll_identity = identity
        handler.atoll = self._atoll
        return handler, session

    async def _handle_client_session(
        self, reader, writer, client_session, handler, server, listener_name
    ):
        # amqtt enforces keep-alive with an ``asyncio.wait_for`` around every packet read and a
        # timer reset on every packet sent, which about doubled the CPU per message. Atoll
        # keeps keep-alive from amqtt and enforces it itself: one watchdog pass per second
        # over all sessions, using the time of each connection's last read.
        client_session.atoll_keep_alive = client_session.keep_alive
        client_session.atoll_reader = reader
        client_session.keep_alive = 0
        await super()._handle_client_session(
            reader, writer, client_session, handler, server, listener_name
        )

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        # Device connections get Atoll's chunked reader (see ``embedded_connection``).
        await self._client_connected(listener_name, DeviceStreamReader(reader), TcpWriter(writer))

    async def _create_server_instance(
        self, listener_name, listener_type, address, port, ssl_context
    ):
        # amqtt's, on a listening socket of ``atoll.ingest.admission`` (caps at accept).
        try:
            sock = self._atoll.admission.listen(address, port)
        except OSError as e:
            raise BrokerError(f"cannot listen on {address}:{port}: {e.strerror or e}") from e
        if listener_type == ListenerType.TCP:
            return await asyncio.start_server(
                functools.partial(self.stream_connected, listener_name=listener_name),
                sock=sock,
                ssl=ssl_context,
            )
        if listener_type == ListenerType.WS:
            return await websockets.asyncio.server.serve(
                functools.partial(self.ws_connected, listener_name=listener_name),
                sock=sock,
                ssl=ssl_context,
                subprotocols=[websockets.Subprotocol("mqtt")],
            )
        sock.close()
        raise BrokerError(f"unsupported listener type: {listener_type}")

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        qos = await super().add_subscription(subscription, session)
        identity = getattr(session, "atoll_identity", None)
        hook = self._atoll.on_subscribed
        if qos != 0x80 and identity is not None and hook is not None:
            # After the SUBACK: hand over what the device missed (desired twin, pending commands).
            task = asyncio.get_running_loop().create_task(hook(identity.device, subscription[0]))
            self._atoll.track(task)
        return qos

    async def _authenticate(self, session: Session, _listener) -> bool:
        # Runs with no suspension point before the session is registered: a device cut
        # (revoked, disabled, deleted) during its CONNECT is refused here, or found by the cut.
        identity = getattr(session, "atoll_identity", None)
        return identity is not None and not self._atoll.cut_since(
            identity.device, session.atoll_cuts
        )

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        identity = getattr(session, "atoll_identity", None)
        if identity is None:
            return False
        if action == Action.SUBSCRIBE:
            if acl.may_subscribe(identity.device, topic):
                return True
            self._atoll.pipeline.reject(
                identity.device, "mqtt", ACL_SUBSCRIBE, f"device may not subscribe to {topic!r}"
            )
            return False
        if action == Action.PUBLISH:  # QoS 2 path only; QoS 0/1 are checked in dispatch
            return acl.may_publish(identity.device, topic, identity.kind)
        # RECEIVE, for every message amqtt broadcasts: the topic, not only the filter, must be
        # the device's own (a filter is checked once; what it matches is checked here).
        return acl.may_receive(identity.device, topic)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt calls this on SUBSCRIBE, and on CONNECT for every filter any session holds.
        # Only a subscription this session holds (granted, so ACL-checked) gets retained
        # messages, and only of topics the device may receive.
        identity = getattr(session, "atoll_identity", None)
        topic_filter = subscription[0]
        granted = next(
            (qos for s, qos in self._subscriptions.get(topic_filter, ()) if s is session), None
        )
        handler = self._get_handler(session)
        if identity is None or granted is None or handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and acl.may_receive(identity.device, topic):
                # Not awaited: amqtt's caller iterates over ``_subscriptions`` meanwhile.
                qos = min(granted, retained.qos if retained.qos is not None else granted)
                self._atoll.track(
                    asyncio.ensure_future(
                        handler.mqtt_publish(retained.topic, retained.data, qos, retain=True)
                    )
                )

    async def _handle_disconnect(self, client_session: Session, handler, disconnect_waiter) -> None:
        # The Will (its topic was checked at CONNECT) is ingested like a publish by the device,
        # never broadcast or retained by amqtt; MQTT drops it after a DISCONNECT.
        will = (
            (client_session.will_topic, client_session.will_message)
            if client_session.will_flag
            else None
        )
        client_session.will_flag = False
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        identity = getattr(client_session, "atoll_identity", None)
        clean = getattr(handler, "disconnected", False) or isinstance(
            disconnect_waiter.result(), DisconnectPacket
        )
        if will is not None and identity is not None and not clean:
            self._atoll.track(asyncio.ensure_future(self._atoll.ingest_will(identity, *will)))

    async def _handle_message_delivery(self, client_session, handler, wait_deliver) -> bool:
        # Only QoS 2 publishes get here (see DeviceHandler.handle_publish).
        app_message = wait_deliver.result()
        identity = getattr(client_session, "atoll_identity", None)
        if app_message is None or identity is None or not app_message.topic:
            return True
        try:
            await dispatch(
                self._atoll.pipeline,
                identity,
                app_message.topic,
                bytes(app_message.data),
                reply=self._atoll.publish,
            )
        except AtollError as e:
            log.error("QoS 2 message from %s not stored: %s", identity.device, e.message)
        return True


async def _close(writer) -> None:
    try:
        await writer.close()
    except Exception as e:  # noqa: BLE001 - the peer may already be gone
        log.debug("closing a refused connection: %r", e)


class EmbeddedBroker:
    """Start with ``await EmbeddedBroker(pipeline, directory, port=1883).start()``;
    ``port=0`` picks a free one."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        directory: DeviceDirectory,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        recheck_interval: float = 10.0,
        listeners: dict[str, dict[str, Any]] | None = None,
        admission: AdmissionLimits | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.directory = directory
        self.host = host
        self.port = port
        #: Extra amqtt listeners by name (TLS, WebSockets: ``atoll.ingest.listeners``), and the
        #: port each listener is bound to once started.
        self.listeners = listeners or {}
        self.ports: dict[str, int] = {}
        self.recheck_interval = recheck_interval
        self._broker: _AtollAmqttBroker | None = None
        self._recheck: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None
        #: Largest MQTT packet a device may send; ``None``: 4 × the payload limit, at least 1 MiB.
        self.max_packet_bytes: int | None = None
        #: ``async (device, topic_filter)`` run after a device subscribed (set by the runtime).
        self.on_subscribed: Callable[[str, str], Coroutine[Any, Any, None]] | None = None
        #: Connection caps and the CONNECT deadline, on every listener.
        self.admission = Admission(admission or AdmissionLimits(), self._refused)
        self._admission_task: asyncio.Task | None = None
        #: How many times each device was cut (revoked, disabled, deleted): a CONNECT that
        #: authenticated before a cut is refused after it.
        self._cuts: dict[str, int] = {}

    def track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        if self.port:
            check_port_free(self.host, self.port, "MQTT", "--mqtt-port")
        config = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "max_connections": -1,
                },
                **self.listeners,
            },
            "plugins": {},
            "timeout_disconnect_delay": 2,
        }
        self._broker = _AtollAmqttBroker(config, self)
        adapt_broker(self._broker, self.packet_limit)
        try:
            await self._broker.start()
        except (AMQTTError, BrokerError) as e:
            raise Unavailable(
                f"could not start the embedded MQTT broker on {self.host}:{self.port}: {e}",
                hint="choose other ports with --mqtt-port N (--mqtt-tls-port, "
                "--mqtt-ws-port, --mqtt-wss-port)",
            ) from e
        self.ports = {
            name: server.instance.sockets[0].getsockname()[1]
            for name, server in self._broker._servers.items()
        }
        self.port = self.ports["default"]
        self._recheck = asyncio.create_task(self._recheck_loop(), name="atoll-mqtt-recheck")
        self._watchdog = asyncio.create_task(self._keep_alive_loop(), name="atoll-mqtt-keepalive")
        self._admission_task = asyncio.create_task(
            self.admission.run(), name="atoll-mqtt-admission"
        )

    async def stop(self) -> None:
        for t in [*self._tasks, self._watchdog, self._admission_task]:
            if t is not None:
                t.cancel()
        if self._recheck is not None:
            self._recheck.cancel()
            await asyncio.gather(self._recheck, return_exceptions=True)
        if self._broker is not None:
            try:
                await self._broker.shutdown()
            except Exception:
                log.exception("embedded broker shutdown")
            self._broker = None

    def packet_limit(self) -> int:
        """A larger packet closes the connection instead of being buffered. Payloads between
        the pipeline's limit and this one are read and refused as ``too_large``, and acknowledged,
        so a device does not re-send them forever."""
        if self.max_packet_bytes is not None:
            return self.max_packet_bytes
        return max(4 * self.pipeline.limits.max_bytes, 1 << 20)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _refused(self, reason: str, message: str) -> None:
        # Connection-level refusals have no device yet: counted under one name, so a flood
        # adds to a counter, not to the rejection table.
        self.pipeline.reject(ANONYMOUS, "mqtt", reason, message)

    def cut_since(self, device: str, cuts: int) -> bool:
        return self._cuts.get(device, 0) != cuts

    async def authenticate(self, session: Session, random_id: bool) -> Identity | None:
        user = session.username or ""
        password = session.password or ""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        session.atoll_cuts = self._cuts.get(user, 0)
        try:
            identity = await asyncio.to_thread(self.directory.authenticate_device, user, password)
        except AtollError as e:
            reason = DEVICE_DISABLED if isinstance(e, Forbidden) else AUTH_FAILED
            self.pipeline.reject(user or ANONYMOUS, "mqtt", reason, e.message)
            return None
        if not _client_id_ok(identity.device, session, random_id):
            self.pipeline.reject(
                identity.device,
                "mqtt",
                BAD_CLIENT_ID,
                f"client id {session.client_id!r} must be the device id "
                f"{identity.device!r} or start with '{identity.device}:'",
            )
            return None
        if session.will_flag and not acl.may_publish(
            identity.device, session.will_topic or "", identity.kind
        ):
            self.pipeline.reject(
                identity.device,
                "mqtt",
                ACL_WILL,
                f"device may not set a Will on {session.will_topic!r}; only on "
                f"topics it may publish to ({topics.telemetry(identity.device)}, ...)",
            )
            return None
        return identity

    async def ingest_will(self, identity: Identity, topic: str, payload: bytes | bytearray) -> None:
        """A dropped device's Will: handled as if the device had published it (nobody is left
        to acknowledge it to, so a store failure is only logged). ``dispatch`` applies the
        same ACL as at CONNECT."""
        try:
            await dispatch(self.pipeline, identity, topic, bytes(payload))
        except AtollError as e:
            log.warning("Will of %s not stored: %s", identity.device, e.message)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Cloud → device (commands, desired twin).

        A non-retained message nobody is subscribed to raises ``Unavailable``: a command to an
        offline device then stays pending and is handed over when the device subscribes.
        """
        broker = self._broker
        if broker is None:
            raise Unavailable("the embedded MQTT broker is not running")
        parsed = topics.parse(topic)
        if parsed is None or not acl.may_receive(parsed[0], topic):
            raise InvalidInput(f"{topic!r} is not a topic Atoll sends to devices")
        if retain:
            await broker.retain_message(None, topic, payload, qos)
        elif not any(
            broker._matches(topic, f)
            and (s.transitions.state == "connected" or not s.clean_session)
            for f, subs in broker._subscriptions.items()
            for s, _ in subs
        ):
            raise Unavailable(
                f"no device session is subscribed to {topic}",
                hint="it is handed over when the device subscribes",
            )
        await broker.internal_message_broadcast(topic, payload, qos)

    def connected_devices(self) -> set[str]:
        if self._broker is None:
            return set()
        return {
            s.atoll_identity.device
            for s, _ in self._broker._sessions.values()
            if getattr(s, "atoll_identity", None) is not None and s.transitions.state == "connected"
        }

    async def disconnect(self, device_id: str, reason: str, *, forget: bool = False) -> int:
        """``DeviceSessions``: close every connection of a device at once (it was revoked,
        disabled, rotated or deleted); returns how many were closed.

        When this returns, the sockets are closed and nothing more of the device is read or
        acknowledged; a CONNECT of the device still being checked is refused. Messages already
        queued for a group commit are stored but never acknowledged (the device cannot tell
        them from lost ones, and cannot re-send them with the old credentials). The device's
        Will is not published: it would be a message of the device sent after the change.
        ``forget`` (a delete): its persistent session (subscriptions, queued messages) is
        dropped too.
        """
        self._cuts[device_id] = self._cuts.get(device_id, 0) + 1
        broker = self._broker
        if broker is None:
            return 0
        cut = []
        for session, handler in list(broker._sessions.values()):
            ident = getattr(session, "atoll_identity", None)
            if ident is None or ident.device != device_id:
                continue
            if session.transitions.state == "connected":
                session.will_flag = False
                handler.cut()
                cut.append((session, handler))
        for _, handler in cut:
            await handler.handle_connection_closed()  # amqtt ends the session
        deadline = time.monotonic() + 2.0
        while (
            any(s.transitions.state == "connected" for s, _ in cut) and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.005)
        if forget:
            for client_id, (session, _) in list(broker._sessions.items()):
                ident = getattr(session, "atoll_identity", None)
                if ident is not None and ident.device == device_id:
                    await broker._delete_session(client_id)
        if cut:
            log.info("closed %d connection(s) of device %s: %s", len(cut), device_id, reason)
        return len(cut)

    async def _keep_alive_loop(self) -> None:
        # MQTT 3.1.1 §3.1.2.10: no packet for 1.5 × keep-alive means the client is gone.
        while True:
            await asyncio.sleep(1.0)
            if self._broker is None:
                return
            now = time.monotonic()
            silent = []
            for session, handler in list(self._broker._sessions.values()):
                ka = getattr(session, "atoll_keep_alive", 0)
                reader = getattr(session, "atoll_reader", None)
                if (  # the state last: it is the dearest to ask (10,000 sessions a second)
                    ka
                    and reader is not None
                    and now - reader.last > 1.5 * ka
                    and session.transitions.state == "connected"
                ):
                    silent.append((session, handler, reader, reader.last))
            if not silent:
                continue
            # After a pause of this loop (a busy process), this pass may run before the readers
            # of packets that arrived meanwhile: let them read first.
            await asyncio.sleep(0.05)
            for session, handler, reader, last in silent:
                if reader.last != last or session.transitions.state != "connected":
                    continue
                log.info(
                    "closing %s: silent for %.0f s (keep-alive %d s)",
                    session.client_id,
                    now - last,
                    session.atoll_keep_alive,
                )
                await handler.handle_connection_closed()

    async def _recheck_loop(self) -> None:
        # A safety net: changes made through the API cut connections at once (``disconnect``),
        # this finds those made otherwise (another process sharing the registry database).
        while True:
            await asyncio.sleep(self.recheck_interval)
            if self._broker is None:
                return
            checks = []
            for session, _ in list(self._broker._sessions.values()):
                ident = getattr(session, "atoll_identity", None)
                if ident is None or session.transitions.state != "connected":
                    continue
                password = session.password or ""
                if isinstance(password, bytes):
                    password = password.decode("utf-8", "replace")
                checks.append((ident.device, session.username or "", password))
            # All of them in one hop to a thread (10,000 devices: not 10,000 hops per pass).
            failed = await asyncio.to_thread(self._recheck_all, checks)
            for device, message in failed.items():
                log.warning("disconnecting device %s: %s", device, message)
                await self.disconnect(device, message)

    def _recheck_all(self, checks: list[tuple[str, str, str]]) -> dict[str, str]:
        """(thread) Devices whose credentials no longer pass, and why. A directory with
        ``recheck_devices`` (the registry's) checks them all in bulk."""
        failed: dict[str, str] = {}
        bulk = getattr(self.directory, "recheck_devices", None)
        if bulk is not None:
            try:
                refused = bulk([(user, password) for _, user, password in checks])
            except AtollError as e:  # the registry is unreachable: nobody is cut for that
                log.warning("re-checking device credentials failed: %s", e.message)
                return failed
            for device, user, _ in checks:
                if user in refused:
                    failed.setdefault(device, refused[user].message)
            return failed
        for device, user, password in checks:
            try:
                self.directory.authenticate_device(user, password)
            except Unavailable as e:
                log.warning("re-checking device credentials failed: %s", e.message)
                break
            except AtollError as e:
                failed.setdefault(device, e.message)
        return failed


def check_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Fail early, and say how to pick another port, if ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise Unavailable(
                    f"{what} port {port} on {host} is already in use",
                    hint=f"stop the other program or choose another port with {flag} N",
                ) from None
            raise Unavailable(
                f"cannot listen on {host}:{port} for {what}: {e.strerror}",
                hint=f"choose another address or port with {flag}",
            ) from None
