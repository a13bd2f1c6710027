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
BINARIES = ("nats-server", "mosquitto", "mosquitto_pub", "psql", "curl")


def walkthrough_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_doc_marks_the_walkthrough_blocks() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) >= 5
    script = "\n".join(blocks)
    for step in ("cluster.sh backends", "cluster.sh node a", "cluster.sh node b", "cluster.sh down"):
        assert step in script


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
    script = "\n".join(walkthrough_blocks())
    for doc_port, port in (("8081", node_a), ("8082", node_b), ("1883", mqtt)):
        script = re.sub(rf"\b{doc_port}\b", str(port), script)
    # The nodes' binaries: this checkout's environment first, then the system's (nats-server,
    # mosquitto in /usr/sbin).
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/sbin", os.environ["PATH"]])
    env = {
        **os.environ,
        "HOME": str(tmp),
        "PATH": path,
        "NATS_PORTS": " ".join(map(str, ports[3:6])),
        "NATS_ROUTE_PORTS": " ".join(map(str, ports[6:9])),
        "NATS_HTTP_PORTS": " ".join(map(str, ports[9:12])),
        "MQTT_PORT": str(mqtt),
        "ATOLL_CLUSTER_PG": pg_server,
        "ATOLL_CLUSTER_DB": db,
    }
    for var in [v for v in env if v.startswith("ATOLL_") and not v.startswith("ATOLL_CLUSTER")]:
        if var != "ATOLL_FORECAST_PRELOAD":  # tests/conftest.py: no forecasting preload
            env.pop(var)
    cluster_dir = tmp / "atoll-cluster"
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
        logs = _logs(cluster_dir)
        assert proc.returncode == 0, f"the walkthrough failed:\n{out}\n{logs}"
        # Step 5's promise: node b served 100 readings and 100 scores (it printed 100 twice).
        assert out.splitlines()[-3:-1] == ["100", "100"], out
        assert not (cluster_dir / "atoll" / "a.pid").exists()  # step 6 stopped everything
        _check_store_after_restart(env, cluster_dir, node_b)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        subprocess.run(
            ["deploy/cluster.sh", "down"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )


def _check_store_after_restart(env: dict[str, str], cluster_dir: Path, port: int) -> None:
    """What the doc says step 6 keeps: node b started again alone serves the same readings,
    each stored once, and their scores."""
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"deploy/cluster.sh backends && "
         f"deploy/cluster.sh node b {port}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr + _logs(cluster_dir)
    key = subprocess.run(
        ["deploy/cluster.sh", "key", "a"], cwd=ROOT, env=env, capture_output=True, text=True
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


def _logs(cluster_dir: Path) -> str:
    parts = []
    for log in sorted(cluster_dir.glob("atoll/*.log")):
        parts.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-30:]))
    return "\n".join(parts)
