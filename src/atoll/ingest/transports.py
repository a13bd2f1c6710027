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
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from websockets import ConnectionClosed

log = logging.getLogger(__name__)


def adapt_broker(broker: Any) -> None:
    """Make an amqtt ``Broker`` use this module's TLS context and WebSocket adapters."""

    async def ws_connected(websocket: Any, listener_name: str) -> None:
        await broker._client_connected(listener_name, WebSocketReader(websocket),
                                       WebSocketWriter(websocket))

    broker.ws_connected = ws_connected
    broker._create_ssl_context = lambda listener: server_context(listener["certfile"],
                                                                 listener["keyfile"])


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

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._buffer = bytearray()
        self.last = time.monotonic()

    async def read(self, n: int = -1) -> bytes:
        if self._resume_at:
            await self.resumed()
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

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._buffer = bytearray()
        self._sending: asyncio.Task | None = None

    def write(self, data: bytes) -> None:
        self._buffer += data
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

    async def close(self) -> None:
        await self._ws.close()
