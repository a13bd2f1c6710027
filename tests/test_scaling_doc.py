"""docs/SCALING.md, "Run a cluster", works as written.

The blocks fenced ```` ```sh tested ```` are run in order, as one bash script from the
repository root, with ``atoll`` on the ``PATH``: ``deploy/cluster.sh`` starts a 3-node NATS
JetStream cluster, Mosquitto and two ``atoll up`` nodes on a throw-away PostgreSQL database. Only
the ports (free ones instead of the doc's 8081, 8082, 1883 and NATS's defaults) and the
directory (``$HOME`` is a temp directory) differ. Then the doc's promise is checked through
node b's API: the readings a device registered through node a sent over MQTT are stored, once,
and scored. Skipped, with the reason, when a binary or PostgreSQL is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from atoll.testing.postgres import throwaway_database

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SCALING.md"
BLOCK = re.compile(r"^```sh tested\n(.*?)^```$", re.M | re.S)
BINARIES = ("nats-server", "mosquitto", "mosquitto_pub", "mosquitto_sub", "psql", "curl")


def walkthrough_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_doc_marks_the_walkthrough_blocks() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) >= 5
    script = "\n".join(blocks)
    for step in ("backends", "node a 8081 b 8082", "key", "down"):
        assert f"deploy/cluster.sh {step}" in script


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )


def test_the_cluster_walkthrough_runs_as_written(tmp_path: Path) -> None:
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (docs/SCALING.md needs them)")
    with throwaway_database("atoll_scaling_doc", skip_if_unreachable=True) as url:
        server, db = url.rsplit("/", 1)
        _run_walkthrough(tmp_path, server, db)


def _run_walkthrough(tmp: Path, pg_server: str, db: str) -> None:
    ports = _free_ports(12)
    node_a, node_b, mqtt = ports[:3]
    blocks = walkthrough_blocks()
    for doc_port, port in (("8081", node_a), ("8082", node_b), ("1883", mqtt)):
        blocks = [re.sub(rf"\b{doc_port}\b", str(port), b) for b in blocks]
    *steps, stop = blocks
    # The nodes' binaries: this checkout's environment first, then the system's (nats-server,
    # mosquitto in /usr/sbin).
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/sbin", os.environ["PATH"]])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")},
        "HOME": str(tmp),
        "PATH": path,
        "NATS_PORTS": " ".join(map(str, ports[3:6])),
        "NATS_ROUTE_PORTS": " ".join(map(str, ports[6:9])),
        "NATS_HTTP_PORTS": " ".join(map(str, ports[9:12])),
        "MQTT_PORT": str(mqtt),
        "ATOLL_CLUSTER_PG": pg_server,
        "ATOLL_CLUSTER_DB": db,
        "ATOLL_FORECAST_PRELOAD": "0",  # as tests/conftest.py: no forecasting preload
    }
    cluster_dir = tmp / "atoll-cluster"
    try:
        out = _bash("\n".join(steps), env, cluster_dir)
        # Step 5 polls node b until it serves 100 readings, then 100 scores, printing the
        # counts it sees; it ends only when both are there.
        counts = [int(line) for line in out.splitlines() if line.isdigit()]
        assert counts.count(100) == 2 and counts[-1] == 100, out
        _check_node_b(node_b, env)
        # The two nodes started at once on the empty database; one of them made it and printed
        # the admin secrets, once.
        logs = [p.read_text() for p in cluster_dir.glob("atoll/*.log")]
        assert len(logs) == 2 and sum("admin API key" in log for log in logs) == 1
        out = _bash(stop, env, cluster_dir)
        assert "stopped" in out
        assert not list(cluster_dir.glob("atoll/*.pid")) and not list(
            cluster_dir.glob("nats/*/nats.pid")
        )
    finally:
        subprocess.run(
            ["deploy/cluster.sh", "down"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )


def _bash(script: str, env: dict[str, str], cluster_dir: Path) -> str:
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"the walkthrough failed:\n{out}\n{_logs(cluster_dir)}"
    return out


def _check_node_b(port: int, env: dict[str, str]) -> None:
    """What step 5 promises, in detail: node b serves each reading the device sent through
    Mosquitto once, and a score for each; the device registered through node a."""
    key = subprocess.run(
        ["deploy/cluster.sh", "key"], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout.strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as http:
        r = http.get("/devices/press-7/series/v", params={"mode": "raw", "start": "-1d"})
        assert r.status_code == 200, r.text
        assert sorted(r.json()["value"]) == [float(i) for i in range(1, 101)]
        r = http.get(
            "/devices/press-7/series/v.anomaly_score", params={"mode": "raw", "start": "-1d"}
        )
        assert r.status_code == 200, r.text
        scores = r.json()
        assert len(scores["ts"]) == 100
        assert all(0.0 <= s <= 1.0 for s in scores["value"])
        r = http.get("/projects/presses/devices")
        assert r.status_code == 200, r.text
        assert [d["id"] for d in r.json()] == ["press-7"]


def _logs(cluster_dir: Path) -> str:
    parts = []
    for log in sorted(cluster_dir.glob("atoll/*.log")):
        parts.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-30:]))
    return "\n".join(parts)
