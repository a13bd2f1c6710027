"""``atoll bench ingest``: end-to-end ingest rates, with the store's and the broker's own rates
from the same run, so Atoll's overhead shows as ratios.

Atoll (embedded broker, DuckDB store in a temp dir) runs in this process; load generators run
as separate processes (``atoll.bench.loadgen``; ``mosquitto_pub -l`` for single-reading
messages when installed, as Python clients cannot produce 20 k QoS 1 messages/s). A phase's
time runs from "go" until the last point is *stored* (``IngestPipeline.stats``), so it
measures persisted points, not sent ones.
"""
# Spawning load generators from coroutines blocks only for a fork: fine for a benchmark driver.
# ruff: noqa: ASYNC220, ASYNC230

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import platform as _platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOADGEN = [sys.executable, "-m", "atoll.bench.loadgen"]
NO_RATE_LIMITS: dict[str, Any] = {"quota_device_rate": 0, "quota_tenant_rate": 0}


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _ready(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        assert p.stdout is not None and p.stderr is not None  # spawned with PIPE
        line = await asyncio.to_thread(p.stdout.readline)
        if line.strip() != "ready":
            raise RuntimeError(f"load generator failed: {line}{p.stderr.read()}")


def _go(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        assert p.stdin is not None  # spawned with PIPE
        p.stdin.write("go\n")
        p.stdin.flush()


async def _results(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, stderr = await asyncio.to_thread(p.communicate, None, 300)
        lines = [x for x in stdout.splitlines() if x.startswith("{")]
        out.append(json.loads(lines[-1]) if lines else {"error": stderr[-500:]})
    return out


async def _until(pred, timeout: float = 300.0) -> float:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark phase did not finish")
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def _mqtt_batched(p, devices, messages: int, readings: int, metrics: int) -> dict:
    stats = p.pipeline.stats
    base = stats.points
    total = len(devices) * messages * readings * metrics
    procs = [
        _spawn(
            [
                *LOADGEN,
                "mqtt",
                "--port",
                str(p.mqtt.port),
                "--device",
                d,
                f"--secret={s}",
                "--messages",
                str(messages),
                "--readings",
                str(readings),
                "--metrics",
                str(metrics),
            ]
        )
        for d, s in devices
    ]
    await _ready(procs)
    t0 = time.perf_counter()
    _go(procs)
    t1 = await _until(lambda: stats.points - base >= total)
    gens = await _results(procs)
    return {
        "points": total,
        "messages": len(devices) * messages,
        "points_per_message": readings * metrics,
        "seconds": round(t1 - t0, 3),
        "points_per_second": round(total / (t1 - t0)),
        "messages_per_second": round(len(devices) * messages / (t1 - t0)),
        "publishers": gens,
    }


def _lines_file(tmp: Path, n: int, offset: int) -> Path:
    from atoll.bench.loadgen import payload

    path = tmp / f"lines-{offset}.txt"
    with open(path, "wb") as f:
        f.writelines(payload(offset + i, 1, 1) + b"\n" for i in range(n))
    return path


def _cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


async def _mqtt_single(p, devices, messages: int, tmp: Path) -> dict:
    stats = p.pipeline.stats
    base = stats.messages
    total = len(devices) * messages
    mosquitto_pub = shutil.which("mosquitto_pub")
    files = [_lines_file(tmp, messages, i * messages) for i in range(len(devices))]
    load = os.getloadavg()[0]
    cpu0, children0 = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if mosquitto_pub:
        procs = [
            subprocess.Popen(
                [
                    mosquitto_pub,
                    "-p",
                    str(p.mqtt.port),
                    "-i",
                    d,
                    "-u",
                    d,
                    "-P",
                    s,
                    "-q",
                    "1",
                    "-M",
                    "1000",
                    "-t",
                    f"atoll/v1/devices/{d}/telemetry",
                    "-l",
                ],
                stdin=open(f, "rb"),  # noqa: SIM115
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for (d, s), f in zip(devices, files, strict=True)
        ]
        generator = "mosquitto_pub -l -q 1 -M 1000"
    else:
        procs = [
            _spawn(
                [
                    *LOADGEN,
                    "mqtt",
                    "--port",
                    str(p.mqtt.port),
                    "--device",
                    d,
                    f"--secret={s}",
                    "--messages",
                    str(messages),
                    "--readings",
                    "1",
                    "--metrics",
                    "1",
                ]
            )
            for d, s in devices
        ]
        await _ready(procs)
        t0 = time.perf_counter()
        _go(procs)
        generator = "paho (mosquitto_pub not installed)"
    t1 = await _until(lambda: stats.messages - base >= total)
    cpu = _cpu_seconds(resource.RUSAGE_SELF) - cpu0
    for proc in procs:
        await asyncio.to_thread(proc.wait, 60)
    return {
        "messages": total,
        "generator": generator,
        "publishers": len(devices),
        "seconds": round(t1 - t0, 3),
        "messages_per_second": round(total / (t1 - t0)),
        # CPU of this process (ingest: event loop + writer thread) and of the publishers.
        "server_cpu_us_per_message": round(cpu / total * 1e6, 1),
        "publishers_cpu_us_per_message": round(
            (_cpu_seconds(resource.RUSAGE_CHILDREN) - children0) / total * 1e6, 1
        ),
        "load_average_at_start": round(load, 2),
    }


async def _http_batched(p, devices, requests: int, readings: int, metrics: int) -> dict:
    stats = p.pipeline.stats
    base = stats.points
    total = len(devices) * requests * readings * metrics
    procs = [
        _spawn(
            [
                *LOADGEN,
                "http",
                "--url",
                p.http_url,
                "--device",
                d,
                f"--secret={s}",
                "--requests",
                str(requests),
                "--readings",
                str(readings),
                "--metrics",
                str(metrics),
                "--concurrency",
                "16",
            ]
        )
        for d, s in devices
    ]
    await _ready(procs)
    t0 = time.perf_counter()
    _go(procs)
    t1 = await _until(lambda: stats.points - base >= total)
    gens = await _results(procs)
    return {
        "points": total,
        "requests": len(devices) * requests,
        "points_per_request": readings * metrics,
        "seconds": round(t1 - t0, 3),
        "points_per_second": round(total / (t1 - t0)),
        "clients": gens,
    }


async def _broker_passthrough(messages: int, body_readings: int, metrics: int, tmp: Path) -> dict:
    """Publisher → subscriber through a bare amqtt broker (the library Atoll embeds), QoS 1."""
    from amqtt.broker import Broker

    from atoll.sim.mosquitto import free_port

    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        sub = _spawn(
            [
                *LOADGEN,
                "sub",
                "--port",
                str(port),
                "--topic",
                "bench/t",
                "--messages",
                str(messages),
            ]
        )
        await _ready([sub])
        mosquitto_pub = shutil.which("mosquitto_pub")
        if body_readings == 1 and mosquitto_pub:
            f = _lines_file(tmp, messages, 10_000_000)
            pub = subprocess.Popen(
                [mosquitto_pub, "-p", str(port), "-q", "1", "-M", "1000", "-t", "bench/t", "-l"],
                stdin=open(f, "rb"),
                stdout=subprocess.DEVNULL,  # noqa: SIM115
                stderr=subprocess.DEVNULL,
            )
        else:
            from atoll.bench.loadgen import payload

            f = tmp / "batch.bin"
            f.write_bytes(payload(0, body_readings, metrics))
            pub = subprocess.Popen(
                [
                    mosquitto_pub or "mosquitto_pub",
                    "-p",
                    str(port),
                    "-q",
                    "1",
                    "-t",
                    "bench/t",
                    "-f",
                    str(f),
                    "--repeat",
                    str(messages),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        (res,) = await _results([sub])
        await asyncio.to_thread(pub.wait, 60)
    finally:
        await broker.shutdown()
    secs = res.get("seconds")
    if not secs:
        return {
            "messages": res.get("messages"),
            "seconds": None,
            "messages_per_second": None,
            "points_per_second": None,
        }
    points = messages * body_readings * (metrics if body_readings > 1 else 1)
    return {
        "messages": res.get("messages"),
        "seconds": round(secs, 3),
        "messages_per_second": round(res.get("messages", 0) / secs),
        "points_per_second": round(points / secs),
    }


async def _external_single(tmp: Path, messages: int, workers: int, echo) -> dict | None:
    """Single-reading messages through a Mosquitto started here, ingested by Atoll's shared
    subscription workers (external mode), persisted."""
    from argon2 import PasswordHasher

    from atoll.bench.broker import external_broker
    from atoll.config import Settings
    from atoll.core.errors import Unavailable
    from atoll.platform import Platform

    mosquitto_pub = shutil.which("mosquitto_pub")
    if not mosquitto_pub:
        echo("external broker phase skipped: mosquitto is not installed")
        return None
    try:
        broker_cm = external_broker(tmp / "mosquitto")
        broker = broker_cm.__enter__()
    except Unavailable:
        echo("external broker phase skipped: mosquitto is not installed")
        return None
    port = broker.port
    try:
        settings = Settings(
            home=tmp / "home-ext",
            http_port=0,
            mqtt_mode="external",
            services=[],
            **NO_RATE_LIMITS,
            mqtt_url=broker.mqtt_url,
            mqtt_workers=workers,
            **broker.settings(),
        )
        p = Platform(
            settings, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        await p.start()
        try:
            p.registry.create_project("default", "Bench", project_id="bench")
            devices = []
            for i in range(2):
                _, creds = p.registry.register_device("bench", device_id=f"ext-{i}")
                devices.append((creds.device, creds.secret))
            for dev, sec in devices:  # mosquitto reloads its password file on SIGHUP
                await asyncio.to_thread(_wait_for_login, port, dev, sec)
            assert p.pipeline is not None  # started above
            stats = p.pipeline.stats
            files_ = [
                _lines_file(tmp, messages, 20_000_000 + i * messages) for i in range(len(devices))
            ]
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [
                        mosquitto_pub,
                        "-p",
                        str(port),
                        "-i",
                        dev,
                        "-u",
                        dev,
                        "-P",
                        sec,
                        "-q",
                        "1",
                        "-M",
                        "1000",
                        "-t",
                        f"atoll/v1/devices/{dev}/telemetry",
                        "-l",
                    ],
                    stdin=open(f, "rb"),  # noqa: SIM115
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for (dev, sec), f in zip(devices, files_, strict=True)
            ]
            total = len(devices) * messages
            t1 = await _until(lambda: stats.messages >= total)
            for proc in procs:
                await asyncio.to_thread(proc.wait, 60)
        finally:
            await p.stop()
    finally:
        await asyncio.to_thread(broker_cm.__exit__, None, None, None)
    return {
        "messages": total,
        "workers": workers,
        "broker": "mosquitto (own, ephemeral port)",
        "seconds": round(t1 - t0, 3),
        "messages_per_second": round(total / (t1 - t0)),
    }


async def _port_open(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def _wait_for_login(port: int, user: str, password: str, timeout: float = 10.0) -> None:
    import threading

    import paho.mqtt.client as mqtt

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}:probe")
        c.username_pw_set(user, password)

        def on_connect(cl, ud, fl, rc, pr, ok=ok):
            if not rc.is_failure:
                ok.set()

        c.on_connect = on_connect
        try:
            c.connect("127.0.0.1", port)
            c.loop_start()
            if ok.wait(1.0):
                return
        finally:
            c.loop_stop()
            c.disconnect()
        time.sleep(0.1)
    raise TimeoutError(f"{user} cannot log in to the broker")


def _store_and_charts(tmp: Path, raw_points: int, chart_days: int) -> dict:
    from atoll.bench.store import DAY, KEY, T0, bulk_append_rate, time_query
    from atoll.store import open_store

    store = open_store(f"duckdb://{tmp}/raw.duckdb")
    try:
        raw = bulk_append_rate(store, points=raw_points, chunk=min(500_000, raw_points))
    finally:
        store.close()
    store = open_store(f"duckdb://{tmp}/chart.duckdb")
    try:
        bulk_append_rate(store, points=chart_days * 86_400, chunk=604_800)
        if hasattr(store, "compact"):
            store.compact()
        end = T0 + chart_days * DAY
        charts = {}
        for label, span in {"1 day": DAY, "1 week": 7 * DAY, "1 year": 365 * DAY}.items():
            if span <= chart_days * DAY:
                charts[label] = time_query(
                    functools.partial(store.query_chart, KEY, end - span, end, 1000), 5
                )
    finally:
        store.close()
    return {
        "store_raw_append": raw,
        "chart_queries_width_1000": charts,
        "chart_data_points": chart_days * 86_400,
    }


async def run(
    *, scale: float = 1.0, chart_days: int = 365, services: bool = False, echo=print
) -> dict:
    from argon2 import PasswordHasher

    from atoll.config import Settings
    from atoll.platform import Platform, tune_interpreter

    tune_interpreter()
    tmp = Path(tempfile.mkdtemp(prefix="atoll-bench-ingest-"))
    result: dict = {
        "benchmark": "ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": _platform.python_version(),
        "store": "duckdb (temp dir)",
        "broker": "embedded (amqtt 0.12.1; device connections read by Atoll's chunked reader)",
        "services_running": "all" if services else "none (ingest only)",
        "rate_limits": "off (raw throughput)",
    }
    try:
        # Detectors and rules share the event loop with ingest; off by default so the numbers
        # are ingest's own (``--services`` measures the whole platform). Rate limits are off:
        # this measures raw throughput from a few devices, far above any device's default
        # limit (bench/tenant_fairness.py measures the limits).
        settings = Settings(
            home=tmp / "home",
            http_port=0,
            mqtt_port=0,
            max_payload_bytes=1 << 20,
            services=None if services else [],
            **NO_RATE_LIMITS,
        )
        p = Platform(
            settings, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        await p.start()
        result["gc_frozen_objects"] = gc.get_freeze_count()  # see atoll.platform.tune_interpreter
        try:
            reg = p.registry
            reg.create_project("default", "Bench", project_id="bench")
            reg.create_device_type("bench", "meter", [{"name": f"m{k}"} for k in range(10)])
            devices = []
            for i in range(4):
                _, creds = reg.register_device("bench", device_id=f"bench-{i}", device_type="meter")
                devices.append((creds.device, creds.secret))
            n = max(1, int(300 * scale))
            r = await _mqtt_batched(p, devices[:2], n, 100, 10)
            echo(f"MQTT batched (1000 points/msg): {r['points_per_second']:,} points/s persisted")
            result["mqtt_batched"] = r
            n = max(1, int(20_000 * scale))
            r = await _mqtt_single(p, devices[2:4], n, tmp)
            echo(
                f"MQTT single-reading messages: {r['messages_per_second']:,} msgs/s persisted "
                f"({r['server_cpu_us_per_message']} µs server CPU per message)"
            )
            result["mqtt_single"] = r
            n = max(1, int(150 * scale))
            r = await _http_batched(p, devices[:2], n, 100, 10)
            echo(
                f"HTTP batches (1000 points/request): {r['points_per_second']:,} points/s persisted"
            )
            result["http_batched"] = r
            assert p.pipeline is not None  # started above
            result["ingest_stats"] = {
                "commits": p.pipeline.stats.commits,
                "commit_seconds": round(p.pipeline.stats.commit_seconds, 3),
            }
        finally:
            await p.stop()
        ext = await _external_single(tmp, max(1, int(20_000 * scale)), 2, echo)
        if ext is not None:
            echo(
                f"external Mosquitto + {ext['workers']} Atoll workers, single-reading messages: "
                f"{ext['messages_per_second']:,} msgs/s persisted"
            )
            result["external_mosquitto_single"] = ext
        r = await _broker_passthrough(max(1, int(300 * scale)), 100, 10, tmp)
        echo(f"broker pass-through, 1000-point messages: {r['points_per_second']} points/s")
        result["broker_passthrough_batched"] = r
        r = await _broker_passthrough(max(1, int(20_000 * scale)), 1, 1, tmp)
        echo(f"broker pass-through, single-reading messages: {r['messages_per_second']} msgs/s")
        result["broker_passthrough_single"] = r
        sc = await asyncio.to_thread(
            _store_and_charts, tmp, max(100_000, int(2_000_000 * scale)), chart_days
        )
        result.update(sc)
        echo(f"raw store bulk append: {sc['store_raw_append']['points_per_second']:,} points/s")
        for label, q in sc["chart_queries_width_1000"].items():
            echo(
                f"chart query {label} ({chart_days} days of 1 Hz stored):"
                f" {q['median_ms']} ms median"
            )
        raw = sc["store_raw_append"]["points_per_second"]
        ratios = {
            "mqtt_batched_vs_store_raw": result["mqtt_batched"]["points_per_second"] / raw,
            "http_batched_vs_store_raw": result["http_batched"]["points_per_second"] / raw,
        }
        if result["broker_passthrough_batched"]["points_per_second"]:
            ratios["mqtt_batched_vs_broker_passthrough"] = (
                result["mqtt_batched"]["points_per_second"]
                / result["broker_passthrough_batched"]["points_per_second"]
            )
        if result["broker_passthrough_single"]["messages_per_second"]:
            ratios["mqtt_single_vs_broker_passthrough"] = (
                result["mqtt_single"]["messages_per_second"]
                / result["broker_passthrough_single"]["messages_per_second"]
            )
        result["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
        echo("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
