"""Which connections the embedded broker holds, and for how long before CONNECT.

Enforced on the listening socket itself, before asyncio makes a transport of a connection:
``Admission.listen`` returns a socket whose ``accept`` closes a connection over a cap at once
(no TLS handshake, no WebSocket handshake, no amqtt session), so a flood of connections costs
an ``accept`` and a ``close`` each and never eats the file descriptors the HTTP API and the
store need. The same socket serves every listener (tcp, tls, ws, wss).

Caps (``AdmissionLimits``): connections in total, per remote address, and *unauthenticated* ones
(accepted, no CONNACK yet), in total and per remote address, so that idle sockets from one address
cannot take every place a connecting device needs. An unauthenticated connection must have sent its
whole CONNECT within ``connect_timeout_s`` of being accepted (TLS and WebSocket handshakes
included), else it is shut down. What the broker does with the first packet (must be a CONNECT no
larger than ``max_connect_bytes``) is in ``atoll.ingest.connect``.

Every refusal is counted (``Admission.refused`` by reason, and the ``on_refused`` callback:
the pipeline's rejection counters); the log lines are rate-limited (``atoll.ingest.log_limit``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Refusal reasons (counted like the telemetry reasons, for the device "(anonymous)").
TOO_MANY_CONNECTIONS = "too_many_connections"
TOO_MANY_FROM_ADDRESS = "too_many_connections_from_address"
TOO_MANY_UNAUTHENTICATED = "too_many_unauthenticated"
TOO_MANY_UNAUTHENTICATED_FROM_ADDRESS = "too_many_unauthenticated_from_address"
CONNECT_TIMEOUT = "connect_timeout"

#: File descriptors kept for everything that is not an MQTT connection (HTTP API, store,
#: registry, worker threads, log files): at least this many, or a quarter of the limit.
FD_RESERVE = 256
MAX_DERIVED_CONNECTIONS = 50_000


@dataclass(frozen=True)
class AdmissionLimits:
    connect_timeout_s: float = 10.0
    max_connect_bytes: int = 64 * 1024
    max_connections: int = 1024
    max_connections_per_address: int = 1000
    max_unauthenticated: int = 256
    max_unauthenticated_per_address: int = 64

    @classmethod
    def of(cls, settings: Any, fd_limit: int | None = None) -> AdmissionLimits:
        """From ``Settings``; caps left unset are derived from the file-descriptor limit."""
        total = settings.mqtt_max_connections
        if total is None:
            total = derived_max_connections(fd_limit or fd_soft_limit())
        unauthenticated = settings.mqtt_max_unauthenticated
        if unauthenticated is None:
            unauthenticated = min(1024, max(16, total // 4))
        unauthenticated = min(unauthenticated, total)
        per_address = settings.mqtt_max_unauthenticated_per_address
        if per_address is None:
            per_address = max(4, unauthenticated // 4)
        return cls(
            connect_timeout_s=settings.mqtt_connect_timeout_s,
            max_connect_bytes=settings.mqtt_max_connect_bytes,
            max_connections=total,
            max_connections_per_address=settings.mqtt_max_connections_per_address,
            max_unauthenticated=unauthenticated,
            max_unauthenticated_per_address=min(per_address, unauthenticated),
        )


def derived_max_connections(fd_limit: int) -> int:
    """MQTT connections that leave ``FD_RESERVE`` (or a quarter) of ``fd_limit`` to the rest.

    >>> derived_max_connections(1024), derived_max_connections(20_000)
    (768, 15000)
    """
    return max(16, min(MAX_DERIVED_CONNECTIONS, fd_limit - max(FD_RESERVE, fd_limit // 4)))


def fd_soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (a default soft limit of 1,024
    is far below what a broker needs); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.info("could not raise the open-file limit from %d to %d: %s", soft, hard, e)
    return fd_soft_limit()


# Phases of an admitted connection.
AWAITING_CONNECT = 0  # accepted; counts as unauthenticated and against the CONNECT deadline
AUTHENTICATING = 1  # CONNECT read, credentials being checked; still unauthenticated
ESTABLISHED = 2  # CONNACK accepted


class _Connection(socket.socket):
    """An accepted socket that gives its place back when it is closed (by its transport)."""

    def __init__(
        self, admission: Admission, address: str, family: int, type: int, proto: int, fileno: int
    ) -> None:
        super().__init__(family, type, proto, fileno=fileno)
        self.admission = admission
        self.address = address
        self.accepted = time.monotonic()
        self.phase = AWAITING_CONNECT
        self.released = False

    def close(self) -> None:
        if not self.released:
            self.released = True
            self.admission._release(self)
        super().close()


class _GatedSocket(socket.socket):
    """A listening socket whose ``accept`` (what asyncio's accept loop calls) admits or closes."""

    admission: Admission

    def accept(self) -> tuple[socket.socket, Any]:
        while True:  # BlockingIOError ends it: asyncio takes that for "no more connections"
            fd, peer = self._accept()  # type: ignore[attr-defined]
            address = peer[0] if isinstance(peer, tuple) else str(peer)
            conn = _Connection(self.admission, address, self.family, self.type, self.proto, fd)
            if self.admission._admit(conn):
                return conn, peer


class Admission:
    """Connection caps and the CONNECT deadline for all of a broker's listeners."""

    def __init__(
        self, limits: AdmissionLimits, on_refused: Callable[[str, str], None] | None = None
    ) -> None:
        self.limits = limits
        self.on_refused = on_refused
        self.refused: Counter[str] = Counter()
        self._open: dict[int, _Connection] = {}  # by file descriptor
        self._by_address: Counter[str] = Counter()
        self._unauthenticated = 0
        self._unauthenticated_by_address: Counter[str] = Counter()

    # -- state -----------------------------------------------------------------------------

    @property
    def open(self) -> int:
        return len(self._open)

    @property
    def unauthenticated(self) -> int:
        return self._unauthenticated

    def from_address(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def stats(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "unauthenticated": self._unauthenticated,
            "refused": dict(self.refused),
        }

    # -- listening -------------------------------------------------------------------------

    def listen(self, host: str | None, port: int) -> socket.socket:
        """A bound, listening socket for ``asyncio.start_server(sock=...)`` or
        ``websockets.serve(sock=...)``. Raises ``OSError`` (e.g. port in use)."""
        family, kind, proto, _, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = _GatedSocket(family, kind, proto)
        sock.admission = self
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    # -- phases (called by the broker with the connection's file descriptor) --------------

    def connect_read(self, fd: int) -> None:
        """The whole CONNECT arrived: the deadline no longer applies."""
        conn = self._open.get(fd)
        if conn is not None and conn.phase == AWAITING_CONNECT:
            conn.phase = AUTHENTICATING

    def authenticated(self, fd: int) -> None:
        conn = self._open.get(fd)
        if conn is not None and conn.phase != ESTABLISHED:
            conn.phase = ESTABLISHED
            self._unauthenticated -= 1
            _decrement(self._unauthenticated_by_address, conn.address)

    def refuse(self, reason: str, message: str) -> None:
        self.refused[reason] += 1
        if self.on_refused is not None:
            self.on_refused(reason, message)

    # -- the CONNECT deadline --------------------------------------------------------------

    def expire(self, now: float | None = None) -> int:
        """Shut down connections that have not sent their CONNECT in time; their transports
        see the end of the stream and close (and release their place)."""
        now = time.monotonic() if now is None else now
        deadline = now - self.limits.connect_timeout_s
        late = [
            c for c in self._open.values() if c.phase == AWAITING_CONNECT and c.accepted < deadline
        ]
        for conn in late:
            conn.phase = AUTHENTICATING  # shut down once
            self.refuse(
                CONNECT_TIMEOUT,
                f"no CONNECT within {self.limits.connect_timeout_s:g} s from {conn.address}",
            )
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        return len(late)

    async def run(self) -> None:
        """Enforce the CONNECT deadline until cancelled."""
        interval = min(1.0, max(0.05, self.limits.connect_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.expire()

    # -- accept and close ------------------------------------------------------------------

    def _admit(self, conn: _Connection) -> bool:
        limits = self.limits
        reason = None
        if len(self._open) >= limits.max_connections:
            reason = TOO_MANY_CONNECTIONS
            what = f"{limits.max_connections} connections open (ATOLL_MQTT_MAX_CONNECTIONS)"
        elif self._by_address.get(conn.address, 0) >= limits.max_connections_per_address:
            reason = TOO_MANY_FROM_ADDRESS
            what = (
                f"{limits.max_connections_per_address} connections open from {conn.address}"
                " (ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS)"
            )
        elif self._unauthenticated >= limits.max_unauthenticated:
            reason = TOO_MANY_UNAUTHENTICATED
            what = f"{limits.max_unauthenticated} connections waiting for CONNACK"
        elif (
            self._unauthenticated_by_address.get(conn.address, 0)
            >= limits.max_unauthenticated_per_address
        ):
            reason = TOO_MANY_UNAUTHENTICATED_FROM_ADDRESS
            what = (
                f"{limits.max_unauthenticated_per_address} connections from {conn.address} "
                "waiting for CONNACK"
            )
        if reason is not None:
            conn.released = True  # never counted
            try:
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            except OSError:
                pass
            socket.socket.close(conn)  # with SO_LINGER 0: a reset, no TIME_WAIT kept here
            self.refuse(reason, f"connection from {conn.address} closed: {what}")
            return False
        self._open[conn.fileno()] = conn
        self._by_address[conn.address] += 1
        self._unauthenticated += 1
        self._unauthenticated_by_address[conn.address] += 1
        return True

    def _release(self, conn: _Connection) -> None:
        fd = conn.fileno()
        if self._open.get(fd) is not conn:
            return
        del self._open[fd]
        _decrement(self._by_address, conn.address)
        if conn.phase != ESTABLISHED:
            self._unauthenticated -= 1
            _decrement(self._unauthenticated_by_address, conn.address)


def _decrement(counter: Counter[str], key: str) -> None:
    n = counter[key] - 1
    if n > 0:
        counter[key] = n
    else:
        del counter[key]
