"""The first packet of a connection to the embedded broker: a CONNECT, small, read whole.

amqtt reads a CONNECT field by field straight from the socket, whatever the first packet is
and however long it says it is: a PINGREQ first left it waiting for fields that never came,
and a header declaring 256 MB was read until the client gave up. Here the fixed header is
read first; anything but a CONNECT, or a CONNECT declaring more than the limit, is refused
before a byte of its body is read. The body is then read whole (bounded), checked strictly
(a lying length field, a missing field, ill-formed UTF-8 or U+0000 close the connection), and
amqtt decodes it from memory, so it cannot read past the declared length either.

>>> import asyncio
>>> from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
>>> packet = ConnectPacket(variable_header=ConnectVariableHeader(), payload=ConnectPayload("d1"))
>>> wire = packet.to_bytes()
>>> packet = asyncio.run(read_connect(BytesReader(wire), 65536))
>>> packet.end - packet.pos == len(wire)
True
>>> asyncio.run(read_connect(BytesReader(b"\\xc0\\x00"), 65536))
Traceback (most recent call last):
...
atoll.ingest.connect.ConnectRefused: the first packet must be CONNECT, not packet type 12
"""

from __future__ import annotations

import asyncio

from amqtt.adapters import ReaderAdapter
from amqtt.errors import MQTTError
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader

from atoll.ingest.mqtt_frames import check_connect

# Refusal reasons, counted for the device "(anonymous)".
NOT_CONNECT = "not_connect"
CONNECT_TOO_LARGE = "connect_too_large"
MALFORMED_CONNECT = "malformed_connect"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"

#: MQTT 5's CONNACK for "Unsupported Protocol Version" (reason 0x84, no properties), what an
#: MQTT 5 client understands [MQTT-3.1.2-2 of v5]; and MQTT 3.1.1's return code 1, which is
#: what a 3.1 client (``MQIsdp``, level 3) understands [MQTT-3.1.2-2].
CONNACK_V5_UNSUPPORTED = b"\x20\x03\x00\x84\x00"
CONNACK_V3_UNACCEPTABLE = b"\x20\x02\x00\x01"


class ConnectRefused(Exception):
    """Close the connection, after ``answer`` if there is one (MQTT 3.1.1 has none for most
    of these)."""

    def __init__(self, reason: str, message: str, answer: bytes = b"") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.answer = answer


def check_protocol(body: bytes) -> None:
    """Refuse, with the CONNACK the client's own protocol version understands, a CONNECT that
    is not MQTT 3.1.1: the embedded broker speaks 3.1.1 only (docs/DEVICES.md, "MQTT 5").

    >>> try:
    ...     check_protocol(b"\\x00\\x04MQTT\\x05\\x02\\x00\\x3c\\x00")
    ... except ConnectRefused as e:
    ...     print(e.reason, e.answer.hex())
    unsupported_protocol 2003008400
    >>> check_protocol(b"\\x00\\x04MQTT\\x04\\x02\\x00\\x3c\\x00\\x00")
    """
    if len(body) < 2:
        return  # too short to say: the strict decoder refuses it
    n = int.from_bytes(body[:2], "big")
    if len(body) < 3 + n:
        return
    name, level = body[2 : 2 + n], body[2 + n]
    if name == b"MQTT" and level == 4:
        return
    hint = (
        "connect with protocol version 3.1.1, or run Atoll with an external Mosquitto for "
        'MQTT 5 devices (docs/DEVICES.md, "MQTT 5")'
    )
    if name == b"MQTT" and level == 5:
        raise ConnectRefused(
            UNSUPPORTED_PROTOCOL,
            f"an MQTT 5 CONNECT: the embedded broker speaks MQTT 3.1.1; {hint}",
            CONNACK_V5_UNSUPPORTED,
        )
    shown = name.decode("utf-8", "replace")[:16]
    raise ConnectRefused(
        UNSUPPORTED_PROTOCOL,
        f"protocol {shown!r} level {level}: the embedded broker speaks MQTT 3.1.1; {hint}",
        CONNACK_V3_UNACCEPTABLE,
    )


class BytesReader(ReaderAdapter):
    """amqtt ``ReaderAdapter`` over bytes in memory; ``read`` never suspends."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    async def read(self, n: int = -1) -> bytes:
        start = self.pos
        self.pos = self.end if n < 0 else min(self.end, start + n)
        return self.data[start : self.pos]

    def feed_eof(self) -> None:
        pass

    @property
    def rest(self) -> int:
        return self.end - self.pos


async def read_connect(reader: ReaderAdapter, max_bytes: int) -> BytesReader:
    """The whole first packet, checked to be a CONNECT of at most ``max_bytes`` and then
    decoded strictly (``mqtt_frames.check_connect``: it must encode back to exactly its bytes),
    as an in-memory reader for amqtt's ``init_from_connect``. Raises ``ConnectRefused`` or
    ``PacketError``, or ``EOFError`` if the peer closed first."""
    try:
        header = await MQTTFixedHeader.from_stream(reader)
    except (MQTTError, ValueError) as e:
        raise ConnectRefused(MALFORMED_CONNECT, f"bad fixed header: {e}") from None
    if header is None:
        raise EOFError("closed before CONNECT")
    if header.packet_type != CONNECT:
        raise ConnectRefused(
            NOT_CONNECT, f"the first packet must be CONNECT, not packet type {header.packet_type}"
        )
    length = header.remaining_length
    if length > max_bytes:
        raise ConnectRefused(
            CONNECT_TOO_LARGE, f"CONNECT of {length} bytes; this broker accepts at most {max_bytes}"
        )
    try:
        body = await reader.read(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        raise EOFError("closed during CONNECT") from e
    if len(body) < length:
        raise EOFError("closed during CONNECT")
    check_protocol(body)
    check_connect(header, body)
    return BytesReader(header.to_bytes() + body)
