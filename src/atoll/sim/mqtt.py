"""Drive a simulated fleet over MQTT: one paho client per device, all on one asyncio loop.

No thread per device: every client's socket is registered with the event loop
(``add_reader``), paho is driven through its external-loop API (``loop_read``,
``loop_write``, ``loop_misc``), and publishing writes straight to the socket. Each device
connects with its own credentials (username = device id, password = its secret) and publishes
its readings as JSON to ``topics.telemetry(device_id)`` at QoS 1; a PUBACK counts as delivered.

Connection set-up (TCP + CONNECT) runs on a small thread pool so that a remote broker's round
trip does not serialise 10,000 connects; everything after that runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Self
from urllib.parse import urlparse

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.sim.fleet import Fleet, Reading

_PENDING, _UP, _REFUSED, _LOST, _CLOSED = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``mqtt://host:port``, ``mqtts://host:port``, ``tcp://host:port`` or ``host:port``."""
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise InvalidInput(
                f"bad broker URL {url!r}", hint="use mqtt://host:1883 or mqtts://host:8883"
            )
        tls = u.scheme in ("mqtts", "ssl")
        return cls(u.hostname, u.port or (8883 if tls else 1883), tls)


@dataclass(slots=True)
class RunStats:
    devices: int = 0
    connected: int = 0
    refused: int = 0
    connect_s: float = 0.0
    published: int = 0
    acked: int = 0
    points: int = 0  # readings' values in published messages
    skipped: int = 0  # readings of devices that are not connected
    lost: int = 0  # connections dropped by the broker
    reconnects: int = 0  # of those, connected again
    elapsed_s: float = 0.0
    behind_s: float = 0.0  # how far the sender lagged behind schedule at the end

    @property
    def msgs_per_s(self) -> float:
        return self.acked / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def points_per_s(self) -> float:
        if not self.elapsed_s or not self.published:
            return 0.0
        return self.points * (self.acked / self.published) / self.elapsed_s

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "msgs_per_s": round(self.msgs_per_s, 1),
            "points_per_s": round(self.points_per_s, 1),
        }


Progress = Callable[[RunStats], None]


def _tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise InvalidInput(f"cannot use CA file {ca_file}: {e}", hint="give a PEM file") from e
    if insecure:  # a test broker with a self-signed certificate
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MqttFleet:
    """A :class:`Fleet` whose devices are live MQTT clients.

    >>> # async with MqttFleet(fleet, "mqtt://localhost:1883") as mf:
    >>> #     await mf.connect(); stats = await mf.run(duration=60)
    """

    def __init__(
        self,
        fleet: Fleet,
        broker: str | Broker,
        *,
        qos: int = 1,
        keepalive: int = 60,
        connect_workers: int = 16,
        max_unacked: int = 20_000,
        reconnect_after: float = 5.0,
        ca_file: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.fleet = fleet
        self.broker = broker if isinstance(broker, Broker) else Broker.parse(broker)
        self.qos = qos
        self.keepalive = keepalive
        self.max_unacked = max_unacked
        self._workers = connect_workers
        n = len(fleet.devices)
        self.stats = RunStats(devices=n)
        self._tls = _tls_context(ca_file, insecure) if self.broker.tls else None
        self._topics = [topics.telemetry(d.device_id) for d in fleet.devices]
        self._state = [_PENDING] * n
        self._clients: list[paho.Client] = [self._client(i) for i in range(n)]
        self._writing: set[int] = set()
        self.reconnect_after = reconnect_after
        self._lost_at: dict[int, float] = {}
        self._reopening: set[int] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._misc_next = 0

    # --- paho plumbing ------------------------------------------------------------------

    def _client(self, i: int) -> paho.Client:
        d = self.fleet.devices[i]
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=d.device_id,
            userdata=i,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        c.username_pw_set(d.device_id, d.secret)
        if self._tls is not None:
            c.tls_set_context(self._tls)  # one context for the fleet: 10,000 would cost seconds
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        c.on_socket_close = self._on_socket_close
        return c

    def _on_connect(self, client, i, flags, reason, props) -> None:
        if reason.is_failure:
            self._state[i] = _REFUSED
            self.stats.refused += 1
        else:
            if self._state[i] == _LOST:
                self.stats.reconnects += 1
                self._lost_at.pop(i, None)
            self._state[i] = _UP
            self.stats.connected += 1

    def _on_publish(self, client, i, mid, reason, props) -> None:
        self.stats.acked += 1

    def _on_disconnect(self, client, i, flags, reason, props) -> None:
        if self._state[i] == _UP:
            self._state[i] = _LOST
            self._lost_at[i] = time.monotonic()
            self.stats.connected -= 1
            self.stats.lost += 1
        elif self._state[i] == _PENDING:  # closed before CONNACK: refused at TCP/auth level
            self._state[i] = _REFUSED
            self.stats.refused += 1

    def _on_socket_close(self, client, i, sock) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
        self._writing.discard(i)

    def _readable(self, i: int) -> None:
        c = self._clients[i]
        c.loop_read(16)
        if self._tls is not None:
            # Decrypted bytes wait inside the SSL object, where epoll cannot see them.
            sock = c.socket()
            while isinstance(sock, ssl.SSLSocket) and sock.pending():
                c.loop_read(16)
                sock = c.socket()

    def _writable(self, i: int) -> None:
        c = self._clients[i]
        c.loop_write()
        if not c.want_write():
            sock = c.socket()
            if sock is not None:
                assert self._loop is not None  # set by connect()
                self._loop.remove_writer(sock)
            self._writing.discard(i)

    def _flush_later(self, i: int) -> None:
        """The socket buffer was full: finish the write when the socket can take more."""
        if i in self._writing:
            return
        sock = self._clients[i].socket()
        if sock is not None:
            assert self._loop is not None  # set by connect()
            self._writing.add(i)
            self._loop.add_writer(sock, self._writable, i)

    # --- lifecycle ----------------------------------------------------------------------

    async def connect(
        self, *, timeout: float = 120.0, on_progress: Progress | None = None
    ) -> RunStats:
        """Connect every device; returns when all are connected or refused, or at ``timeout``."""
        self._loop = loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        host, port, keepalive = self.broker.host, self.broker.port, self.keepalive
        failures: list[str] = []

        def open_one(i: int) -> int:
            try:
                self._clients[i].connect(host, port, keepalive)
                return i
            except (OSError, ValueError) as e:
                failures.append(f"{self.fleet.devices[i].device_id}: {e}")
                return -1

        window = self._workers * 8  # bound pending CONNECTs so the broker is not flooded
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="atoll-sim-connect")
        pending: set[asyncio.Future] = set()
        last = 0.0
        for i in range(len(self._clients)):
            while len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                self._register(done)
            pending.add(loop.run_in_executor(self._pool, open_one, i))
            if on_progress and time.perf_counter() - last > 0.25:
                last = time.perf_counter()
                on_progress(self.stats)
        if pending:
            done, _ = await asyncio.wait(pending)
            self._register(done)
        deadline = loop.time() + timeout
        while self._state.count(_PENDING) > len(failures) and loop.time() < deadline:
            if on_progress:
                on_progress(self.stats)
            await asyncio.sleep(0.05)
        self.stats.refused += len(failures)
        self.stats.connect_s = time.perf_counter() - t0
        if on_progress:
            on_progress(self.stats)
        if self.stats.connected == 0:
            why = failures[0] if failures else "every device was refused (check the credentials)"
            raise Unavailable(
                f"no simulated device could connect to {host}:{port}: {why}",
                hint="is the broker running, and do the devices have valid secrets?",
            )
        return self.stats

    def _register(self, done) -> None:
        for fut in done:
            i = fut.result()
            if i >= 0:
                self._attach(i)

    def _attach(self, i: int) -> None:
        """Watch a freshly opened client socket on the loop."""
        sock = self._clients[i].socket()
        if sock is not None:
            assert self._loop is not None  # set by connect()
            self._loop.add_reader(sock, self._readable, i)
            if self._clients[i].want_write():
                self._flush_later(i)

    async def run(
        self,
        *,
        duration: float | None = None,
        speed: float = 1.0,
        stop: asyncio.Event | None = None,
        on_progress: Progress | None = None,
    ) -> RunStats:
        """Publish live readings for ``duration`` virtual seconds (forever if ``None``).

        ``speed`` 1 follows the wall clock; 10 runs ten times faster; 0 sends as fast as the
        broker acknowledges (virtual time, for generating history).
        """
        loop = self._loop = asyncio.get_running_loop()
        fleet = self.fleet
        v0 = fleet.next_tick_time()
        w0 = loop.time()
        t0 = time.perf_counter()
        last = 0.0
        while stop is None or not stop.is_set():
            tv = fleet.next_tick_time()
            if duration is not None and tv - v0 >= duration:
                break
            delay = (w0 + (tv - v0) / speed - loop.time()) if speed > 0 else 0.0
            await asyncio.sleep(max(0.0, delay))
            await self._backpressure()
            self._send(fleet.tick())
            self._misc()
            self.stats.behind_s = max(0.0, -delay)
            self.stats.elapsed_s = time.perf_counter() - t0
            if on_progress and self.stats.elapsed_s - last > 0.25:
                last = self.stats.elapsed_s
                on_progress(self.stats)
        await self.drain()
        self.stats.elapsed_s = time.perf_counter() - t0
        if on_progress:
            on_progress(self.stats)
        return self.stats

    async def publish_history(
        self,
        until: float,
        step_s: float,
        *,
        per_message: int = 100,
        on_progress: Progress | None = None,
    ) -> RunStats:
        """Back-fill from the fleet's cursor to ``until``: batches (JSON arrays) per device."""
        self._loop = asyncio.get_running_loop()
        buffers: dict[int, list[dict]] = {}
        t0 = time.perf_counter()
        for readings in self.fleet.history(until, step_s):
            for r in readings:
                buf = buffers.setdefault(r.device, [])
                buf.append(r.payload())
                if len(buf) >= per_message:
                    self._publish(r.device, buf)
                    buffers[r.device] = []
            await self._backpressure()
            self._misc()
            if on_progress:
                self.stats.elapsed_s = time.perf_counter() - t0
                on_progress(self.stats)
        for i, buf in buffers.items():
            if buf:
                self._publish(i, buf)
        await self.drain()
        self.stats.elapsed_s = time.perf_counter() - t0
        return self.stats

    def _send(self, readings: list[Reading]) -> None:
        for r in readings:
            self._publish(r.device, r.payload())

    def _publish(self, i: int, payload: dict | list) -> None:
        if self._state[i] != _UP:
            self.stats.skipped += 1
            return
        c = self._clients[i]
        info = c.publish(self._topics[i], orjson.dumps(payload), self.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.stats.skipped += 1
            return
        self.stats.published += 1
        self.stats.points += (
            sum(len(p["values"]) for p in payload)
            if isinstance(payload, list)
            else len(payload["values"])
        )
        if self.qos == 0:
            self.stats.acked += 1
        if c.want_write():
            self._flush_later(i)

    async def _backpressure(self) -> None:
        while self.stats.published - self.stats.acked > self.max_unacked:
            await asyncio.sleep(0.005)

    def _misc(self) -> None:
        """Keep-alive pings: sweep a slice of the clients on every tick (all within ~5 s)."""
        n = len(self._clients)
        per_tick = max(1, int(n * self.fleet.slot_width / 5.0) + 1)
        start = self._misc_next
        for i in range(start, min(n, start + per_tick)):
            if self._state[i] == _UP:
                self._clients[i].loop_misc()
        self._misc_next = 0 if start + per_tick >= n else start + per_tick
        if self._lost_at:
            self._reconnect_lost()

    def _reconnect_lost(self) -> None:
        """Devices whose connection dropped try again every ``reconnect_after`` seconds."""
        now = time.monotonic()
        for i, since in list(self._lost_at.items()):
            if i in self._reopening or now - since < self.reconnect_after or self._pool is None:
                continue
            self._reopening.add(i)
            self._lost_at[i] = now  # next attempt, if this one fails, after another pause
            assert self._loop is not None  # set by connect()
            fut = self._loop.run_in_executor(self._pool, self._reopen, i)
            fut.add_done_callback(self._reopened)

    def _reopen(self, i: int) -> tuple[int, bool]:
        try:
            self._clients[i].reconnect()
            return i, True
        except (OSError, ValueError):
            return i, False

    def _reopened(self, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        i, ok = fut.result()
        self._reopening.discard(i)
        if ok and self._state[i] == _LOST:
            self._attach(i)

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every published message is acknowledged (or ``timeout``)."""
        deadline = time.perf_counter() + timeout
        while self.stats.acked < self.stats.published and time.perf_counter() < deadline:
            if self.stats.connected == 0:
                break
            await asyncio.sleep(0.01)
        return self.stats.acked >= self.stats.published

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for i, c in enumerate(self._clients):
            if self._state[i] == _UP:
                self._state[i] = _CLOSED
                c.disconnect()
        await asyncio.sleep(0)
        for c in self._clients:
            sock = c.socket()
            if sock is not None:
                if self._loop is not None:  # else never connected: nothing watched
                    with contextlib.suppress(Exception):
                        self._loop.remove_reader(sock)
                        self._loop.remove_writer(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        if self._loop is not None:
            await self.close()
