"""Forward the buffer to the platform: gateway telemetry over MQTT, QoS 1, acknowledged in order.

One connection at a time, as the gateway device (its id and secret; TLS for ``mqtts://``).
On each connection the forwarder subscribes to the gateway's desired twin, its children's
commands and the connect answers, declares every known child (``gateway/connect``, QoS 1,
waiting for the PUBACKs), then reads the buffer from the acknowledged position and publishes
``gateway/telemetry`` messages, each holding the next readings of many children up to
``max_message_bytes``, with up to ``max_inflight`` messages unacknowledged. A PUBACK marks its
message done; the buffer's acknowledged position moves only over a run of done messages from the
oldest one (in order), so a crash resends at most what was in flight.

A lost connection is dropped whole: the paho client is discarded (so paho resends nothing of
its own), the next one, after a back-off of 0.5 s doubling up to ``reconnect_max_s`` (30 s),
starts again from the acknowledged position. Re-sent readings are harmless: the platform stores
one row per series and timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from atoll.core import topics
from atoll.edge.buffer import DurableBuffer, Row
from atoll.edge.config import PlatformLink

log = logging.getLogger("atoll.edge.forwarder")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Bytes a reading costs in a message beyond its values (``{"ts":…,"values":}`` and commas).
_ROW_WIRE = 48
_BACKOFF = (0.5, 30.0)
#: How long a stop waits for the last buffered readings to be acknowledged.
STOP_GRACE_S = 2.0
#: Children in one message, at most (the platform's limit).
MAX_CHILDREN = 1000
#: CONNACK reason codes that no retry fixes soon (bad credentials, not authorised).
_REFUSED = {4, 5, 134, 135}


def wire_ts(ts_us: int) -> bytes:
    """Epoch milliseconds when whole, else RFC 3339 with microseconds (keeps every digit).

    >>> wire_ts(1_795_428_000_123_000), wire_ts(1_795_428_000_123_456)
    (b'1795428000123', b'"2026-11-23T10:00:00.123456Z"')
    """
    if ts_us % 1000 == 0:
        return str(ts_us // 1000).encode()
    t = _EPOCH + timedelta(microseconds=ts_us)
    return b'"' + t.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b'"'


def encode(rows: Iterable[Row]) -> bytes:
    """A ``gateway/telemetry`` payload: ``{child: [{"ts", "values"}, ...], ...}``, each child's
    readings in buffer order."""
    by_dev: dict[str, list[bytes]] = {}
    for r in rows:
        item = b'{"ts":' + wire_ts(r.ts_us) + b',"values":' + r.values + b"}"
        by_dev.setdefault(r.device, []).append(item)
    parts = [orjson.dumps(d) + b":[" + b",".join(items) + b"]" for d, items in by_dev.items()]
    return b"{" + b",".join(parts) + b"}"


def encode_own(rows: Iterable[Row]) -> bytes:
    """The gateway's own readings (scores and alarms of detection at the edge, say) as a batch
    on its own ``telemetry`` topic: ``[{"ts", "values"}, ...]``."""
    items = [b'{"ts":' + wire_ts(r.ts_us) + b',"values":' + r.values + b"}" for r in rows]
    return b"[" + b",".join(items) + b"]"


class Forwarder:
    def __init__(
        self,
        buffer: DurableBuffer,
        link: PlatformLink,
        *,
        children: Callable[[], Mapping[str, str | None]],
        on_message: Callable[[str, bytes], None] | None = None,
        max_message_bytes: int = 256 * 1024,
        max_inflight: int = 16,
        max_points: int = 10_000,
        reconnect_max_s: float = _BACKOFF[1],
    ) -> None:
        self.buffer = buffer
        self.link = link
        self.children = children  # child id -> device type, of the running connectors
        self.on_message = on_message
        self.max_message_bytes = max_message_bytes
        self.max_inflight = max_inflight
        self.max_points = max_points
        self.reconnect_max_s = reconnect_max_s
        gw = link.gateway_id
        self.topic = topics.gateway_telemetry(gw)
        self.connect_topic = topics.gateway_connect(gw)
        # counters for the reported twin and the run summary
        self.connected = False
        self.connections = 0
        self.messages_acked = 0
        self.readings_acked = 0
        self.last_contact: float | None = None
        self.last_error: str | None = None
        self.children_refused: dict[str, str] = {}
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: deque[tuple[int, int, int]] = deque()  # (mid, last seq, readings)
        self._done: set[int] = set()
        self._control: dict[int, asyncio.Future[None]] = {}
        self._declared: set[str] = set()
        self._cursor = 0
        self._moved = asyncio.Event()  # an ack arrived or the connection ended
        self._lost = asyncio.Event()
        self._connack: asyncio.Future[int] | None = None
        self._gen = 0

    # --- paho callbacks (its thread) → the event loop --------------------------------------

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                self._loop.call_soon_threadsafe(fn, *args)

    def _new_client(self) -> paho.Client:
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.link.gateway_id, clean_session=True
        )
        c.username_pw_set(self.link.gateway_id, self.link.secret)
        if self.link.tls:
            c.tls_set_context(ssl.create_default_context(cafile=self.link.ca_file))
        c.max_inflight_messages_set(self.max_inflight + 64)  # we bound it ourselves
        c.max_queued_messages_set(0)
        # A callback of an earlier connection's client, still queued, must not count for this
        # one: message ids start again at 1 on every client.
        self._gen += 1
        g = self._gen
        c.on_connect = lambda _c, _u, _f, rc, _p: self._soon(self._on_connect, g, rc.value)
        c.on_disconnect = lambda _c, _u, _f, rc, _p: self._soon(self._on_disconnect, g, str(rc))
        c.on_publish = lambda _c, _u, mid, _rc, _p: self._soon(self._on_puback, g, mid)
        c.on_message = lambda _c, _u, m: self._soon(self._on_msg, g, m.topic, m.payload)
        return c

    def _on_connect(self, gen: int, rc: int) -> None:
        if gen != self._gen:
            return
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(rc)

    def _on_disconnect(self, gen: int, reason: str) -> None:
        if gen != self._gen:
            return
        if self.connected:
            log.warning("connection to %s lost: %s", self.link.host, reason)
        self.connected = False
        self._lost.set()
        self._moved.set()
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(-1)

    def _on_puback(self, gen: int, mid: int) -> None:
        if gen != self._gen:
            return
        self.last_contact = time.time()
        fut = self._control.pop(mid, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(None)
            return
        self._done.add(mid)
        acked = None
        while self._inflight and self._inflight[0][0] in self._done:
            m, seq, n = self._inflight.popleft()
            self._done.discard(m)
            acked = seq
            self.messages_acked += 1
            self.readings_acked += n
        if acked is not None:
            self.buffer.ack(acked)
            self._moved.set()

    def _on_msg(self, gen: int, topic: str, payload: bytes) -> None:
        if gen != self._gen:
            return
        self.last_contact = time.time()
        if topic == topics.gateway_connect_ack(self.link.gateway_id):
            self._connect_answer(payload)
        elif self.on_message is not None:
            try:
                self.on_message(topic, payload)
            except Exception:  # a handler's bug must not stop forwarding
                log.exception("handling a message on %s failed", topic)

    def _connect_answer(self, payload: bytes) -> None:
        try:
            doc = orjson.loads(payload)
            child, status = str(doc["device"]), doc.get("status")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if status == "ok":
            self.children_refused.pop(child, None)
        else:
            reason = str(doc.get("reason") or "refused")
            self.children_refused[child] = reason
            log.error("the platform refused child %s: %s", child, reason)

    # --- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Publish at QoS 1 on the current connection; the future resolves on its PUBACK (and
        fails when there is no connection)."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        c = self._client
        if c is None or not self.connected:
            fut.set_exception(ConnectionError("not connected to the platform"))
            return fut
        info = c.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            fut.set_exception(ConnectionError(f"publish failed: {info.rc}"))
            return fut
        self._control[info.mid] = fut
        return fut

    async def _declare(self, children: Mapping[str, str | None]) -> None:
        futs = []
        for child, device_type in children.items():
            body = orjson.dumps({"device": child, "device_type": device_type})
            futs.append(self.publish(self.connect_topic, body))
        if futs:
            await asyncio.wait_for(asyncio.gather(*futs), timeout=30)
        self._declared.update(children)

    # --- the connection loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, forward, reconnect with back-off, until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        delay = _BACKOFF[0]
        while not stop.is_set():
            ok = await self._connection(stop)
            if stop.is_set():
                break
            if ok:
                delay = _BACKOFF[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.reconnect_max_s)
        await self.buffer.save_position_async()

    async def _connection(self, stop: asyncio.Event) -> bool:
        """One connection from connect to loss (or stop); True if it was established."""
        assert self._loop is not None
        client = self._new_client()
        self._connack = self._loop.create_future()
        self._lost.clear()
        try:
            await asyncio.to_thread(client.connect, self.link.host, self.link.port, 30)
        except (OSError, ssl.SSLError) as e:
            self.last_error = f"cannot connect to {self.link.host}:{self.link.port}: {e}"
            log.warning("%s", self.last_error)
            return False
        self._client = client
        client.loop_start()
        try:
            try:
                rc = await asyncio.wait_for(asyncio.shield(self._connack), 15)
            except TimeoutError:
                rc = -2
            if rc != 0:
                self.last_error = (
                    "the platform refused the gateway's credentials"
                    if rc in _REFUSED
                    else f"no CONNACK (code {rc})"
                )
                log.error("%s", self.last_error)
                return False
            self.connected = True
            self.connections += 1
            self.last_contact = time.time()
            self.last_error = None
            await self._session(client, stop)
            return True
        finally:
            self.connected = False
            await self._wind_down(client, stop.is_set())

    async def _session(self, client: paho.Client, stop: asyncio.Event) -> None:
        gw = self.link.gateway_id
        client.subscribe(
            [
                (topics.twin_desired(gw), 1),
                (topics.gateway_command(gw, "+", "+"), 1),
                (topics.gateway_connect_ack(gw), 1),
            ]
        )
        self._declared = set()
        self._cursor = self.buffer.acked
        self.buffer.rewind()
        pump = asyncio.create_task(self._pump())
        saver = asyncio.create_task(self._save_loop())
        stopper = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait({pump, stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                # Stopping while connected: what the connectors put last goes out first, for a
                # moment (the next run would send it anyway).
                target = self.buffer.last_seq
                deadline = time.monotonic() + STOP_GRACE_S
                while (
                    self.buffer.acked < target
                    and time.monotonic() < deadline
                    and not (pump.done() or lost.done())
                ):
                    await asyncio.sleep(0.05)
            if pump.done() and pump.exception() is not None:
                self.last_error = f"forwarding failed: {pump.exception()!r}"
                log.error("%s", self.last_error)
        finally:
            for t in (pump, saver, stopper, lost):
                t.cancel()
            await asyncio.gather(pump, saver, stopper, lost, return_exceptions=True)

    async def _wind_down(self, client: paho.Client, stopping: bool) -> None:
        if stopping and self._inflight and not self._lost.is_set():
            # Give in-flight messages a moment to be acknowledged (fewer re-sends next time).
            deadline = time.monotonic() + 2.0
            while self._inflight and time.monotonic() < deadline and not self._lost.is_set():
                self._moved.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._moved.wait(), 0.1)
        with contextlib.suppress(Exception):
            client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._gen += 1  # whatever the old client still reports is ignored from here on
        self._client = None
        for fut in self._control.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self._control.clear()
        self._inflight.clear()
        self._done.clear()
        self.buffer.rewind()
        await self.buffer.save_position_async()

    async def _save_loop(self) -> None:
        saved = self.buffer.acked
        while True:
            await asyncio.sleep(0.2)
            if self.buffer.acked != saved:
                saved = self.buffer.acked
                await self.buffer.save_position_async()

    async def _pump(self) -> None:
        assert self._client is not None
        client = self._client
        await self._declare(self.children())
        appended = self.buffer.appended_event()
        budget = max(1024, int(self.max_message_bytes * 0.8))
        while True:
            if len(self._inflight) >= self.max_inflight:
                self._moved.clear()
                await self._moved.wait()
                continue
            appended.clear()
            rows = await self.buffer.read_async(self._cursor, budget)
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(appended.wait(), 0.5)
                continue
            gw = self.link.gateway_id
            new = {r.device for r in rows} - self._declared - {gw}
            if new:
                known = self.children()
                await self._declare({d: known.get(d) for d in sorted(new)})
            for topic, part, payload, position in self._batch(rows):
                info = client.publish(topic, payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise ConnectionError(f"publish failed: {info.rc}")
                self._inflight.append((info.mid, position, len(part)))
            self._cursor = rows[-1].seq

    def _batch(self, rows: list[Row]) -> list[tuple[str, list[Row], bytes, int]]:
        """The messages for ``rows`` (children's on ``gateway/telemetry``, the gateway's own on
        its ``telemetry``), each with the position its acknowledgement makes safe: all before
        the first reading of any later message (acks arrive in order)."""
        gw = self.link.gateway_id
        own = [r for r in rows if r.device == gw]
        kids = [r for r in rows if r.device != gw] if own else rows
        msgs = [(self.topic, part, payload) for part, payload in self._messages(kids, encode)]
        own_topic = topics.telemetry(gw)
        msgs += [(own_topic, p, b) for p, b in self._messages(own, encode_own)]
        out = []
        later_min = rows[-1].seq + 1
        for topic, part, payload in reversed(msgs):
            out.append((topic, part, payload, later_min - 1))
            later_min = min(later_min, part[0].seq)
        out.reverse()
        return out

    def _messages(
        self, rows: list[Row], encoder: Callable[[list[Row]], bytes]
    ) -> list[tuple[list[Row], bytes]]:
        """``rows`` as messages within the platform's limits: bytes, points, children."""
        if not rows:
            return []
        points = sum(r.values.count(b'":') for r in rows)  # metric names hold no quotes
        devices = {r.device for r in rows}
        size = sum(len(r.values) for r in rows) + _ROW_WIRE * len(rows) + 140 * len(devices)
        fits = points <= self.max_points and len(devices) <= MAX_CHILDREN
        if (fits and size <= self.max_message_bytes) or len(rows) == 1:
            payload = encoder(rows)
            if len(payload) <= self.max_message_bytes or len(rows) == 1:
                return [(rows, payload)]
        half = len(rows) // 2
        return self._messages(rows[:half], encoder) + self._messages(rows[half:], encoder)

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "connections": self.connections,
            "messages_acked": self.messages_acked,
            "readings_acked": self.readings_acked,
            "inflight": len(self._inflight),
            "last_error": self.last_error,
            "children_refused": dict(self.children_refused),
        }
