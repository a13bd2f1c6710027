"""Tenant fairness: another tenant's PUBACK latency while one device (or tenant) floods.

    .venv/bin/python bench/tenant_fairness.py --json bench/results/tenant_fairness.json

Atoll runs in this process as ``atoll up`` would on the embedded broker (DuckDB store in a
temp dir, default settings, so the default rate limits; detectors and rules off as in
``atoll bench ingest``). Tenant ``default`` has the flooding devices, tenant ``victim`` one
device ``b1`` that publishes one QoS 1 reading every ``--period`` seconds and waits for its
PUBACK; its latencies are measured in its own process (paho), so they include the broker's
queueing as a device sees it. Each phase starts a fresh platform:

* ``baseline``: only the victim;
* ``flood_unlimited``: one device floods with ``mosquitto_pub -l -q 1 -M 1000`` (as fast as
  a C client goes) and the rate limits are off: the situation before limits (issue #9);
* ``flood_max_speed``: the same flood with the default limits;
* ``flood_at_limit``: the device publishes at exactly its limit (paho, paced);
* ``tenant_flood``: ``--tenant-devices`` devices of one tenant flood at once, so the tenant
  limit binds.

Floods start ``--warm-up`` seconds before the victim, so the burst is spent and the limit is what is
measured. The flooders' accepted rate is counted over the victim's window (messages stored, less the
victim's). The writer's queue (``IngestPipeline`` pending points) is sampled to show whether the
group commit queue fills up (``room()`` would then slow every tenant).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform as _platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

# -- publishers (separate processes, so they do not share the server's GIL) ------------------


def victim(a) -> dict:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.device)
    c.username_pw_set(a.device, a.secret)
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    c.connect("127.0.0.1", a.port)
    c.loop_start()
    connected.wait(10)
    print("ready", flush=True)
    sys.stdin.readline()
    topic = f"atoll/v1/devices/{a.device}/telemetry"
    latencies, lost = [], 0
    t_end = time.perf_counter() + a.seconds
    i = 0
    next_at = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        info = c.publish(topic, b'{"values": {"v": %d}}' % i, qos=1)
        info.wait_for_publish(30)
        if info.is_published():
            latencies.append((time.perf_counter() - t0) * 1000)
        else:
            lost += 1
        i += 1
        next_at += a.period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    c.disconnect()
    c.loop_stop()
    return {"latencies_ms": latencies, "not_acked": lost}


def paced(a) -> dict:
    """QoS 1 single readings at ``--rate`` messages/s (in 10 ms slices), up to 1000 in flight."""
    import paho.mqtt.client as mqtt

    from atoll.bench.loadgen import payload

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.device)
    c.username_pw_set(a.device, a.secret)
    c.max_inflight_messages_set(1000)
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    c.connect("127.0.0.1", a.port)
    c.loop_start()
    connected.wait(10)
    print("ready", flush=True)
    topic = f"atoll/v1/devices/{a.device}/telemetry"
    per_slice = a.rate / 100
    sent, due, t0 = 0, 0.0, time.perf_counter()
    while True:  # until killed
        due += per_slice
        while sent < due:
            c.publish(topic, payload(sent, 1, 1), qos=1)
            sent += 1
        time.sleep(max(0.0, t0 + sent / a.rate - time.perf_counter()))


# -- the driver ------------------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


async def _ready(p: subprocess.Popen) -> None:
    line = await asyncio.to_thread(p.stdout.readline)
    if line.strip() != "ready":
        raise RuntimeError(f"publisher failed: {line}{p.stderr.read()}")


def _lines(tmp: Path, n: int) -> Path:
    from atoll.bench.loadgen import payload

    path = tmp / f"flood-{n}.txt"
    if not path.exists():
        with open(path, "wb") as f:
            f.writelines(payload(i, 1, 1) + b"\n" for i in range(n))
    return path


def _flood(port: int, device: str, secret: str, lines: Path) -> subprocess.Popen:
    """``mosquitto_pub -l`` over and over: it stops by itself after some 38 k lines."""
    pub = shlex.join(
        [
            shutil.which("mosquitto_pub") or "mosquitto_pub",
            "-p",
            str(port),
            "-i",
            device,
            "-u",
            device,
            "-P",
            secret,
            "-q",
            "1",
            "-M",
            "1000",
            "-t",
            f"atoll/v1/devices/{device}/telemetry",
            "-l",
        ]
    )
    return subprocess.Popen(
        ["sh", "-c", f"while :; do {pub} < {shlex.quote(str(lines))}; done"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"count": 0}
    s = sorted(ms)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)

    return {
        "count": len(s),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": round(s[-1], 2),
        "mean_ms": round(statistics.fmean(s), 2),
        "worst_5_ms": [round(x, 1) for x in s[-5:]],
    }


async def phase(
    name: str, tmp: Path, a, *, limits: bool, flood: str | None, flooders: int = 1
) -> dict:
    from argon2 import PasswordHasher

    from atoll.config import Settings
    from atoll.platform import Platform

    kw = {} if limits else {"quota_device_rate": 0, "quota_tenant_rate": 0}
    settings = Settings(home=tmp / name, http_port=0, mqtt_port=0, services=[], **kw)
    p = Platform(
        settings, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    await p.start()
    procs: list[subprocess.Popen] = []
    try:
        reg = p.registry
        reg.create_project("default", "Flood", project_id="flood")
        reg.create_tenant("Victim", "victim")
        quiet = reg.create_project("victim", "Victim", project_id="quiet").id  # victim~quiet
        floods = [reg.register_device("flood", device_id=f"a{i}")[1] for i in range(flooders)]
        b1 = reg.register_device(quiet, device_id="b1")[1]
        port = p.mqtt.port

        if flood == "max_speed":
            lines = _lines(tmp, a.flood_lines)
            procs += [_flood(port, c.device, c.secret, lines) for c in floods]
        elif flood == "at_limit":
            for c in floods:
                procs.append(
                    _spawn(
                        "paced",
                        "--port",
                        str(port),
                        "--device",
                        c.device,
                        "--secret",
                        c.secret,
                        "--rate",
                        str(settings.quota_device_rate),
                    )
                )
                await _ready(procs[-1])
        if flood:
            await asyncio.sleep(a.warm_up)
        v = _spawn(
            "victim",
            "--port",
            str(port),
            "--device",
            b1.device,
            "--secret",
            b1.secret,
            "--period",
            str(a.period),
            "--seconds",
            str(a.seconds),
        )
        await _ready(v)
        stats = p.pipeline.stats
        before = stats.messages
        throttled0, throttled_s0 = stats.throttled, stats.throttled_seconds
        load = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        v.stdin.write("go\n")
        v.stdin.flush()
        commits0, commit_s0 = stats.commits, stats.commit_seconds
        pending: list[int] = []
        lag: list[float] = []  # how late a 5 ms sleep wakes up: the event loop's backlog
        while v.poll() is None:
            pending.append(p.pipeline._pending_points)
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lag.append((time.perf_counter() - t - 0.005) * 1000)
        window = time.perf_counter() - t0
        commits = stats.commits - commits0
        cpu = _cpu_seconds() - cpu0
        out = json.loads(v.stdout.read().strip().splitlines()[-1])
        flooded = stats.messages - before - len(out["latencies_ms"]) - out["not_acked"]
        result = {
            "limits": "default" if limits else "off",
            "flood": flood or "none",
            "flooding_devices": flooders if flood else 0,
            "victim": {
                **_percentiles(out["latencies_ms"]),
                "not_acked": out["not_acked"],
                "period_s": a.period,
            },
            "flooders_accepted_msgs_per_s": round(flooded / window) if flood else 0,
            "window_s": round(window, 2),
            "throttled_pauses": stats.throttled - throttled0,
            "throttled_seconds": round(stats.throttled_seconds - throttled_s0, 2),
            "writer_queue_max_points": max(pending, default=0),
            "event_loop_lag_ms": {
                k: v for k, v in _percentiles(lag).items() if k in ("p50_ms", "p99_ms", "max_ms")
            },
            "commits_per_s": round(commits / window),
            "commit_ms_mean": round(1000 * (stats.commit_seconds - commit_s0) / max(commits, 1), 2),
            # This process: event loop, ingest writer thread, store (100 = one core).
            "server_cpu_percent": round(100 * cpu / window),
            "load_average_at_start": round(load, 2),
        }
        print(
            f"{name:18} victim p50 {result['victim'].get('p50_ms')} ms, p99 "
            f"{result['victim'].get('p99_ms')} ms; flooders accepted "
            f"{result['flooders_accepted_msgs_per_s']:,} msgs/s; server CPU "
            f"{result['server_cpu_percent']} %; loop lag p99 "
            f"{result['event_loop_lag_ms'].get('p99_ms')} ms; {result['commits_per_s']} commits/s "
            f"of {result['commit_ms_mean']} ms; load {load:.1f}",
            flush=True,
        )
        return result
    finally:
        for proc in procs:
            await asyncio.to_thread(_stop, proc)
        await p.stop()


async def run(a) -> dict:
    from atoll.config import Settings
    from atoll.platform import tune_interpreter

    tune_interpreter()
    s = Settings()
    result: dict = {
        "benchmark": "tenant_fairness",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "cpus": os.cpu_count(),
        "python": _platform.python_version(),
        "default_limits": {
            "device_points_per_s": s.quota_device_rate,
            "device_burst": s.quota_device_burst,
            "tenant_points_per_s": s.quota_tenant_rate,
            "tenant_burst": s.quota_tenant_burst,
        },
        "flooder": "mosquitto_pub -l -q 1 -M 1000 (max speed) / paho paced (at limit)",
        "rounds": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="atoll-bench-fairness-"))
    plan = [
        ("baseline", True, None, 1),
        ("flood_unlimited", False, "max_speed", 1),
        ("flood_max_speed", True, "max_speed", 1),
        ("flood_at_limit", True, "at_limit", 1),
        ("tenant_flood", True, "max_speed", a.tenant_devices),
    ]
    plan = [x for x in plan if not a.only or x[0] in a.only]
    try:
        # Phases interleaved, round after round: the machine is shared, so its load drifts.
        for r in range(a.rounds):
            result["rounds"].append(
                {
                    name: await phase(f"{name}-{r}", tmp, a, limits=limits, flood=flood, flooders=n)
                    for name, limits, flood, n in plan
                }
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["summary"] = {name: _summary([r[name] for r in result["rounds"]]) for name, *_ in plan}
    return result


def _summary(runs: list[dict]) -> dict:
    """Medians over the rounds."""

    def med(get) -> float:
        return round(statistics.median(get(r) for r in runs), 2)

    return {
        "victim_p50_ms": med(lambda r: r["victim"]["p50_ms"]),
        "victim_p99_ms": med(lambda r: r["victim"]["p99_ms"]),
        "victim_p99_ms_each_round": [r["victim"]["p99_ms"] for r in runs],
        "flooders_accepted_msgs_per_s": med(lambda r: r["flooders_accepted_msgs_per_s"]),
        "server_cpu_percent": med(lambda r: r["server_cpu_percent"]),
        "writer_queue_max_points": max(r["writer_queue_max_points"] for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode")
    for mode in ("victim", "paced"):
        m = sub.add_parser(mode)
        m.add_argument("--port", type=int, required=True)
        m.add_argument("--device", required=True)
        m.add_argument("--secret", required=True)
        m.add_argument("--period", type=float, default=0.05)
        m.add_argument("--seconds", type=float, default=20)
        m.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--seconds", type=float, default=20, help="victim's window per phase")
    ap.add_argument("--period", type=float, default=0.05, help="victim: one message every N s")
    ap.add_argument("--warm-up", type=float, default=3.0)
    ap.add_argument("--flood-lines", type=int, default=30_000)
    ap.add_argument("--tenant-devices", type=int, default=12)
    ap.add_argument("--only", nargs="*", help="run only these phases")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.mode == "victim":
        print(json.dumps(victim(a)), flush=True)
        return
    if a.mode == "paced":
        paced(a)
        return
    result = asyncio.run(run(a))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
