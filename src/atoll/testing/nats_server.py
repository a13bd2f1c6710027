"""A throwaway ``nats-server -js`` for tests and benchmarks: own port, own store directory.

>>> # with NatsServer(tmp_path) as server: bus = NatsBus(server.url)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from atoll.core.errors import Unavailable


def find_nats_server() -> str:
    path = shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if Path(p).exists()), None
    )
    if path is None:
        raise Unavailable("nats-server is not installed", hint="apt-get install nats-server")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """``with NatsServer(tmp_dir) as server: server.url``
    — JetStream on, file store in ``tmp_dir``; ``max_payload`` (bytes) sets the server's limit
    (default 1 MB)."""

    def __init__(self, store_dir: str | Path, *, max_payload: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.max_payload = max_payload
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        binary = find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # The port is picked before the server binds it; another process may take it in
        # between, so a failed start is retried on a fresh port.
        for _ in range(3):
            self.port = _free_port()
            if self._launch(binary, timeout):
                return self
        raise Unavailable(f"nats-server did not start on 127.0.0.1:{self.port}")

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop and start again on the same port and store (a server crash and recovery)."""
        self.stop()
        if not self._launch(find_nats_server(), timeout):
            raise Unavailable(f"nats-server did not restart on 127.0.0.1:{self.port}")
        return self

    def _launch(self, binary: str, timeout: float) -> bool:
        config: list[str] = []
        if self.max_payload is not None:
            conf = self.store_dir / "nats-server.conf"
            conf.write_text(f"max_payload: {int(self.max_payload)}\n")
            config = ["-c", str(conf)]
        self.proc = subprocess.Popen(
            [
                binary,
                *config,
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-l",
                str(self.store_dir / "nats-server.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self._wait_ready(timeout):
            return True
        self.stop()
        return False

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NatsCluster:
    """``with NatsCluster(tmp_dir, size=3) as c: c.urls`` — a JetStream cluster of ``size``
    ``nats-server`` processes on free ports (client, route and monitoring), each with its own
    store; ready once JetStream has a meta leader. ``kill(i)`` stops node ``i`` with SIGKILL and
    ``start_node(i)`` brings it back on the same ports and store."""

    def __init__(self, store_dir: str | Path, size: int = 3) -> None:
        self.store_dir = Path(store_dir)
        self.size = size
        self.ports: list[int] = []
        self.route_ports: list[int] = []
        self.http_ports: list[int] = []
        self.procs: list[subprocess.Popen | None] = []

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    @property
    def url(self) -> str:
        """Every node: ``nats://h:p1,h:p2,h:p3`` (what ``NatsBus`` and ``ATOLL_BUS_URL`` take)."""
        return "nats://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout: float = 30.0) -> Self:
        self.ports = [_free_port() for _ in range(self.size)]
        self.route_ports = [_free_port() for _ in range(self.size)]
        self.http_ports = [_free_port() for _ in range(self.size)]
        self.procs = [None] * self.size
        for i in range(self.size):
            self.start_node(i)
        if not self._wait_ready(timeout):
            self.stop()
            raise Unavailable("the NATS cluster did not elect a JetStream meta leader")
        return self

    def start_node(self, i: int) -> None:
        node_dir = self.store_dir / f"n{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        conf = node_dir / "nats-server.conf"
        conf.write_text(
            f'server_name: "n{i}"\n'
            f"listen: 127.0.0.1:{self.ports[i]}\n"
            f"http: 127.0.0.1:{self.http_ports[i]}\n"
            f'jetstream {{ store_dir: "{node_dir}" }}\n'
            f"cluster {{\n  name: atoll\n  listen: 127.0.0.1:{self.route_ports[i]}\n"
            f"  routes: [{routes}]\n}}\n"
        )
        self.procs[i] = subprocess.Popen(
            [find_nats_server(), "-c", str(conf), "-l", str(node_dir / "nats-server.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_ready(self, timeout: float) -> bool:
        import json
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.http_ports[0]}/jsz", timeout=1
                ) as r:
                    info = json.loads(r.read())
                if (info.get("meta_cluster") or {}).get("leader"):
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def kill(self, i: int) -> None:
        proc, self.procs[i] = self.procs[i], None
        if proc is not None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.procs[i] = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
