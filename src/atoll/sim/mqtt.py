"""Drive a simulated fleet over MQTT: one paho client per device, all on one asyncio loop.

No thread per device: every client's socket is registered with the event loop
(``add_reader``), paho is driven through its external-loop API (``loop_read``,
``loop_write``, ``loop_misc``), and publishing writes straight to the socket. Each device
connects with its own credentials (username = device id, password = its secret) and publishes
its readings as JSON to ``topics.telemetry(device_id)`` at QoS 1; a PUBACK counts as delivered.

Connecting. At most ``max_connecting`` devices wait for their CONNACK at once, and at most
``connect_rate`` attempts start per second when it is set (the TCP connect and CONNECT run on a
small thread pool, so a remote broker's round trip does not serialise 10,000 connects). An
attempt that fails for a reason that may pass (connection refused or reset, closed before
CONNACK, no CONNACK within ``connack_timeout``, "server unavailable") is retried after
``retry_delay`` × 1, 2, 4, 8 s; then the device is given up. A CONNACK that refuses the
credentials, or an untrusted certificate, is final.

Source addresses. A broker may cap the connections it takes from one address (Atoll's embedded
broker: 1,000 by default), which no real fleet meets but one simulator does. Against a broker on
the IPv4 loopback, devices therefore connect from 127.0.0.1, 127.0.0.2, ... (``per_address`` each;
every 127/8 address is this host on Linux), as devices on many hosts would; where the system
refuses such an address (not Linux) every device connects from the default one.
``source_addresses`` names the addresses to spread over instead.

Upkeep. From the first connect until :meth:`MqttFleet.close`, a task on the loop sends the
keep-alive pings (paho ``loop_misc``) of every connected client, several times per keep-alive
period, whatever else the fleet is doing: waiting for others to connect, for PUBACKs, or for
nothing. It also expires CONNACK waits and reconnects the connections the broker closed (with
the same back-off, for as long as the fleet runs; counted in ``lost`` and ``reconnects``).

Nothing waits forever: when nothing moves for ``stall_s`` (no device connected or given up
while connecting; no PUBACK while messages are outstanding or no device is connected while
publishing), the phase ends and ``RunStats.unfinished`` says what could not be done. Both
phases also end when their ``stop`` event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Self
from urllib.parse import urlparse

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.sim.fleet import Fleet, Reading

# A device's connection, as the fleet sees it.
_IDLE = 0  # not tried yet, or waiting for its next attempt
_CONNECTING = 1  # TCP connect and CONNECT sent, waiting for the CONNACK
_UP = 2
_REFUSED = 3  # the broker said no to its credentials, or TLS failed: final
_FAILED = 4  # gave up after the retries
_LOST = 5  # was connected, the broker closed it: reconnecting
_CLOSED = 6  # closed by us

#: CONNACK reason codes worth another try (MQTT 5 numbering, as paho reports them).
_TRANSIENT_CONNACK = {0x88, 0x89}  # server unavailable, server busy

#: Retries of a connect attempt: ``retry_delay`` times these.
_BACKOFF = (1, 2, 4, 8)


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
    connected: int = 0  # connected now
    refused: int = 0  # devices the broker refused for good (credentials, TLS)
    failed: int = 0  # devices given up after their retries (no answer, closed, unreachable)
    retries: int = 0  # connect attempts repeated after a failure that may pass
    closed_early: int = 0  # attempts the broker closed before its CONNACK
    timeouts: int = 0  # attempts without a CONNACK in time
    connect_s: float = 0.0
    published: int = 0
    acked: int = 0
    points: int = 0  # readings' values in published messages
    skipped: int = 0  # readings of devices that are not connected
    lost: int = 0  # connections the broker closed (or that went silent) after CONNACK
    reconnects: int = 0  # of those, connected again
    elapsed_s: float = 0.0
    behind_s: float = 0.0  # how far the sender lagged behind schedule at the end
    interrupted: bool = False  # a phase ended because its stop event was set
    unfinished: list[str] = field(default_factory=list)  # what could not be done, and why

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
        max_connecting: int = 32,
        connect_rate: float | None = None,
        connack_timeout: float = 30.0,
        retry_delay: float = 1.0,
        stall_s: float = 120.0,
        max_unacked: int = 20_000,
        ca_file: str | None = None,
        insecure: bool = False,
        source_addresses: Sequence[str] | None = None,
        per_address: int = 500,
    ) -> None:
        if keepalive < 0:
            raise InvalidInput(f"keep-alive must be >= 0 seconds, got {keepalive}")
        self.fleet = fleet
        self.broker = broker if isinstance(broker, Broker) else Broker.parse(broker)
        self.qos = qos
        self.keepalive = keepalive
        self.max_unacked = max_unacked
        self.max_connecting = max(1, max_connecting)
        if connect_rate is not None and not connect_rate > 0:
            raise InvalidInput(f"connect rate must be > 0 per second, got {connect_rate}")
        self.connect_rate = connect_rate
        self._next_start = 0.0  # with connect_rate: when the next attempt may start
        self.connack_timeout = connack_timeout
        self.retry_delay = retry_delay
        self.stall_s = stall_s
        self._workers = connect_workers
        n = len(fleet.devices)
        self.stats = RunStats(devices=n)
        self._tls = _tls_context(ca_file, insecure) if self.broker.tls else None
        self._topics = [topics.telemetry(d.device_id) for d in fleet.devices]
        if source_addresses is None:
            source_addresses = _loopback_sources(self.broker.host, n, per_address)
        self.source_addresses = list(source_addresses)
        self._per_address = max(1, per_address)
        self._state = [_IDLE] * n
        self._clients: list[paho.Client] = [self._client(i) for i in range(n)]
        self._writing: set[int] = set()
        # Connecting: devices never tried (in order), retries by due time, attempts in flight.
        self._queue: deque[int] = deque()
        self._retry: list[tuple[float, int]] = []
        self._deadline: dict[int, float] = {}  # CONNACK deadline of each attempt in flight
        self._attempt = [0] * n  # attempts ever started (tells a stale callback from a live one)
        self._tries = [0] * n  # attempts since the device was last connected
        self._ever_up = bytearray(n)
        self._sent_at = [0.0] * n  # when each device last sent a packet we know of (monotonic)
        self._undecided = 0  # devices not yet connected once, refused or given up
        self._first_failure: str | None = None  # of any attempt
        self._first_refusal: str | None = None
        self._first_given_up: str | None = None
        self._give_up_new = False  # stop trying devices that never connected
        self._progress_at = time.monotonic()
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._upkeep: asyncio.Task | None = None
        self._ended = False  # the publishing phase running must end (see _stop_for)

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
        c.connect_timeout = 5.0
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        c.on_socket_close = self._on_socket_close
        return c

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _on_connect(self, client, i, flags, reason, props) -> None:
        # Called from loop_read, on the loop.
        if self._state[i] != _CONNECTING:
            return
        if reason.is_failure:
            final = reason.value not in _TRANSIENT_CONNACK
            self._attempt_failed(i, f"CONNACK: {reason}", final=final)
            return
        self._end_attempt(i)
        self._state[i] = _UP
        self._sent_at[i] = time.monotonic()
        self.stats.connected += 1
        self._tries[i] = 0
        if self._ever_up[i]:
            self.stats.reconnects += 1
        else:
            self._ever_up[i] = 1
            self._undecided -= 1
        self._progress_at = time.monotonic()

    def _on_publish(self, client, i, mid, reason, props) -> None:
        self.stats.acked += 1
        self._progress_at = time.monotonic()

    def _on_disconnect(self, client, i, flags, reason, props) -> None:
        # paho may call this on a connect worker thread (CONNECT could not be written).
        attempt = self._attempt[i]
        if self._on_loop():
            self._closed(i, attempt)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._closed, i, attempt)

    def _closed(self, i: int, attempt: int) -> None:
        if attempt != self._attempt[i]:
            return  # an earlier attempt's news
        state = self._state[i]
        if state == _UP:
            self._state[i] = _LOST
            self.stats.connected -= 1
            self.stats.lost += 1
            self._schedule(i, self.retry_delay)
        elif state == _CONNECTING:
            self.stats.closed_early += 1
            self._attempt_failed(i, "closed by the broker before its CONNACK")

    def _on_socket_close(self, client, i, sock) -> None:
        # Off the loop the socket was never watched (a connect worker closing its own).
        if self._loop is not None and self._on_loop():
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
                assert self._loop is not None  # set by _start()
                self._loop.remove_writer(sock)
            self._writing.discard(i)

    def _flush_later(self, i: int) -> None:
        """The socket buffer was full: finish the write when the socket can take more."""
        if i in self._writing:
            return
        sock = self._clients[i].socket()
        if sock is not None:
            assert self._loop is not None  # set by _start()
            self._writing.add(i)
            self._loop.add_writer(sock, self._writable, i)

    # --- connecting -----------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop; start the connect pool and the upkeep task once."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._loop_thread = loop, threading.get_ident()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="atoll-sim-connect")
        if self._upkeep is None or self._upkeep.done():
            self._upkeep = loop.create_task(self._keep_up(), name="atoll-sim-upkeep")
        return loop

    def _schedule(self, i: int, delay: float) -> None:
        heapq.heappush(self._retry, (time.monotonic() + delay, i))

    def _pump(self) -> None:
        """Start attempts while fewer than ``max_connecting`` wait for a CONNACK: retries and
        reconnects when due, then devices never tried."""
        if self._pool is None or self._loop is None:
            return
        now = time.monotonic()
        while len(self._deadline) < self.max_connecting:
            if self.connect_rate is not None:
                if now < self._next_start:
                    return
                self._next_start = max(self._next_start, now - 0.1) + 1 / self.connect_rate
            if self._retry and self._retry[0][0] <= now:
                _, i = heapq.heappop(self._retry)
            elif self._queue and not self._give_up_new:
                i = self._queue.popleft()
            else:
                return
            if self._state[i] not in (_IDLE, _LOST):
                continue  # connected or decided meanwhile
            if self._give_up_new and not self._ever_up[i]:
                continue
            self._begin_attempt(i, now)

    def _begin_attempt(self, i: int, now: float) -> None:
        assert self._pool is not None and self._loop is not None  # set by _start()
        self._state[i] = _CONNECTING
        self._attempt[i] += 1
        self._tries[i] += 1
        self._deadline[i] = now + self.connack_timeout
        host, port, keepalive = self.broker.host, self.broker.port, self.keepalive
        client = self._clients[i]
        sources = self.source_addresses
        bind = sources[(i // self._per_address) % len(sources)] if sources else ""

        def open_one() -> None:
            client.connect(host, port, keepalive, bind_address=bind)

        fut = self._loop.run_in_executor(self._pool, open_one)
        fut.add_done_callback(partial(self._opened, i, self._attempt[i]))

    def _opened(self, i: int, attempt: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or attempt != self._attempt[i] or self._state[i] != _CONNECTING:
            return
        error = fut.exception()
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            error = None  # closed while CONNECT was being written: seen below, as closed
        if error is not None:
            # An untrusted certificate and bad arguments will fail the same way again; the
            # network may not (a connection reset during the TLS handshake is an SSLError too).
            final = isinstance(error, ssl.SSLCertVerificationError | ValueError)
            self._attempt_failed(i, str(error) or type(error).__name__, final=final)
            return
        sock = self._clients[i].socket()
        if sock is None:  # CONNECT could not be written: closed
            self.stats.closed_early += 1
            self._attempt_failed(i, "closed by the broker before its CONNACK")
            return
        assert self._loop is not None  # set by _start()
        self._loop.add_reader(sock, self._readable, i)
        if self._clients[i].want_write():
            self._flush_later(i)

    def _end_attempt(self, i: int) -> None:
        self._deadline.pop(i, None)
        if self._loop is not None:
            self._loop.call_soon(self._pump)  # a place is free

    def _attempt_failed(self, i: int, why: str, *, final: bool = False) -> None:
        self._end_attempt(i)
        why = f"{self.fleet.devices[i].device_id}: {why}"
        if self._first_failure is None:
            self._first_failure = why
        if self._ever_up[i]:  # reconnecting: keep trying while the fleet runs
            self._state[i] = _LOST
            self._schedule(i, self.retry_delay * _BACKOFF[min(self._tries[i], 4) - 1])
        elif final:
            self._state[i] = _REFUSED
            self.stats.refused += 1
            self._first_refusal = self._first_refusal or why
            self._undecided -= 1
            self._progress_at = time.monotonic()
        elif self._tries[i] > len(_BACKOFF):
            self._state[i] = _FAILED
            self.stats.failed += 1
            self._first_given_up = self._first_given_up or why
            self._undecided -= 1
            self._progress_at = time.monotonic()
        else:
            self._state[i] = _IDLE
            self.stats.retries += 1
            self._schedule(i, self.retry_delay * _BACKOFF[self._tries[i] - 1])

    def _expire(self, now: float) -> None:
        """Attempts without a CONNACK in time: close them, and try again later."""
        late = [i for i, t in self._deadline.items() if t <= now]
        for i in late:
            c = self._clients[i]
            sock = c.socket()
            if sock is not None:
                self._on_socket_close(c, i, sock)
                with contextlib.suppress(OSError):
                    sock.close()
            self.stats.timeouts += 1
            self._attempt_failed(
                i, f"no CONNACK within {self.connack_timeout:g} s (no answer from the broker)"
            )

    async def _keep_up(self) -> None:
        """The upkeep task: pings, CONNACK deadlines, retries and reconnects."""
        assert self._loop is not None  # set by _start()
        loop = self._loop
        period = min(1.0, self.keepalive / 4) if self.keepalive else 1.0
        while True:
            t = loop.time()
            self._expire(time.monotonic())
            self._pump()
            if self.keepalive:
                await self._ping()
            await asyncio.sleep(max(0.01, period - (loop.time() - t)))

    async def _ping(self, chunk: int = 1000) -> None:
        """A PINGREQ from every connected client quiet for half a keep-alive period, and
        ``loop_misc``, which closes a client whose broker did not answer within a period.

        paho itself pings only after a whole period of quiet; a broker closes the connection
        after 1.5 periods, so a busy event loop (or broker) had half a period to spare. Half a
        period earlier leaves a whole one.

        ``loop_misc`` acts only when a ping is unanswered or nothing went out or came in for a
        period; it is called only then (the same tests, without its locks and calls): 10,000
        calls a second cost the simulator ~50 ms of CPU a second, a fifth of its work while
        publishing 2,000 messages a second (#16)."""
        state, clients, sent_at = self._state, self._clients, self._sent_at
        keepalive = self.keepalive
        half = keepalive / 2
        for start in range(0, len(clients), chunk):
            now = time.monotonic()
            for i in range(start, min(len(clients), start + chunk)):
                if state[i] == _UP:
                    c = clients[i]
                    if now - sent_at[i] >= half and not c._ping_t:  # none unanswered
                        sent_at[i] = now
                        _pingreq(c, now)
                    if (
                        c._ping_t
                        or now - c._last_msg_out >= keepalive
                        or now - c._last_bytes_received >= keepalive
                    ):
                        c.loop_misc()
                    if c.want_write():
                        self._flush_later(i)
            await asyncio.sleep(0)

    async def connect(
        self,
        *,
        timeout: float | None = None,
        stop: asyncio.Event | None = None,
        on_progress: Progress | None = None,
    ) -> RunStats:
        """Connect every device. Returns when each is connected, refused or given up, when
        ``stop`` is set, when nothing has moved for ``stall_s``, or at ``timeout``; the devices
        left are then no longer tried (``unfinished`` says how many). Connected devices stay
        connected meanwhile: the upkeep task pings them."""
        loop = self._start()
        t0 = time.perf_counter()
        if not self._queue and not self._undecided:
            self._undecided = sum(1 for s in self._state if s == _IDLE)
            self._queue.extend(i for i, s in enumerate(self._state) if s == _IDLE)
        self._progress_at = time.monotonic()
        self._pump()
        deadline = None if timeout is None else loop.time() + timeout
        why = None
        while self._undecided > 0:
            if stop is not None and stop.is_set():
                self.stats.interrupted = True
                break
            if time.monotonic() - self._progress_at > self.stall_s:
                why = f"no device connected or was refused for {self.stall_s:g} s"
                break
            if deadline is not None and loop.time() >= deadline:
                why = f"not done within {timeout:g} s"
                break
            if on_progress:
                on_progress(self.stats)
            await asyncio.sleep(0.05)
            self._pump()
        if self._undecided > 0:
            self._give_up_new = True  # those still in flight may yet connect
            if why is not None:
                self.stats.unfinished.append(
                    f"{self._undecided:,} devices not connected: {why}"
                    + (f" (first failure: {self._first_failure})" if self._first_failure else "")
                )
        if self.stats.refused:
            self.stats.unfinished.append(
                f"{self.stats.refused:,} devices refused by the broker"
                f" (first: {self._first_refusal})"
            )
        if self.stats.failed:
            self.stats.unfinished.append(
                f"{self.stats.failed:,} devices given up after {len(_BACKOFF)} retries each"
                f" (first: {self._first_given_up})"
            )
        self.stats.connect_s = time.perf_counter() - t0
        if on_progress:
            on_progress(self.stats)
        if self.stats.connected == 0 and not self.stats.interrupted:
            host, port = self.broker.host, self.broker.port
            first = self._first_failure or "no answer from the broker"
            raise Unavailable(
                f"no simulated device could connect to {host}:{port}: {first}",
                hint="is the broker running, and do the devices have valid secrets?",
            )
        return self.stats

    # --- publishing -----------------------------------------------------------------------

    def _stalled(self) -> str | None:
        """Why publishing cannot go on, once nothing has moved for ``stall_s``."""
        if time.monotonic() - self._progress_at <= self.stall_s:
            return None
        s = self.stats
        if s.connected == 0:
            return f"no device connected for {self.stall_s:g} s"
        if s.published > s.acked:
            return f"no PUBACK for {self.stall_s:g} s, {s.published - s.acked:,} messages unacked"
        self._progress_at = time.monotonic()  # idle, not stuck: a slow rate
        return None

    def _stop_for(self, stop: asyncio.Event | None) -> bool:
        """Whether the publishing phase must end now (recording why, once)."""
        if self._ended:
            return True
        if stop is not None and stop.is_set():
            self.stats.interrupted = self._ended = True
            return True
        why = self._stalled()
        if why is not None:
            self.stats.unfinished.append(f"stopped publishing: {why}")
            self._ended = True
            return True
        return False

    async def run(
        self,
        *,
        duration: float | None = None,
        speed: float = 1.0,
        stop: asyncio.Event | None = None,
        on_progress: Progress | None = None,
    ) -> RunStats:
        """Publish live readings for ``duration`` virtual seconds (forever if ``None``), until
        ``stop`` is set, or until publishing stalls (see the module's doc).

        ``speed`` 1 follows the wall clock; 10 runs ten times faster; 0 sends as fast as the
        broker acknowledges (virtual time, for generating history).
        """
        loop = self._start()
        fleet = self.fleet
        v0 = fleet.next_tick_time()
        w0 = loop.time()
        t0 = time.perf_counter()
        last = 0.0
        self._progress_at, self._ended = time.monotonic(), False
        while not self._stop_for(stop):
            tv = fleet.next_tick_time()
            if duration is not None and tv - v0 >= duration:
                break
            delay = (w0 + (tv - v0) / speed - loop.time()) if speed > 0 else 0.0
            if delay > 0:
                await _sleep_or_stop(delay, stop)
                continue
            if not await self._backpressure(stop):
                continue  # the loop's condition says why
            self._send(fleet.tick())
            self.stats.behind_s = max(0.0, -delay)
            self.stats.elapsed_s = time.perf_counter() - t0
            if on_progress and self.stats.elapsed_s - last > 0.25:
                last = self.stats.elapsed_s
                on_progress(self.stats)
        await self.drain(timeout=2.0 if self.stats.interrupted else 30.0, stop=stop)
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
        stop: asyncio.Event | None = None,
        on_progress: Progress | None = None,
    ) -> RunStats:
        """Back-fill from the fleet's cursor to ``until``: batches (JSON arrays) per device."""
        self._start()
        buffers: dict[int, list[dict]] = {}
        t0 = time.perf_counter()
        self._progress_at, self._ended = time.monotonic(), False
        for readings in self.fleet.history(until, step_s):
            for r in readings:
                buf = buffers.setdefault(r.device, [])
                buf.append(r.payload())
                if len(buf) >= per_message:
                    self._publish(r.device, buf)
                    buffers[r.device] = []
            if not await self._backpressure(stop):
                break
            if on_progress:
                self.stats.elapsed_s = time.perf_counter() - t0
                on_progress(self.stats)
        else:
            for i, buf in buffers.items():
                if buf:
                    self._publish(i, buf)
        await self.drain(timeout=2.0 if self.stats.interrupted else 30.0, stop=stop)
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
        self._sent_at[i] = time.monotonic()
        self.stats.points += (
            sum(len(p["values"]) for p in payload)
            if isinstance(payload, list)
            else len(payload["values"])
        )
        if self.qos == 0:
            self.stats.acked += 1
        if c.want_write():
            self._flush_later(i)

    async def _backpressure(self, stop: asyncio.Event | None) -> bool:
        """Wait while too many messages are unacknowledged; False when the phase must end."""
        while self.stats.published - self.stats.acked > self.max_unacked:
            if self._stop_for(stop):
                return False
            await asyncio.sleep(0.005)
        return True

    async def drain(self, timeout: float = 30.0, stop: asyncio.Event | None = None) -> bool:
        """Wait until every published message is acknowledged (or ``timeout``, or no device is
        connected). A ``stop`` set while draining cuts the wait to a second."""
        deadline = time.perf_counter() + timeout
        while self.stats.acked < self.stats.published and time.perf_counter() < deadline:
            if self.stats.connected == 0:
                break
            if stop is not None and stop.is_set():
                deadline = min(deadline, time.perf_counter() + 1.0)
            await asyncio.sleep(0.01)
        return self.stats.acked >= self.stats.published

    async def close(self) -> None:
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
            self._upkeep = None
        if self._pool is not None:
            # Connects in flight end within their connect timeout; nobody waits for them.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for i, c in enumerate(self._clients):
            if self._state[i] == _UP:
                self._state[i] = _CLOSED
                c.disconnect()
            else:
                self._state[i] = _CLOSED
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


def _pingreq(client: paho.Client, now: float) -> None:
    """Send a PINGREQ now, as paho's keep-alive check does (paho has no public call for it):
    the broker then has a keep-alive period to answer before ``loop_misc`` gives up. Callers
    send none while one is unanswered (``_ping_t``), or the wait would start over each time
    and a broker that stopped answering would never be noticed."""
    client._send_pingreq()
    with client._msgtime_mutex:
        client._last_bytes_received = now


def _loopback_sources(host: str, devices: int, per_address: int) -> list[str]:
    """127.0.0.1, 127.0.0.2, ... (``per_address`` devices each) for a broker on the IPv4
    loopback, when this system lets a socket use them; else none (the system chooses)."""
    try:
        broker = ipaddress.IPv4Address("127.0.0.1" if host == "localhost" else host)
    except ValueError:
        return []  # a name (not looked up here) or IPv6
    count = -(-devices // max(1, per_address))
    if not broker.is_loopback or count <= 1:
        return []
    first = ipaddress.IPv4Address("127.0.0.1")
    addresses = [str(first + k) for k in range(min(count, 254))]
    with socket.socket() as probe:
        try:
            probe.bind((addresses[-1], 0))
        except OSError:
            return []  # only 127.0.0.1 is configured (macOS, BSD)
    return addresses


async def _sleep_or_stop(delay: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(delay)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
