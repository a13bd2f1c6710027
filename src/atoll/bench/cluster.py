"""``atoll bench cluster``: 1, 2 and 3 ``atoll up`` nodes on one NATS + PostgreSQL + Mosquitto
set-up, against the embedded default, with the same device load.

One set-up for the whole run: a ``nats-server -js`` (or a 3-node JetStream cluster with R3
streams, ``nats_nodes=3``), a Mosquitto and PostgreSQL (127.0.0.1:5432, or the libpq string
in ``ATOLL_TEST_PG``), on free ports and throw-away databases. Each configuration gets a
fresh database, its own stream and subject prefix on that NATS, fresh data directories, and
``devices`` devices registered through the API (``POST /projects/{p}/devices/batch``); then
one ``mosquitto_pub -l -q 1`` per device sends ``messages`` messages of ``readings`` readings
of one metric (``m0``, explicit timestamps), all at once. The nodes are real ``atoll up``
processes with their default services (detection, rules, ...), external MQTT (2 ingest
workers each) and no rate limits.

Measured per configuration: the seconds from the first message until every point is stored
(``persisted_*_per_second``), the share of stored readings that got an anomaly score, and the
CPU seconds of the Atoll node processes (``psutil``, user + system, summed over nodes) from the
first message until the last score was stored, per persisted reading. The *embedded* row is the
default single process (embedded broker, DuckDB, in-process bus) with the same load, the
baseline of docs/BENCHMARKS.md's targets.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from atoll.bench.broker import ExternalBroker, external_broker
from atoll.bench.ingest import _wait_for_login
from atoll.bench.loadgen import T0_MS, payload
from atoll.core.errors import Unavailable

PROJECT = "bench"
METRIC = "m0"
#: No per-device or per-tenant rate limits: the load is the point (docs/DEVICES.md).
NODE_ENV = {"ATOLL_QUOTA_DEVICE_RATE": "0", "ATOLL_QUOTA_TENANT_RATE": "0"}
Echo = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _atoll() -> list[str]:
    exe = Path(sys.executable).parent / "atoll"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "atoll.cli.main"]


def _require(*binaries: str) -> dict[str, str]:
    found = {}
    for b in binaries:
        path = shutil.which(b) or next(
            (p for p in (f"/usr/sbin/{b}", f"/usr/bin/{b}") if Path(p).exists()), None
        )
        if path is None:
            raise Unavailable(f"{b} is not installed", hint="apt-get install nats-server mosquitto")
        found[b] = path
    return found


@dataclass
class Node:
    """One ``atoll up`` process."""

    name: str
    home: Path
    http_port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cpu(self) -> float:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return t.user + t.system + t.children_user + t.children_system

    def warnings(self) -> list[str]:
        """The node's log lines at WARNING or above (``--log-level warning``)."""
        text = self.log.read_text(errors="replace")
        return [ln for ln in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", ln)]

    def api_key(self) -> str | None:
        m = re.search(r"admin API key\s+(\S+)", self.log.read_text(errors="replace"))
        return m.group(1) if m else None


def _stop(nodes: list[Node]) -> None:
    """SIGTERM to every node at once (each hands its partitions over), then wait; SIGKILL after
    60 s."""
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
    for n in nodes:
        try:
            n.proc.wait(60)
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()


@dataclass
class Setup:
    """The shared backends of one run."""

    tmp: Path
    nats_url: str
    pg_server: str  # libpq conninfo of the server
    broker: ExternalBroker
    binaries: dict[str, str]
    nats_nodes: int


@contextlib.contextmanager
def backends(tmp: Path, nats_nodes: int = 1) -> Iterator[Setup]:
    """NATS (1 server, or a 3-node JetStream cluster), Mosquitto wired to Atoll's auth files,
    and the PostgreSQL server (checked reachable); all stopped on exit."""
    from atoll.testing.nats_server import NatsCluster, NatsServer
    from atoll.testing.postgres import server as pg_server

    binaries = _require("nats-server", "mosquitto", "mosquitto_pub")
    conninfo = pg_server()
    try:
        psycopg.connect(conninfo, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        raise Unavailable(
            f"no PostgreSQL server reachable ({conninfo})",
            hint="start PostgreSQL on 127.0.0.1:5432 or set ATOLL_TEST_PG",
        ) from exc
    with contextlib.ExitStack() as stack:
        if nats_nodes == 1:
            nats_url = stack.enter_context(NatsServer(tmp / "nats")).url
        else:
            cluster = stack.enter_context(NatsCluster(tmp / "nats", size=nats_nodes))
            nats_url = f"{cluster.url}?replicas={min(nats_nodes, 3)}"
        broker = stack.enter_context(external_broker(tmp / "mosquitto"))
        yield Setup(tmp, nats_url, conninfo, broker, binaries, nats_nodes)


def _start_node(name: str, home: Path, env: dict[str, str], args: list[str]) -> Node:
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = home.with_suffix(".log")
    proc = subprocess.Popen(
        [*_atoll(), "up", "--http-port", str(port), "--log-level", "warning", *args],
        env={**env, "ATOLL_HOME": str(home)},
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    return Node(name, home, port, proc, log)


def _wait_healthy(nodes: list[Node], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    for n in nodes:
        while True:
            if n.proc.poll() is not None:
                raise Unavailable(f"node {n.name} exited: {n.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{n.url}/api/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise Unavailable(f"node {n.name} did not answer on {n.url}")
            time.sleep(0.3)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    return {**env, **NODE_ENV, "ATOLL_FORECAST_PRELOAD": "0"}


def _register(node: Node, devices: int) -> tuple[str, list[tuple[str, str]]]:
    key = node.api_key()
    if key is None:
        raise Unavailable(f"node {node.name} printed no admin API key ({node.log})")
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"{node.url}/api/v1", headers=h, timeout=120) as http:
        http.post("/projects", json={"name": "Bench", "id": PROJECT}).raise_for_status()
        r = http.post(
            f"/projects/{PROJECT}/devices/batch",
            json={"devices": [{"id": f"d{i}"} for i in range(devices)]},
        )
        r.raise_for_status()
    return key, [(d["credentials"]["device"], d["credentials"]["secret"]) for d in r.json()]


def _lines(tmp: Path, device: int, messages: int, readings: int) -> Path:
    path = tmp / f"lines-{device}-{messages}-{readings}.txt"
    if not path.exists():
        first = device * messages * readings
        with open(path, "wb") as f:
            f.writelines(
                payload(first + i * readings, readings, 1) + b"\n" for i in range(messages)
            )
    return path


@dataclass
class Load:
    devices: int
    messages: int
    readings: int

    @property
    def points(self) -> int:
        return self.devices * self.messages * self.readings

    def start(self, s: Setup, port: int, creds: list[tuple[str, str]]) -> list[subprocess.Popen]:
        return [
            subprocess.Popen(
                [
                    *(s.binaries["mosquitto_pub"], "-p", str(port), "-i", dev, "-u", dev),
                    *("-P", sec, "-q", "1", "-M", "1000"),
                    *("-t", f"atoll/v1/devices/{dev}/telemetry", "-l"),
                ],
                stdin=open(_lines(s.tmp, i, self.messages, self.readings), "rb"),  # noqa: SIM115
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, (dev, sec) in enumerate(creds)
        ]


def _measure(
    nodes: list[Node],
    load: Load,
    counts: Callable[[], tuple[int, int]],
    progress: Callable[[int, int], None],
    timeout: float,
    idle: float,
) -> dict[str, Any]:
    """Poll ``counts()`` (stored points, stored scores) until every point is stored and the
    scores stop growing (all scored, or nothing new for ``idle`` s); CPU at the last change."""
    cpu0, t0 = sum(n.cpu() for n in nodes), time.perf_counter()
    t_stored = t_scored = None
    cpu_at = cpu0
    last = (-1, -1)
    last_change = t0
    while True:
        time.sleep(0.25)
        now = time.perf_counter()
        stored, scored = counts()
        progress(stored, scored)
        if (stored, scored) != last:
            last, last_change, cpu_at = (stored, scored), now, sum(n.cpu() for n in nodes)
        if t_stored is None and stored >= load.points:
            t_stored = now
        if t_stored is not None and (scored >= stored or now - last_change > idle):
            t_scored = last_change
            break
        if now - t0 > timeout or (t_stored is None and now - last_change > max(idle, 60)):
            break
        if any(n.proc.poll() is not None for n in nodes):
            raise Unavailable("a node exited during the run: " + ", ".join(n.name for n in nodes))
    stored, scored = last
    seconds = (t_stored or time.perf_counter()) - t0
    cpu = cpu_at - cpu0
    return {
        "points_sent": load.points,
        "points_stored": stored,
        "points_scored": scored,
        "share_scored": round(scored / stored, 4) if stored else None,
        "seconds_to_store": round(seconds, 3),
        "seconds_to_score": round((t_scored or time.perf_counter()) - t0, 3),
        "persisted_messages_per_second": round(stored / load.readings / seconds, 1),
        "persisted_points_per_second": round(stored / seconds, 1),
        "node_cpu_seconds": round(cpu, 3),
        "node_cpu_us_per_persisted_point": round(cpu / stored * 1e6, 1) if stored else None,
        "complete": stored >= load.points,
    }


def run_embedded(s: Setup, load: Load, progress, timeout: float, idle: float) -> dict[str, Any]:
    """The default single process: embedded broker, DuckDB store, in-process bus."""
    mqtt_port = _free_port()
    node = _start_node(
        "embedded",
        s.tmp / "embedded" / "home",
        _base_env(),
        ["--mqtt", "embedded", "--mqtt-port", str(mqtt_port)],
    )
    try:
        _wait_healthy([node])
        key, creds = _register(node, load.devices)
        http = httpx.Client(
            base_url=f"{node.url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        last_ts = {
            dev: (T0_MS + (i + 1) * load.messages * load.readings - 1) / 1.0
            for i, (dev, _) in enumerate(creds)
        }

        def exact() -> tuple[int, int]:
            got = [0, 0]
            for dev, _ in creds:
                for i, metric in enumerate((METRIC, f"{METRIC}.anomaly_score")):
                    q: dict[str, str | int] = {"mode": "raw", "start": "0", "end": "now"}
                    q["limit"] = 1_000_000
                    got[i] += len(
                        http.get(f"/devices/{dev}/series/{metric}", params=q).json()["ts"]
                    )
            return got[0], got[1]

        def counts() -> tuple[int, int]:
            # One cheap request per poll while the load runs: a device is done when its newest
            # stored point and newest score are its last reading. Then exact counts (a score
            # batch can be stored after a later one), until every point has its score.
            rows = http.get(f"/projects/{PROJECT}/latest").json()
            latest = {(r["device"], r["metric"]): r["ts"] for r in rows}
            per = load.messages * load.readings
            stored = sum(per for d, t in last_ts.items() if latest.get((d, METRIC)) == t)
            scored = sum(
                per for d, t in last_ts.items() if latest.get((d, f"{METRIC}.anomaly_score")) == t
            )
            if stored == scored == load.points:
                return exact()
            return stored, min(scored, load.points - 1)

        procs = load.start(s, mqtt_port, creds)
        r = _measure([node], load, counts, progress, timeout, idle)
        for p in procs:
            p.wait(60)
        http.close()
        _stop([node])
        return {"mode": "embedded", "nodes": 1, **r, **_log_summary([node])}
    finally:
        _stop([node])


def run_cluster(
    s: Setup, n: int, load: Load, progress, timeout: float, idle: float, settle: float
) -> dict[str, Any]:
    """``n`` nodes on the shared backends, a fresh database and stream of their own."""
    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_bench_cluster", conninfo=s.pg_server) as db:
        sep = "&" if "?" in s.nats_url else "?"
        env = {
            **_base_env(),
            "ATOLL_BUS_URL": f"{s.nats_url}{sep}stream=BENCH{n}&prefix=bench{n}",
            "ATOLL_STORE_URL": db,
            "ATOLL_REGISTRY_URL": db,
            **s.broker.env(),
        }
        url = s.broker.mqtt_url
        base = s.tmp / f"cluster{n}"

        def start(i: int) -> Node:
            # Node i keeps its name from one configuration to the next: Mosquitto keeps a
            # stopped node's sessions in the shared subscription (docs/SCALING.md), so a name
            # used before and not again would take its share of the next run's messages.
            name = f"n{i}"
            return _start_node(
                name,
                base / name,
                {**env, "ATOLL_MQTT_NODE_ID": name},
                ["--mqtt", "external", "--mqtt-url", url],
            )

        nodes = [start(0)]  # the first creates the tables and prints the admin key
        try:
            _wait_healthy(nodes)
            nodes += [start(i) for i in range(1, n)]
            _wait_healthy(nodes)
            key, creds = _register(nodes[0], load.devices)
            for dev, sec in creds:  # mosquitto reloads its password file on SIGHUP
                _wait_for_login(s.broker.port, dev, sec, timeout=60)
            if n > 1:
                time.sleep(settle)  # detection and rules partitions spread over the nodes
            conn = psycopg.connect(db, autocommit=True)
            sql = (
                "SELECT s.metric, count(*) FROM atoll_series.points p"
                " JOIN atoll_series.series s ON s.id = p.sid WHERE s.project = %s"
                " GROUP BY s.metric"
            )

            def counts() -> tuple[int, int]:
                got: dict[str, int] = dict(conn.execute(sql, (PROJECT,)).fetchall())
                return got.get(METRIC, 0), got.get(f"{METRIC}.anomaly_score", 0)

            procs = load.start(s, s.broker.port, creds)
            r = _measure(nodes, load, counts, progress, timeout, idle)
            for p in procs:
                p.wait(60)
            # What the nodes counted (GET /metrics, summed): why a reading went unscored.
            r["node_counters"] = _counters(nodes, key)
            # Scores stored only while the nodes stop (each flushes and checkpoints): late,
            # not lost; a reading without a score here was never scored.
            _stop(nodes)
            r["points_scored_after_stop"] = counts()[1]
            conn.close()
            return {"mode": "cluster", "nodes": n, **r, **_log_summary(nodes)}
        finally:
            _stop(nodes)


#: The node counters (``GET /api/v1/metrics``) a run reports, summed over its nodes.
COUNTERS = (
    "atoll_ingest_messages_total",
    "atoll_ingest_points_total",
    "atoll_detect_points_total",
    "atoll_detect_skipped_late_total",
    "atoll_detect_dropped_messages_total",
    "atoll_detect_bad_messages_total",
    "atoll_detect_store_errors_total",
)


def _counters(nodes: list[Node], key: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = dict.fromkeys(COUNTERS, 0.0)
    for n in nodes:
        try:
            r = httpx.get(
                f"{n.url}/api/v1/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            r.raise_for_status()
        except httpx.HTTPError as e:
            out[f"unreadable_{n.name}"] = str(e)  # type: ignore[assignment]
            continue
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                if sample.name in out and not sample.labels:
                    out[sample.name] += sample.value
    return out


def _log_summary(nodes: list[Node]) -> dict[str, Any]:
    lines = [ln for n in nodes for ln in n.warnings()]
    return {"log_warnings": len(lines), "log_warnings_first": [ln[:300] for ln in lines[:5]]}


def _machine() -> dict[str, Any]:
    up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uptime_at_start": up,
    }


def targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets (docs/BENCHMARKS.md): CPU per persisted reading of a cluster node at
    most 1.5x the embedded default's; summed over nodes, at most +20 % from 1 to 3 nodes."""
    per = {
        (r["mode"], r["nodes"]): r["node_cpu_us_per_persisted_point"]
        for r in runs
        if r.get("node_cpu_us_per_persisted_point")
    }
    out: dict[str, Any] = {}
    emb, one = per.get(("embedded", 1)), per.get(("cluster", 1))
    if emb and one:
        ratio = round(one / emb, 2)
        out["cluster1_vs_embedded_cpu_ratio"] = ratio
        out["cluster1_vs_embedded_met"] = ratio <= 1.5
    cluster = sorted((n, v) for (m, n), v in per.items() if m == "cluster")
    if len(cluster) >= 2 and cluster[0][0] == 1:
        growth = round(cluster[-1][1] / cluster[0][1] - 1, 3)
        out[f"cpu_growth_1_to_{cluster[-1][0]}_nodes"] = growth
        out["cpu_growth_met"] = growth <= 0.20
    return out


def run(
    *,
    nodes: list[int],
    devices: int,
    messages: int,
    readings: int = 1,
    nats_nodes: int = 1,
    embedded: bool = True,
    timeout: float = 600.0,
    idle: float = 30.0,
    settle: float = 8.0,
    echo: Echo = print,
) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    load = Load(devices, messages, readings)
    result: dict[str, Any] = {
        "benchmark": "cluster",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "devices": devices,
            "messages_per_device": messages,
            "readings_per_message": readings,
            "nats_nodes": nats_nodes,
            "mqtt_workers_per_node": 2,
            "generator": "mosquitto_pub -l -q 1 -M 1000, one per device",
        },
        "runs": [],
    }
    configs = ([("embedded", 1)] if embedded else []) + [("cluster", n) for n in nodes]
    with tempfile.TemporaryDirectory(prefix="atoll-bench-cluster-") as tmp_s:
        tmp = Path(tmp_s)
        with (
            backends(tmp, nats_nodes) as setup,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} stored, {task.fields[scored]} scored"),
                TimeElapsedColumn(),
            ) as bar,
        ):
            for mode, n in configs:
                what = "embedded default" if mode == "embedded" else f"{n} node(s)"
                task = bar.add_task(what, total=load.points, scored=0)

                def progress(stored: int, scored: int, task=task) -> None:
                    bar.update(task, completed=stored, scored=scored)

                if mode == "embedded":
                    r = run_embedded(setup, load, progress, timeout, idle)
                else:
                    r = run_cluster(setup, n, load, progress, timeout, idle, settle)
                result["runs"].append(r)
                bar.console.print(
                    f"{what}: {r['persisted_messages_per_second']:.0f} msgs/s,"
                    f" {r['node_cpu_us_per_persisted_point']} CPU-us per point,"
                    f" {r['share_scored']:.1%} scored"
                    if r["share_scored"] is not None
                    else f"{what}: nothing stored"
                )
    result["machine"]["uptime_at_end"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout.strip()
    result["targets"] = targets(result["runs"])
    return result
