"""How the embedded broker's extra listeners carry MQTT: TLS, and amqtt adapters for WebSockets.

* TLS: the server presents its certificate and asks for none. amqtt's own context requests an
  optional client certificate, which makes browsers offer a certificate picker (headless
  Chromium drops the connection). Devices authenticate with their id and secret, not a
  certificate.
* WebSockets: amqtt's writer sends only when ``drain()`` is awaited, but the broker writes
  PUBACKs without awaiting (many at once, after a group commit), so they stayed in its buffer
  (with amqtt's adapters, a paho client publishing 200 QoS 1 messages waited in vain).
  ``WebSocketWriter`` sends every write promptly and in order.
  ``WebSocketReader`` notes when data last arrived, as the keep-alive watchdog expects of every
  connection's reader.
* Every writer (``TcpWriter``, ``WebSocketWriter``) tells its socket's file descriptor (the key
  of ``atoll.ingest.admission``) and can ``abort()``: close at once, sending nothing more
  (a revoked device's connection).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from websockets import ConnectionClosed

log = logging.getLogger(__name__)


def adapt_broker(broker: Any, max_packet: Callable[[], int] | None = None) -> None:
    """Make an amqtt ``Broker`` use this module's TLS context and WebSocket adapters;
    ``max_packet()``: the largest read a WebSocket connection may ask for."""

    async def ws_connected(websocket: Any, listener_name: str) -> None:
        limit = max_packet() if max_packet is not None else None
        await broker._client_connected(
            listener_name, WebSocketReader(websocket, limit), WebSocketWriter(websocket)
        )

    broker.ws_connected = ws_connected
    broker._create_ssl_context = lambda listener: server_context(
        listener["certfile"], listener["keyfile"]
    )


class TcpWriter(StreamWriterAdapter):
    """amqtt's TCP (and TLS) writer adapter, plus ``fileno`` and ``abort``."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        super().__init__(writer)
        self._transport = writer.transport

    def must_drain(self) -> bool:
        """Whether ``drain()`` may have to wait: the transport holds more than its high-water
        mark (then asyncio has paused writing), or is closing. Else ``drain()`` returns at once
        and a device connection does not await it (one coroutine chain fewer per read)."""
        t = self._transport
        return t.is_closing() or t.get_write_buffer_size() > t.get_write_buffer_limits()[1]

    def fileno(self) -> int:
        sock = self._transport.get_extra_info("socket")
        return sock.fileno() if sock is not None else -1

    def abort(self) -> None:
        self.is_closed = True  # later writes are dropped
        self._transport.abort()

    async def close(self) -> None:
        # amqtt's drains first and gives up (leaving the socket open) if that fails, e.g. on
        # a connection the CONNECT deadline shut down: here the socket is always closed.
        if self.is_closed:
            return
        self.is_closed = True
        try:
            await asyncio.wait_for(self._writer.drain(), 5)
        except asyncio.CancelledError:
            self._transport.abort()
            raise
        except Exception as e:  # noqa: BLE001 - the peer is gone or does not read
            log.debug("closing without draining: %r", e)
            self._transport.abort()
            return
        self._transport.close()


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """TLS for a server that asks clients for no certificate. Raises ``ssl.SSLError``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert, key)
    return context


class PausableReader:
    """A device connection's reader that can stop reading for a while (rate limits: the
    client's TCP window fills and it waits; nothing is lost). ``last`` is when data last
    arrived, for the keep-alive watchdog, which must not count a pause as the client's silence.
    """

    last: float
    _resume_at: float = 0.0

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)
        self.last = max(self.last, self._resume_at)

    async def resumed(self) -> None:
        """Return once the pause is over."""
        while (wait := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._resume_at = 0.0


class WebSocketReader(PausableReader, ReaderAdapter):
    """MQTT bytes out of WebSocket messages (a packet may span messages, or share one)."""

    def __init__(self, websocket: Any, max_read: int | None = None) -> None:
        self._ws = websocket
        self._buffer = bytearray()
        self.last = time.monotonic()
        self.max_read = max_read

    async def read(self, n: int = -1) -> bytes:
        if self._resume_at:
            await self.resumed()
        if self.max_read is not None and n > self.max_read:
            # amqtt reads a packet's body in one read of its declared length: refuse to buffer
            # more than a packet may hold; amqtt takes "no data" as the end of the connection.
            log.info(
                "closing a WebSocket connection: a packet of %d bytes (limit %d)", n, self.max_read
            )
            return b""
        while len(self._buffer) < max(n, 1):
            try:
                message = await self._ws.recv()
            except ConnectionClosed:
                break
            self._buffer += message.encode() if isinstance(message, str) else message
            self.last = time.monotonic()
        size = len(self._buffer) if n < 0 else n
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def feed_eof(self) -> None:
        pass  # the WebSocket closes itself


class WebSocketWriter(WriterAdapter):
    """Sends what is written as soon as the event loop is free, one message per burst."""

    MAX_BUFFERED = 4 << 20

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._buffer = bytearray()
        self._sending: asyncio.Task | None = None
        self._aborted = False

    def write(self, data: bytes) -> None:
        if self._aborted:
            return
        self._buffer += data
        if len(self._buffer) > self.MAX_BUFFERED:
            # The peer reads nothing (PUBACKs pile up): close rather than buffer without end.
            log.info(
                "closing a WebSocket whose peer does not read (%d bytes unsent)", len(self._buffer)
            )
            self.abort()
            return
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            try:
                await self._ws.send(data)
            except ConnectionClosed as e:  # the reader sees the close too; the client re-sends
                log.debug("WebSocket closed while sending: %r", e)
                self._buffer.clear()
                return

    async def drain(self) -> None:
        if self._sending is not None:
            await asyncio.shield(self._sending)

    def get_peer_info(self) -> tuple[str, int] | None:
        address = self._ws.remote_address
        return tuple(address[:2]) if address else None

    def get_ssl_info(self) -> ssl.SSLObject | None:
        return self._ws.transport.get_extra_info("ssl_object")

    def fileno(self) -> int:
        sock = self._ws.transport.get_extra_info("socket")
        return sock.fileno() if sock is not None else -1

    def abort(self) -> None:
        self._aborted = True
        self._buffer.clear()
        self._ws.transport.abort()

    async def close(self) -> None:
        await self._ws.close()
