"""One device connection of the embedded broker, after CONNECT: read, group, commit, acknowledge.

amqtt's per-connection reader awaits the socket once per packet field and starts a task per
packet, which cost more than everything else in single-reading ingest. Atoll replaces that
loop for device connections:

1. read whatever the socket has (up to 64 KiB) and split it into packets with amqtt's own
   decoders, QoS 0/1 PUBLISHes by hand into the same objects (``mqtt_frames``);
2. validate every QoS 0/1 PUBLISH on the device's telemetry topic and queue them as *one*
   unit of the pipeline's next group commit (one future for the whole chunk);
3. when that commit returned, send the chunk's PUBACKs in one write.

A device over its rate limit (``atoll.ingest.quota``) is read in smaller pieces, and what was
read waits before it is handled: the socket is not read meanwhile, so TCP pushes back on the
client and nothing is lost. Likewise a connection with more than ``MAX_OWED`` units awaiting
their PUBACK (messages handled one by one, e.g. a gateway's held back by its children's rate
limits) is not read until half of them are done.

Everything else goes where amqtt's own loop sends it: other topics (twin, command acks,
refused topics) through ``dispatch``; QoS 2 PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ,
PUBACK/PUBREC/PUBREL/PUBCOMP and DISCONNECT to amqtt's handler methods, each in its own task
as amqtt does. PUBACKs leave in the order the PUBLISHes arrived ([MQTT-4.6.0-2]), whichever
kind of message they acknowledge.

TCP and TLS connections are read this way. WebSocket connections keep amqtt's loop, and their
QoS 0/1 PUBLISHes reach ``DeviceHandler.handle_publish`` one by one (same checks, PUBACK
after the commit).

If the store fails, the chunk gets no PUBACK and the connection is closed, so the client
re-sends after reconnecting. A packet that is not MQTT, or larger than the broker accepts,
is counted as a rejection of the device and closes its connection; other devices are not
affected.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from typing import Any, Protocol

from amqtt.adapters import StreamReaderAdapter
from amqtt.events import MQTTEvents
from amqtt.mqtt.packet import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTPacket,
)
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket

from atoll.core import acl, topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.ingest.devices import Identity
from atoll.ingest.dispatch import dispatch
from atoll.ingest.mqtt_frames import (
    MALFORMED_PACKET,
    PacketSplitter,
)
from atoll.ingest.pipeline import IngestPipeline
from atoll.ingest.quota import ReadPacer
from atoll.ingest.transports import PausableReader, TcpWriter, WebSocketWriter

log = logging.getLogger(__name__)

CHUNK = 65536
#: Units (a chunk's telemetry, or one other message) awaiting their PUBACK on one connection
#: beyond which its socket is not read until half of them are done.
MAX_OWED = 256

# amqtt's reader loop sends each packet type to this handler method.
_AMQTT_METHODS = {
    CONNECT: "handle_connect",
    CONNACK: "handle_connack",
    SUBSCRIBE: "handle_subscribe",
    UNSUBSCRIBE: "handle_unsubscribe",
    SUBACK: "handle_suback",
    UNSUBACK: "handle_unsuback",
    PUBACK: "handle_puback",
    PUBREC: "handle_pubrec",
    PUBREL: "handle_pubrel",
    PUBCOMP: "handle_pubcomp",
    PINGREQ: "handle_pingreq",
    PINGRESP: "handle_pingresp",
    PUBLISH: "handle_publish",
    DISCONNECT: "handle_disconnect",
}


@functools.cache
def _puback(packet_id: int) -> bytes:
    return PubackPacket.build(packet_id).to_bytes()


class DeviceStreamReader(PausableReader, StreamReaderAdapter):
    """amqtt's TCP reader adapter, plus chunked reads, pauses (rate limits) and the time data
    last arrived (for the keep-alive watchdog)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self._stream = reader
        self.last = time.monotonic()

    async def read(self, n: int = -1) -> bytes:
        if self._resume_at:
            await self.resumed()
        data = await super().read(n)
        self.last = time.monotonic()
        return data

    async def read_chunk(self, n: int = CHUNK) -> bytes:
        """Whatever has arrived, up to ``n`` bytes; ``b""`` at end of stream."""
        if self._resume_at:
            await self.resumed()
        data = await self._stream.read(n)
        self.last = time.monotonic()
        return data


class DeviceBroker(Protocol):
    """What a device connection uses of the embedded broker (``EmbeddedBroker`` is one)."""

    pipeline: IngestPipeline

    def packet_limit(self) -> int: ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...


class DeviceHandler(BrokerProtocolHandler):
    """Per-connection protocol handler: telemetry is stored before it is acknowledged."""

    atoll: DeviceBroker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (future or None, QoS 1 packet ids): PUBACKs owed once the future is done.
        self._owed: deque[tuple[asyncio.Future | None, list[int]]] = deque()
        self._tasks: set[asyncio.Future] = set()
        self._closing = False
        self._cost = 0  # points (at least 1 per message) read since the last rate-limit charge
        #: The client sent DISCONNECT, so its Will is dropped. Kept here because amqtt loses a
        #: DISCONNECT read before its disconnect waiter exists (already in the socket at start).
        self.disconnected = False

    # -- amqtt's entry points --------------------------------------------------------------

    async def _reader_loop(self) -> None:
        identity: Identity | None = getattr(self.session, "atoll_identity", None)
        reader = self.reader
        if (
            identity is None
            or not isinstance(reader, DeviceStreamReader)
            or self._reader_ready is None
        ):
            await super()._reader_loop()
            return
        self._reader_ready.set()
        pipeline = self.atoll.pipeline
        splitter = PacketSplitter(self.atoll.packet_limit())
        telemetry_topic = topics.telemetry(identity.device)
        pacer = pipeline.read_pacer(identity, CHUNK)  # None: no rate limit applies
        try:
            while not self._closing:
                data = await reader.read_chunk(CHUNK if pacer is None else pacer.size())
                if not data or self._closing:  # closing: cut by ``cut()`` while reading
                    break
                if pacer is not None:
                    await self._paced(pacer, identity, reader)
                packets, error = splitter.feed(data)
                last = self._handle(packets, identity, telemetry_topic)
                if last is not None:  # as amqtt does, awaited here: nothing may overtake it
                    await self._to_amqtt(last)
                    break
                if error is not None:
                    pipeline.reject(identity.device, "mqtt", error.reason, error.message)
                    await self._acknowledge_owed()  # what came before the bad packet
                    break
                if pipeline.behind():
                    await pipeline.room()
                if len(self._owed) > MAX_OWED:
                    await self._fewer_owed(MAX_OWED // 2)
                writer = self.writer
                if writer is not None and (
                    not isinstance(writer, TcpWriter) or writer.must_drain()
                ):
                    await writer.drain()  # the client must read its PUBACKs to send more
                if pacer is not None:
                    pacer.charge(len(data), self._cost)
                self._cost = 0
        except asyncio.CancelledError:
            log.debug("reader of %s cancelled", identity.device)
        except (ConnectionError, OSError) as e:
            log.debug("connection of %s lost: %r", identity.device, e)
        except Exception:
            log.exception("reader of %s failed", identity.device)
        # The same ending as amqtt's loop.
        self._closing = True
        self._owed.clear()
        for task in list(self._tasks):
            task.cancel()
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()

    async def _paced(
        self, pacer: ReadPacer, identity: Identity, reader: DeviceStreamReader
    ) -> None:
        """Over its rate limit, handle and read nothing more (TCP pushes back on the client)."""
        while (wait := pacer.wait()) > 0:
            self.atoll.pipeline.paused(identity, "mqtt", wait)
            reader.pause(wait)
            await reader.resumed()

    async def handle_disconnect(self, disconnect) -> None:
        if disconnect is not None:
            self.disconnected = True
        await super().handle_disconnect(disconnect)

    async def handle_publish(self, publish_packet) -> None:
        """QoS 2 (and every PUBLISH of a connection amqtt reads itself)."""
        identity = getattr(self.session, "atoll_identity", None)
        topic, data = publish_packet.topic_name, publish_packet.data
        if identity is not None and not acl.valid_topic_name(topic or ""):
            # TCP checked it while splitting; amqtt's own reader (WebSockets) does not.
            self._refuse(identity, MALFORMED_PACKET, f"invalid topic name {topic!r}")
            return
        if publish_packet.qos == 2:
            await super().handle_publish(publish_packet)
            return
        qos = publish_packet.qos
        if identity is None or topic is None or data is None:
            return
        pipeline = self.atoll.pipeline
        wait = pipeline.over_limit(identity)
        if wait and isinstance(self.reader, PausableReader):
            self.reader.pause(wait)  # amqtt's loop reads on while messages wait in hold()
        try:
            await pipeline.hold(identity, "mqtt")
            await dispatch(pipeline, identity, topic, bytes(data), reply=self.atoll.publish)
        except Exception as e:  # noqa: BLE001 - no PUBACK; the client re-sends after reconnecting
            self._fail(e)
            return
        if qos == 1 and self.writer is not None and not self._closing:
            self.writer.write(_puback(publish_packet.variable_header.packet_id))

    def cut(self) -> None:
        """Close the connection now, acknowledging nothing more (the device was revoked,
        disabled or deleted). Messages already queued for a group commit are still stored, but
        their PUBACKs are never sent; nothing read after this is ingested."""
        self._closing = True
        self._owed.clear()
        if isinstance(self.writer, TcpWriter | WebSocketWriter):
            self.writer.abort()

    # -- the chunk -------------------------------------------------------------------------

    def _handle(
        self, packets: list[MQTTPacket], identity: Identity, telemetry_topic: str
    ) -> MQTTPacket | None:
        """Route a chunk's packets; returns a DISCONNECT or CONNECT, after which the client
        may send nothing (the packets after it are ignored)."""
        pipeline = self.atoll.pipeline
        parsed, ids = [], []
        cost = 0
        for packet in packets:
            header = packet.fixed_header
            if header.packet_type == PUBLISH and not header.flags & 0x04:  # QoS 0 or 1
                var = packet.variable_header
                if var.topic_name == telemetry_topic:
                    try:
                        p = pipeline.validate(identity, packet.payload.data, "mqtt")
                        parsed.append(p)
                        cost += len(p.ts)
                    except InvalidInput:
                        # Counted by the pipeline; the message is handled and acknowledged.
                        cost += 1
                    if var.packet_id is not None:
                        ids.append(var.packet_id)
                    continue
                self._commit(parsed, ids)
                parsed, ids = [], []
                task = self._spawn(
                    dispatch(
                        pipeline,
                        identity,
                        var.topic_name,
                        packet.payload.data,
                        reply=self.atoll.publish,
                    )
                )
                self._owe(task, [] if var.packet_id is None else [var.packet_id])
            else:
                self._commit(parsed, ids)
                parsed, ids = [], []
                if header.packet_type in (DISCONNECT, CONNECT):
                    return packet
                self._spawn(self._to_amqtt(packet))
        self._commit(parsed, ids)
        self._cost += cost
        return None

    def _commit(self, parsed: list, ids: list[int]) -> None:
        if parsed:
            try:
                future = self.atoll.pipeline.enqueue(parsed)
            except Unavailable as e:
                self._fail(e)
                return
            self._owe(future, ids)
        elif ids:
            self._owe(None, ids)

    async def _to_amqtt(self, packet: MQTTPacket) -> None:
        await self.plugins_manager.fire_event(
            MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session
        )
        await getattr(self, _AMQTT_METHODS[packet.fixed_header.packet_type])(packet)

    def _spawn(self, coro) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("handling a packet failed: %r", task.exception())

    # -- acknowledgements, in arrival order ------------------------------------------------

    def _owe(self, future: asyncio.Future | None, ids: list[int]) -> None:
        self._owed.append((future, ids))
        if future is None or future.done():
            self._settle()
        else:
            future.add_done_callback(self._settled)

    async def _fewer_owed(self, target: int) -> None:
        """Read nothing more until at most ``target`` units wait for their PUBACK: messages
        handled one by one (a gateway's, held back by its children's rate limits, say) must not
        pile up in memory while the client ignores its in-flight window."""
        while len(self._owed) > target and not self._closing:
            oldest = next((f for f, _ in self._owed if f is not None and not f.done()), None)
            if oldest is None:
                return
            await asyncio.wait([oldest])

    async def _acknowledge_owed(self, timeout: float = 10.0) -> None:
        pending = [f for f, _ in self._owed if f is not None and not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._settle()

    def _settled(self, _future: asyncio.Future) -> None:
        self._settle()

    def _settle(self) -> None:
        owed = self._owed
        ready: list[int] = []
        while owed:
            future, ids = owed[0]
            if future is not None:
                if not future.done():
                    break
                error = future.exception() if not future.cancelled() else Unavailable("cancelled")
                if error is not None:
                    self._fail(error)
                    return
            owed.popleft()
            ready.extend(ids)
        if ready and not self._closing and self.writer is not None:
            try:
                self.writer.write(b"".join([_puback(i) for i in ready]))
            except (
                ConnectionError,
                RuntimeError,
            ) as e:  # the client is gone; it re-sends on reconnect
                log.debug("PUBACKs not sent: %r", e)

    def _refuse(self, identity: Identity, reason: str, message: str) -> None:
        """Count a protocol violation and close, acknowledging nothing after it."""
        self.atoll.pipeline.reject(identity.device, "mqtt", reason, message)
        self._closing = True
        self._owed.clear()
        self._spawn(self.handle_connection_closed())

    def _fail(self, error: BaseException) -> None:
        """No PUBACK for anything not yet acknowledged, and close: the client re-sends."""
        if self._closing:
            return
        self._closing = True
        self._owed.clear()
        identity = getattr(self.session, "atoll_identity", None)
        reason = error.message if isinstance(error, Unavailable) else repr(error)
        log.error(
            "closing the connection of %s without acknowledging: %s",
            identity.device if identity else "?",
            reason,
        )
        self._spawn(self.handle_connection_closed())
