"""What the edge benchmarks share: a local platform to forward to (``atoll up``, or a bare
Mosquitto to measure the agent alone), a gateway on it, and an agent process to run."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import yaml

from atoll.sim.mosquitto import Mosquitto

# The tenant's default rate limit (10,000 points/s) would cap any drain: a benchmark of the
# agent lifts it, as an operator would for a gateway's tenant (docs/DEVICES.md, "Rate limits").
UNLIMITED = {"ATOLL_QUOTA_DEVICE_RATE": "0", "ATOLL_QUOTA_TENANT_RATE": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Target:
    kind: str  # "atoll" or "mosquitto"
    port: int
    gateway: str
    secret: str
    pid: int
    api: httpx.Client | None = None  # the platform's REST API (atoll only)


@contextlib.contextmanager
def target(kind: str, workdir: Path, gateway: str = "gw-bench") -> Iterator[Target]:
    if kind == "mosquitto":
        secret = "bench-secret"
        with Mosquitto(workdir / "mosquitto", {gateway: secret}) as m:
            assert m.proc is not None
            yield Target(kind, m.port, gateway, secret, m.proc.pid)
        return
    http, mqtt = _free_port(), _free_port()
    log = open(workdir / "up.log", "w")  # noqa: SIM115 - closed below
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atoll.cli.main",
            "up",
            "--home",
            str(workdir / "home"),
            "--http-port",
            str(http),
            "--mqtt-port",
            str(mqtt),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **UNLIMITED},
    )
    key = None
    assert up.stdout is not None
    for line in up.stdout:
        log.write(line)
        if "admin API key" in line:
            key = line.split()[-1]
        if line.startswith("Press Ctrl-C"):
            break
    out = up.stdout
    threading.Thread(target=lambda: [log.write(x) for x in out], daemon=True).start()
    try:
        if key is None:
            raise SystemExit("atoll up did not start; see up.log")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{http}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        api.post("/projects", json={"name": "Bench", "id": "bench"}).raise_for_status()
        r = api.post("/projects/bench/devices", json={"id": gateway, "kind": "gateway"})
        r.raise_for_status()
        yield Target(kind, mqtt, gateway, r.json()["credentials"]["secret"], up.pid, api)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


def agent_config(t: Target, buffer_dir: Path, connectors: list[dict], **extra) -> dict:
    return {
        "platform": f"mqtt://127.0.0.1:{t.port}",
        "gateway": {"id": t.gateway, "secret": t.secret},
        "buffer": {"dir": str(buffer_dir), "max_bytes": "2GiB"},
        "status_interval_s": 5,
        "connectors": connectors,
        **extra,
    }


def start_agent(config: dict, workdir: Path) -> subprocess.Popen:
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(workdir / "agent.log", "w")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atoll.cli.main",
            "edge",
            "run",
            "--config",
            str(path),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while "Ctrl-C stops" not in (workdir / "agent.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the agent did not start:\n" + (workdir / "agent.log").read_text())
        time.sleep(0.1)
    return proc


def stop_agent(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def machine() -> dict:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB, {platform.system()}",
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def workdir(keep: Path | None) -> Path:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return keep
    return Path(tempfile.mkdtemp(prefix="atoll-edge-bench-"))


def write_json(path: Path | None, doc: dict) -> None:
    text = json.dumps(doc, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
