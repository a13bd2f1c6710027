"""Split an MQTT byte stream into packets with amqtt's own decoders, without awaiting.

amqtt decodes a packet with coroutines that ``await reader.read(n)`` once per field. Over a
reader whose ``read`` never suspends, such a coroutine finishes on its first ``send(None)``.
So the embedded broker reads large chunks from the socket and decodes every complete packet
in them synchronously, with amqtt's decoders, except for one packet: a well-formed PUBLISH at
QoS 0 or 1 (nearly all that devices send) is split by hand into the same amqtt objects, as a
coroutine per field cost a sixth of the broker's event loop at 10,000 devices (issue #16).
Whatever is unusual about such a PUBLISH (incomplete, too large, a bad topic) goes to amqtt's
decoders, which accept or refuse it as before.

>>> from amqtt.mqtt.pingreq import PingReqPacket
>>> from amqtt.mqtt.publish import PublishPacket
>>> publish = PublishPacket.build("t/1", b"hi", 7, False, 1, False)
>>> wire = publish.to_bytes() + PingReqPacket().to_bytes()
>>> splitter = PacketSplitter(max_packet=1024)
>>> splitter.feed(wire[:5]), splitter.buffered
(([], None), 5)
>>> packets, error = splitter.feed(wire[5:])
>>> [type(p).__name__ for p in packets], error, splitter.buffered
(['PublishPacket', 'PingReqPacket'], None, 0)
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, ClassVar

from amqtt.mqtt import packet_dict  # amqtt's packet type -> class table
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import CONNECT, PUBLISH, RESERVED_0, RESERVED_15, MQTTFixedHeader, MQTTPacket
from amqtt.mqtt.publish import PublishPacket, PublishPayload, PublishVariableHeader

from atoll.core.acl import valid_topic_name

# Reason codes, counted per device like the telemetry reasons.
MALFORMED_PACKET = "malformed_packet"
PACKET_TOO_LARGE = "packet_too_large"


class PacketError(Exception):
    """The stream cannot be trusted any more; the connection must be closed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Chunk:
    """amqtt ``ReaderAdapter`` over bytes in memory: ``read`` never suspends, and never reads
    past ``end`` (the end of the packet being decoded), so a lying length field cannot make
    one packet swallow the next."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    async def read(self, n: int = -1) -> bytes:
        pos = self.pos
        end = self.end
        if 0 <= n < end - pos:
            end = pos + n
        self.pos = end
        return self.data[pos:end]

    def feed_eof(self) -> None:
        pass


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("an amqtt decoder awaited something other than its in-memory reader")


class _Replay:
    """An amqtt decoder whose result depends only on the bytes it reads, run once per distinct
    byte string: a device sends the same few fixed headers over and over.

    amqtt's decoder reads its field byte by byte and each read depends only on the bytes read
    before, so if the bytes at the reader are exactly the bytes a previous run consumed, it would
    consume them again and return an equal result. ``decode`` looks for such bytes (one dict
    look-up per consumed length seen), else runs the decoder and remembers what it consumed.
    Results are ``(args, bytes consumed)`` and a new object is built per packet, since amqtt's
    handlers may change a packet's header (a re-sent PUBLISH gets its DUP flag set).
    """

    __slots__ = ("_decoder", "_lengths", "_seen")

    LIMIT = 1024  # distinct byte strings remembered (per connection)

    def __init__(self, decoder) -> None:
        self._decoder = decoder
        self._seen: dict[bytes, tuple] = {}
        self._lengths: list[int] = []

    def decode(self, reader: _Chunk) -> MQTTFixedHeader | None:
        data, pos, end = reader.data, reader.pos, reader.end
        seen = self._seen
        for n in self._lengths:
            if pos + n > end:
                # A shorter slice could equal a shorter header seen before (a PINGREQ's two
                # bytes at the end of a chunk, looked up as a 3-byte PUBLISH header) and
                # claim bytes that have not arrived: the packet would wait for more data.
                continue
            args = seen.get(data[pos : pos + n])
            if args is not None:
                reader.pos = pos + n
                return MQTTFixedHeader(*args)
        header = _run(self._decoder(reader))
        if header is not None and len(seen) < self.LIMIT:
            n = reader.pos - pos
            seen[data[pos : reader.pos]] = (
                header.packet_type,
                header.flags,
                header.remaining_length,
            )
            if n not in self._lengths:
                self._lengths.append(n)
        return header


class _PublishVariableHeader(PublishVariableHeader):
    """amqtt's PUBLISH variable header, whose encoded length (which amqtt's payload decoder asks
    for, by encoding the header again) is encoded once per topic."""

    __slots__ = ()
    _lengths: ClassVar[dict[tuple[str, bool], int]] = {}

    @property
    def bytes_length(self) -> int:
        key = (self.topic_name, self.packet_id is None)
        n = self._lengths.get(key)
        if n is None:
            n = len(self.to_bytes())
            if len(self._lengths) < 65536:
                self._lengths[key] = n
        return n


class PacketSplitter:
    """Feed it bytes as they arrive; it returns the complete packets and keeps the rest.

    ``feed`` returns ``(packets, error)``. ``error`` is a ``PacketError`` for a packet whose
    declared length exceeds ``max_packet`` (refused before it is buffered) or that amqtt
    cannot decode or that does not fill exactly its declared length; ``packets`` are the good
    ones before it. After an error the stream cannot be trusted: close the connection.
    """

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self._rest = b""
        self._headers = _Replay(MQTTFixedHeader.from_stream)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete packet held until the rest arrives."""
        return len(self._rest)

    def feed(self, data: bytes) -> tuple[list[MQTTPacket], PacketError | None]:
        buf = self._rest + data if self._rest else data
        reader = _Chunk(buf)
        packets: list[MQTTPacket] = []
        try:
            self._split(reader, packets)
        except PacketError as e:
            self._rest = b""
            return packets, e
        self._rest = buf[reader.pos :] if reader.pos < len(buf) else b""
        return packets, None

    def _split(self, reader: _Chunk, packets: list[MQTTPacket]) -> None:
        data = reader.data
        size = len(data)
        while reader.pos < size:
            start = reader.pos
            if data[start] & 0xF4 == 0x30:  # PUBLISH at QoS 0 or 1: most of what devices send
                fast = _publish(data, start, size, self.max_packet)
                if fast is not None:
                    packets.append(fast[0])
                    reader.pos = fast[1]
                    continue
            reader.end = size
            try:
                header = self._headers.decode(reader)  # None: the header is incomplete
            except Exception as e:  # noqa: BLE001 - e.g. a remaining length of more than 4 bytes
                raise PacketError(MALFORMED_PACKET, f"bad fixed header: {e}") from None
            if header is None:
                reader.pos = start
                return
            length = header.remaining_length
            if length > self.max_packet:
                raise PacketError(
                    PACKET_TOO_LARGE,
                    f"packet of {length} bytes; this broker accepts at most {self.max_packet}",
                )
            if size - reader.pos < length:
                reader.pos = start
                return
            reader.end = reader.pos + length
            packets.append(_decode(reader, header))


def _publish(
    data: bytes, start: int, size: int, max_packet: int
) -> tuple[PublishPacket, int] | None:
    """A complete, well-formed QoS 0 or 1 PUBLISH at ``data[start]``, and where it ends; else
    ``None``, and amqtt's decoders take it (incomplete, too large, malformed: their errors).

    The same packet as amqtt's decoders build, without running a coroutine per field: at one
    message per read (10,000 devices each sending now and then) they were a sixth of the
    broker's event loop.
    """
    length, shift, pos = 0, 0, start + 1
    while True:  # the remaining length: at most 4 bytes of 7 bits
        if pos >= size or shift > 21:
            return None
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    end = pos + length
    if end > size or length > max_packet or length < 2:
        return None
    topic_end = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    flags = data[start] & 0x0F
    body = topic_end + 2 if flags & 0x02 else topic_end  # QoS 1: a packet id
    if body > end:
        return None
    try:
        topic = data[pos + 2 : topic_end].decode()
    except UnicodeDecodeError:
        return None
    if not topic or "\x00" in topic or "#" in topic or "+" in topic:
        return None
    packet_id = (data[topic_end] << 8) | data[topic_end + 1] if flags & 0x02 else None
    return (
        PublishPacket(
            MQTTFixedHeader(PUBLISH, flags, length),
            _PublishVariableHeader(topic, packet_id),
            PublishPayload(data[body:end]),
        ),
        end,
    )


def _decode(reader: _Chunk, header: MQTTFixedHeader) -> MQTTPacket:
    kind = header.packet_type
    if kind in (RESERVED_0, RESERVED_15):
        raise PacketError(MALFORMED_PACKET, f"reserved packet type {kind}")
    if kind == PUBLISH and header.flags & 0x06 == 0x06:  # [MQTT-3.3.1-4]; amqtt does not check it
        raise PacketError(MALFORMED_PACKET, "PUBLISH with QoS 3")
    try:
        if kind == PUBLISH:
            # amqtt's two PUBLISH decoders, without the generic wrapper's per-packet extras
            # (a wall-clock timestamp for ``repr``); a third of the packets' decoding time.
            # A topic of ill-formed UTF-8 comes out of amqtt as the repr of its bytes, which is
            # longer: the payload then ends before the packet does, and is refused below.
            var = _run(_PublishVariableHeader.from_stream(reader, header))
            if not var.topic_name or "\x00" in var.topic_name:  # amqtt refuses wildcards itself
                raise PacketError(MALFORMED_PACKET, f"invalid topic name {var.topic_name!r}")
            packet = PublishPacket(
                header, var, _run(PublishPayload.from_stream(reader, header, var))
            )
        else:
            packet = _run(packet_dict[kind].from_stream(reader, fixed_header=header))
    except PacketError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error means the bytes are not MQTT
        raise PacketError(MALFORMED_PACKET, f"cannot decode packet type {kind}: {e}") from None
    if reader.pos != reader.end:
        raise PacketError(
            MALFORMED_PACKET,
            f"packet type {kind} declares {header.remaining_length} bytes but holds "
            f"{header.remaining_length - (reader.end - reader.pos)}",
        )
    return packet


def check_connect(header: MQTTFixedHeader, body: bytes) -> ConnectPacket:
    """A CONNECT, decoded strictly from its fixed header and exactly ``remaining_length`` bytes.

    amqtt's decoder takes a missing field as absent and ill-formed UTF-8 as the repr of its
    bytes; so the packet must encode back to the same bytes. Then no string holds U+0000
    [MQTT-1.5.3-2] and a Will topic is a topic name (§4.7). Raises ``PacketError``.
    """
    if header.packet_type != CONNECT:
        raise PacketError(
            MALFORMED_PACKET, f"first packet is of type {header.packet_type}, not CONNECT"
        )
    reader = _Chunk(body)
    packet = _decode(reader, header)
    assert isinstance(packet, ConnectPacket)
    var, payload = packet.variable_header, packet.payload
    if var is None or payload is None:
        raise PacketError(MALFORMED_PACKET, "CONNECT without a variable header or payload")
    client_id = payload.client_id
    if payload.client_id_is_random:  # amqtt made one up for an empty client id
        payload.client_id = ""
    again = bytes(var.to_bytes()) + bytes(payload.to_bytes(header, var))
    payload.client_id = client_id
    if again != body:
        raise PacketError(
            MALFORMED_PACKET, "CONNECT with a field missing, extra bytes or ill-formed UTF-8"
        )
    if any("\x00" in s for s in (client_id, payload.will_topic, payload.username) if s):
        raise PacketError(MALFORMED_PACKET, "CONNECT with U+0000 in a string")
    if var.will_flag and not valid_topic_name(payload.will_topic or ""):
        raise PacketError(
            MALFORMED_PACKET, f"Will topic {payload.will_topic!r} is not a topic name"
        )
    return packet
