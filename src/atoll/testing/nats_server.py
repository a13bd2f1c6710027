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
