"""A Mosquitto for Atoll's external mode, started by a benchmark: own port, password and ACL
files that Atoll manages, the ingest user ``atoll-ingest`` with a fresh password.

    with external_broker(tmp / "mosquitto") as broker:
        Settings(mqtt_mode="external", mqtt_url=broker.mqtt_url, **broker.settings())
        # or, for an ``atoll up`` process: env.update(broker.env())
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atoll.core.errors import Unavailable


@dataclass(frozen=True)
class ExternalBroker:
    port: int
    password: str  # the ingest workers' (user atoll-ingest)
    password_file: Path
    acl_file: Path
    pid_file: Path

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://atoll-ingest:{self.password}@127.0.0.1:{self.port}"

    def settings(self) -> dict[str, Any]:
        """``Settings`` fields wiring a node to the broker's auth files."""
        return {
            "mosquitto_password_file": self.password_file,
            "mosquitto_acl_file": self.acl_file,
            "mosquitto_pid_file": self.pid_file,
        }

    def env(self) -> dict[str, str]:
        """The same as ``ATOLL_*`` environment variables, for ``atoll up`` processes."""
        return {f"ATOLL_{k.upper()}": str(v) for k, v in self.settings().items()}


def find_mosquitto() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        raise Unavailable("mosquitto is not installed", hint="apt-get install mosquitto")
    return path


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Unavailable(f"mosquitto did not listen on port {port}")


@contextmanager
def external_broker(directory: Path) -> Iterator[ExternalBroker]:
    """Start Mosquitto with a config from ``write_mosquitto_conf`` in ``directory``; stop it
    on exit."""
    from atoll.ingest.external import new_admin_password, write_mosquitto_conf
    from atoll.ingest.mosquitto_auth import MosquittoAuth
    from atoll.sim.mosquitto import free_port

    binary = find_mosquitto()
    directory.mkdir(parents=True, exist_ok=True)
    broker = ExternalBroker(
        free_port(),
        new_admin_password(),
        directory / "passwd",
        directory / "acl",
        directory / "pid",
    )
    MosquittoAuth(
        broker.password_file, broker.acl_file, None, admin_password=broker.password
    ).apply()
    conf = write_mosquitto_conf(
        directory / "mosquitto.conf",
        port=broker.port,
        password_file=broker.password_file,
        acl_file=broker.acl_file,
        pid_file=broker.pid_file,
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(broker.port, proc)
        yield broker
    finally:
        proc.terminate()
        proc.wait(10)
