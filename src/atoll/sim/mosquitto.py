"""A throwaway Mosquitto for simulator tests and benchmarks: own port, own password file.

Devices get the ACL a real Atoll broker enforces: each may only use its own topic subtree.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from atoll.core.errors import Unavailable

OBSERVER = ("atoll-observer", "observer-secret")  # may read every device's telemetry


def find_mosquitto() -> tuple[str, str]:
    """Paths of ``mosquitto`` and ``mosquitto_passwd``."""
    found = []
    for name in ("mosquitto", "mosquitto_passwd"):
        path = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
        )
        if path is None:
            raise Unavailable(f"{name} is not installed", hint="apt-get install mosquitto")
        found.append(path)
    return found[0], found[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """``with Mosquitto(tmp_dir, {"dev-1": "secret"}) as broker: broker.url``"""

    def __init__(
        self,
        workdir: str | Path,
        credentials: dict[str, str],
        *,
        tls: bool = False,
        acl: str | None = None,
    ) -> None:
        self.dir = Path(workdir)
        self.credentials = credentials
        self.tls = tls
        # Mosquitto ACL text; by default Atoll's: each device only in its own subtree. A LAN
        # broker behind an edge gateway has other topics (tests/edge/connectors/test_mqtt.py).
        self.acl_text = acl
        self.ca_file: str | None = None  # the self-signed certificate, with tls=True
        self.port = free_port()
        self.url = self._url()
        self.proc: subprocess.Popen | None = None
        self._started = False

    def start(self, timeout: float = 10.0) -> Self:
        binary, passwd = find_mosquitto()
        self.dir.mkdir(parents=True, exist_ok=True)
        pw = self.dir / "passwd"
        lines = [f"{u}:{s}" for u, s in {**self.credentials, OBSERVER[0]: OBSERVER[1]}.items()]
        pw.write_text("\n".join(lines) + "\n")
        pw.chmod(0o600)
        # -U hashes every plaintext line in one process (10,000 devices in seconds).
        subprocess.run([passwd, "-U", str(pw)], check=True, capture_output=True)
        acl = self.dir / "acl"
        atoll_acl = (
            f"user {OBSERVER[0]}\ntopic read atoll/#\n\npattern readwrite atoll/v1/devices/%u/#\n"
        )
        acl.write_text(self.acl_text or atoll_acl)
        conf = self.dir / "mosquitto.conf"
        conf_text = (
            "listener @PORT@ 127.0.0.1\n"
            + (self._certificate() if self.tls else "")
            + "allow_anonymous false\n"
            f"password_file {pw}\n"
            f"acl_file {acl}\n"
            "persistence false\n"
            "max_connections -1\n"
            "max_queued_messages 100000\n"
            # As root, mosquitto would switch to user "mosquitto", who cannot read our files.
            f"user {getpass.getuser()}\n"
            "log_dest stderr\n"
            "log_type error\n"
        )
        # The free port may be taken between choosing and binding it (parallel tests): on the
        # first start, try another; a restart keeps its port, since clients reconnect to it.
        for attempt in range(1 if self._started else 3):
            if attempt:
                self.port = free_port()
                self.url = self._url()
            conf.write_text(conf_text.replace("@PORT@", str(self.port)))
            if self._launch(binary, conf, timeout):
                self._started = True
                return self
        raise Unavailable(
            f"mosquitto did not start on port {self.port}: "
            f"{(self.dir / 'mosquitto.log').read_text()}"
        )

    def _launch(self, binary: str, conf: Path, timeout: float) -> bool:
        self.log = open(self.dir / "mosquitto.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def _url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _certificate(self) -> str:
        """A self-signed certificate for 127.0.0.1; returns the listener's TLS settings."""
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        if not cert.exists():
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
        self.ca_file = str(cert)
        return f"cafile {cert}\ncertfile {cert}\nkeyfile {key}\n"

    def _answers(self) -> bool:
        """A CONNACK from the port proves it is this broker, not whatever else listens there."""
        probe = paho.Client(CallbackAPIVersion.VERSION2, client_id="atoll-probe")
        probe.username_pw_set(*OBSERVER)
        if self.tls:
            probe.tls_set(ca_certs=self.ca_file)
        try:
            probe.connect("127.0.0.1", self.port, keepalive=5)
            until = time.monotonic() + 0.5
            while not probe.is_connected() and time.monotonic() < until:
                probe.loop(0.05)
            return probe.is_connected()
        except OSError:
            return False
        finally:
            with contextlib.suppress(Exception):
                probe.disconnect()
            sock = probe.socket()
            if sock is not None:
                sock.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
