"""Connection hygiene of the embedded broker: the CONNECT deadline, the first packet, and the
caps on connections in total, per address and before CONNACK, on every listener, while an
authenticated device keeps publishing and the HTTP API answers. Real sockets throughout."""

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import pytest
import websockets.sync.client as ws_client
from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from websockets.exceptions import ConnectionClosed

from atoll.config import Settings
from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.platform import Platform
from tests.ingest.conftest import FAST_HASHER, Fleet, close, connect
from tests.ingest.test_listeners import pki  # noqa: F401 - the module's CA fixture

END = 2**62
LISTENERS = ("default", "tls", "ws", "wss")


@contextlib.asynccontextmanager
async def platform(tmp_path, **settings):
    s = Settings(home=tmp_path / "home", http_port=0, mqtt_port=0, services=[], **settings)
    p = Platform(s, password_hasher=FAST_HASHER)
    await p.start()
    try:
        yield Fleet(p)
    finally:
        await p.stop()


def raw(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A bare TCP connection from ``source`` (any 127.0.0.0/8 address reaches loopback)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s.settimeout(10)
    return s


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def connack(port: int, device: str, secret: str) -> bytes:
    """The broker's answer to a CONNECT as ``device`` (clean session, keep-alive 30 s)."""
    variable = ConnectVariableHeader(connect_flags=0xC2, keep_alive=30)
    wire = ConnectPacket(
        variable_header=variable, payload=ConnectPayload(device, username=device, password=secret)
    ).to_bytes()
    with raw(port) as s:
        s.sendall(wire)
        return s.recv(4)


def refused(port: int, source: str) -> bool:
    """A connection from ``source`` is closed (reset) as soon as the broker accepts it."""
    try:
        s = raw(port, source)
    except ConnectionResetError:  # the reset can beat connect() returning, under load
        return True
    return closed_within(s, 5) is not None


def closed_within(s, seconds: float) -> float | None:
    """Seconds until the peer closed ``s`` (EOF or reset), or None if it stayed open."""
    t0 = time.monotonic()
    s.settimeout(seconds)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return time.monotonic() - t0
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return time.monotonic() - t0
    except TimeoutError:
        return None
    finally:
        s.close()


def idle_closed_within(listener: str, port: int, ca, seconds: float) -> float | None:
    """Open a connection on ``listener``, complete its TLS / WebSocket handshake if any, send
    nothing: seconds until the broker closed it, or None."""
    if listener in ("ws", "wss"):
        ctx = ssl.create_default_context(cafile=str(ca)) if listener == "wss" else None
        scheme = "wss" if listener == "wss" else "ws"
        conn = ws_client.connect(
            f"{scheme}://127.0.0.1:{port}/mqtt", subprotocols=["mqtt"], ssl=ctx
        )
        t0 = time.monotonic()
        try:
            while True:
                conn.recv(timeout=seconds)
        except ConnectionClosed:
            return time.monotonic() - t0
        except TimeoutError:
            return None
        finally:
            conn.close()
    s = raw(port)
    if listener == "tls":
        s = ssl.create_default_context(cafile=str(ca)).wrap_socket(s, server_hostname="127.0.0.1")
    return closed_within(s, seconds)


async def released(fleet, open_: int = 0) -> int:
    admission = fleet.platform.mqtt.admission
    for _ in range(100):
        if admission.open == open_:
            break
        await asyncio.sleep(0.02)
    return admission.open


async def health(fleet) -> int:
    async with httpx.AsyncClient(base_url=fleet.platform.http_url, timeout=10) as http:
        return (await http.get("/api/v1/health")).status_code


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_connection_without_connect_is_closed_after_the_timeout(tmp_path, pki, listener):  # noqa: F811
    async with platform(
        tmp_path,
        mqtt_connect_timeout_s=1.0,
        mqtt_tls_port=0,
        mqtt_ws_port=0,
        mqtt_wss_port=0,
        tls_cert=pki["cert"],
        tls_key=pki["key"],
    ) as fleet:
        took = await asyncio.to_thread(
            idle_closed_within, listener, fleet.platform.mqtt.ports[listener], pki["ca"], 15
        )
        assert took is not None, "an idle connection stayed open"
        stats = fleet.platform.pipeline.stats.by_reason
        assert stats.get("connect_timeout") == 1
        assert await released(fleet) == 0


@pytest.mark.parametrize(
    "first, reason",
    [
        (b"\xc0\x00", "not_connect"),  # PINGREQ
        (b"\x30\x05\x00\x01t{}", "not_connect"),  # PUBLISH
        (b"\x10\xff\xff\xff\x7f", "connect_too_large"),  # CONNECT declaring 256 MB, no body
    ],
)
async def test_a_first_packet_that_is_not_a_small_connect_is_closed_at_once(
    fleet_slow, first, reason
):
    s = await asyncio.to_thread(raw, fleet_slow.port)
    s.sendall(first)
    took = await asyncio.to_thread(closed_within, s, 10)
    assert took is not None and took < 5, "not closed (the CONNECT deadline here is 60 s)"
    assert fleet_slow.platform.pipeline.stats.by_reason.get(reason) == 1


@pytest.fixture
async def fleet_slow(tmp_path):
    async with platform(tmp_path, mqtt_connect_timeout_s=60.0) as fleet:
        yield fleet


class Device:
    """s1 publishing QoS 1 readings in a thread; ``acked`` grows while it is served."""

    def __init__(self, fleet) -> None:
        self.client, rc = connect(fleet.port, "s1", fleet.secrets["s1"], client_id="s1")
        assert rc is not None and not rc.is_failure
        self.acked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            info = self.client.publish(
                topics.telemetry("s1"), b'{"values": {"temperature": %d}}' % i, qos=1
            )
            info.wait_for_publish(10)
            if info.is_published():
                self.acked += 1
            i += 1

    async def still_acknowledged(self) -> bool:
        before = self.acked
        for _ in range(100):
            await asyncio.sleep(0.05)
            if self.acked > before + 5:
                return True
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        close(self.client)


async def test_caps_per_address_and_before_connack_while_a_device_publishes(tmp_path):
    async with platform(
        tmp_path,
        mqtt_connect_timeout_s=60.0,
        mqtt_max_connections=40,
        mqtt_max_connections_per_address=5,
        mqtt_max_unauthenticated=8,
        mqtt_max_unauthenticated_per_address=8,
    ) as fleet:
        device = await asyncio.to_thread(Device, fleet)
        try:
            port = fleet.port
            # One address: 5 connections held, the 6th closed as soon as it is accepted.
            held = [await asyncio.to_thread(raw, port, "127.0.0.2") for _ in range(5)]
            assert await asyncio.to_thread(refused, port, "127.0.0.2")
            # Before CONNACK: 3 more from other addresses fill the 8 unauthenticated places.
            held += [await asyncio.to_thread(raw, port, f"127.0.0.{3 + i}") for i in range(3)]
            assert await asyncio.to_thread(refused, port, "127.0.0.20")
            assert fleet.platform.mqtt.admission.unauthenticated == 8
            # Meanwhile the device is served, and so is the API.
            assert await device.still_acknowledged()
            assert await health(fleet) == 200
            by_reason = fleet.platform.pipeline.stats.by_reason
            assert by_reason["too_many_connections_from_address"] == 1
            assert by_reason["too_many_unauthenticated"] == 1
            # Places come back when connections end.
            for s in held:
                s.close()
            assert await released(fleet, 1) == 1  # the device
            assert fleet.platform.mqtt.admission.unauthenticated == 0
        finally:
            await asyncio.to_thread(device.stop)


async def test_idle_sockets_from_one_address_leave_places_for_devices_elsewhere(tmp_path):
    async with platform(
        tmp_path,
        mqtt_connect_timeout_s=60.0,
        mqtt_max_connections=40,
        mqtt_max_unauthenticated=8,
        mqtt_max_unauthenticated_per_address=3,
    ) as fleet:
        port = fleet.port
        held = [await asyncio.to_thread(raw, port, "127.0.0.2") for _ in range(3)]
        assert await asyncio.to_thread(refused, port, "127.0.0.2")
        assert fleet.platform.pipeline.stats.by_reason["too_many_unauthenticated_from_address"] == 1
        # Another address still has places: a device connects and is served.
        device = await asyncio.to_thread(Device, fleet)
        try:
            assert await device.still_acknowledged()
        finally:
            await asyncio.to_thread(device.stop)
        # An authenticated connection no longer holds an unauthenticated place of its address.
        c, rc = await asyncio.to_thread(connect, port, "s2", fleet.secrets["s2"], "s2")
        assert rc is not None and not rc.is_failure
        assert fleet.platform.mqtt.admission.unauthenticated == 3
        await asyncio.to_thread(close, c)
        for s in held:
            s.close()
        assert await released(fleet) == 0
        assert fleet.platform.mqtt.admission.unauthenticated == 0


async def test_total_cap_refuses_new_connections_while_a_device_publishes(tmp_path):
    async with platform(
        tmp_path, mqtt_connect_timeout_s=60.0, mqtt_max_connections=3, mqtt_max_unauthenticated=3
    ) as fleet:
        device = await asyncio.to_thread(Device, fleet)
        try:
            c2, rc2 = await asyncio.to_thread(connect, fleet.port, "s2", fleet.secrets["s2"], "s2")
            assert rc2 is not None and not rc2.is_failure
            held = await asyncio.to_thread(raw, fleet.port, "127.0.0.2")  # the third place
            try:
                c3, rc3 = await asyncio.to_thread(
                    connect, fleet.port, "s3", fleet.secrets["s3"], "s3", 3
                )
            except ConnectionResetError:  # the refusal's reset can beat connect() returning
                c3, rc3 = None, None
            assert rc3 is None, "a fourth connection got a CONNACK"
            if c3 is not None:
                await asyncio.to_thread(close, c3)
            assert await device.still_acknowledged()
            assert await health(fleet) == 200
            assert fleet.platform.pipeline.stats.by_reason["too_many_connections"] >= 1
            held.close()
            await asyncio.to_thread(close, c2)
        finally:
            await asyncio.to_thread(device.stop)
        points = fleet.platform.store.query_raw(SeriesKey("lab", "s1", "temperature"), 0, END)
        assert points.ts.size >= device.acked


def bad_connects(port: int, n: int) -> None:
    """``n`` connections: CONNECTs with unknown device ids, and packets that are not CONNECT."""
    for i in range(n):
        s = raw(port)
        with contextlib.suppress(OSError):
            if i % 2:
                s.sendall(b"\xc0\x00")
            else:  # MQTT 3.1.1 CONNECT, clean session, username and password
                user = f"nobody-{i}".encode()
                body = (
                    b"\x00\x04MQTT\x04\xc2\x00\x1e"
                    + len(f"x{i}").to_bytes(2, "big")
                    + f"x{i}".encode()
                    + len(user).to_bytes(2, "big")
                    + user
                    + b"\x00\x01x"
                )
                s.sendall(b"\x10" + bytes([len(body)]) + body)
            s.recv(16)
        s.close()


async def test_a_flood_of_bad_connections_writes_a_bounded_number_of_log_lines(fleet_slow):
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        await asyncio.to_thread(bad_connects, fleet_slow.port, 600)
        await asyncio.sleep(0.5)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    by_reason = fleet_slow.platform.pipeline.stats.by_reason
    assert by_reason["auth_failed"] == 300 and by_reason["not_connect"] == 300  # all counted
    assert len(records) < 150, f"{len(records)} log lines for 600 bad connections"


def test_idle_sockets_beyond_the_file_limit_lock_out_neither_devices_nor_the_api(tmp_path):
    """``atoll up`` under a 1,024 open-file limit, 1,100 idle connections: the MQTT caps
    (derived from the limit) keep file descriptors for the API and for devices, and the log
    stays small. Before: every device and the API locked out, 64 MB of log in seconds."""
    home = tmp_path / "home"
    out = open(tmp_path / "out.log", "w+b")  # noqa: SIM115 - closed below
    # The limit is set in the child before it becomes ``atoll up`` (no preexec_fn: this
    # process has threads).
    limited = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'atoll.cli.main'] + sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            limited,
            "up",
            "--home",
            str(home),
            "--http-port",
            "0",
            "--mqtt-port",
            "0",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ATOLL_SERVICES": "[]", "ATOLL_MQTT_CONNECT_TIMEOUT_S": "60"},
    )
    socks = []
    try:
        runtime = home / "runtime.json"
        deadline = time.monotonic() + 60
        while not runtime.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "atoll up did not start"
            time.sleep(0.1)
        time.sleep(0.5)
        info = json.loads(runtime.read_text())
        http, port = info["http_url"], int(info["mqtt_url"].rsplit(":", 1)[1])
        out.seek(0)
        key = next(x.split()[-1] for x in out.read().decode().splitlines() if "admin API key" in x)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=http, headers=auth, timeout=10) as api:
            assert (
                api.post("/api/v1/projects", json={"id": "lab", "name": "Lab"}).status_code == 201
            )
            r = api.post("/api/v1/projects/lab/devices", json={"id": "d1"})
            secret = r.json()["credentials"]["secret"]
            for _ in range(1100):  # from an address of their own
                with contextlib.suppress(OSError):
                    socks.append(
                        socket.create_connection(
                            ("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)
                        )
                    )
            time.sleep(2)
            assert api.get("/api/v1/health").status_code == 200
            # That address holds only its share of the unauthenticated places: a device
            # connecting from elsewhere gets in during the flood. (A raw CONNECT: paho's
            # select() loop cannot take the socket numbers this process has reached.)
            assert connack(port, "d1", secret) == CONNACK_ACCEPTED, "a device was locked out"
            assert api.get("/api/v1/health").status_code == 200
        for s in socks[:400]:
            s.close()
        time.sleep(1)
        c, rc = connect(port, "d1", secret, client_id="d1")
        assert rc is not None and not rc.is_failure, "no device could connect once places were free"
        close(c)
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(30)
    size = os.path.getsize(tmp_path / "out.log")
    out.close()
    assert size < 200_000, f"{size} bytes of log"
