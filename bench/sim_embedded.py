"""Benchmark: `atoll sim` against a fresh embedded `atoll up`, and the broker's CPU per message.

Starts ``atoll up`` on a fresh data directory (embedded broker and DuckDB store, default
services), reads the admin API key it prints, then runs the command of issue #16:

    atoll sim --api URL --api-key KEY -t TEMPLATE -n N -r R --broker mqtt://... -d D --json F

The broker process's CPU (user + system, from ``/proc/<pid>/stat``) is sampled twice a second.
The publishing phase starts when the simulator reports its connect phase done (its
``connecting`` line) and ends when the simulator exits; CPU per acknowledged message is the
broker's CPU over that phase divided by the messages acknowledged. CPU-seconds per message
depend much less on the machine's load than msgs/s do (on a shared machine the broker may get
only part of a core). The simulator's own CPU is read the same way when it reports its connect
phase done, and from the kernel (``wait4``) when it exits: ``sim_cpu_per_acked_msg_ms`` is its
CPU over the publishing phase per acknowledged message. Then ``atoll up`` gets SIGINT and the
time it takes to stop is measured.

    .venv/bin/python bench/sim_embedded.py -n 2000 -r 1 -d 30 --json /tmp/r.json
    .venv/bin/python bench/sim_embedded.py -n 10000 -r 0.2 -d 60 \\
        --json bench/results/sim_10k_embedded_cpu.json

``--py-spy PATH`` records the broker with py-spy (an executable outside the project's
dependencies) during the publishing phase into ``--json``'s name with ``.speedscope.json``;
``--py-spy-format raw`` writes collapsed stacks instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _threads_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by native thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


class Sampler(threading.Thread):
    """(wall time, broker CPU s, load average, RSS MB) every ``period`` s."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float, float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append(
                    (
                        time.time(),
                        _proc_cpu(self.pid),
                        os.getloadavg()[0],
                        _rss_mb(self.pid)[0],
                    )
                )
            except (OSError, AttributeError):
                return
            self.done.wait(self.period)

    def cpu_at(self, t: float) -> float:
        """Broker CPU at wall time ``t`` (the nearest sample at or before it)."""
        best = self.samples[0][1]
        for ts, cpu, _, _ in self.samples:
            if ts > t:
                break
            best = cpu
        return best

    def between(self, t0: float, t1: float) -> list[tuple[float, float, float, float]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--devices", type=int, default=2000)
    ap.add_argument("-r", "--rate", type=float, default=1.0)
    ap.add_argument("-d", "--duration", type=float, default=30.0)
    ap.add_argument("-t", "--template", default="manufacturing")
    ap.add_argument("--http-port", type=int, default=0, help="0: a free one")
    ap.add_argument("--mqtt-port", type=int, default=0, help="0: a free one")
    ap.add_argument("--home", type=Path, help="data directory (must not exist; default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--py-spy", help="path of a py-spy executable: profile the broker")
    ap.add_argument("--py-spy-format", default="speedscope", choices=["speedscope", "raw"])
    ap.add_argument("--label", default="", help="what code this is (written to the JSON)")
    ap.add_argument(
        "--address-cap",
        type=int,
        help="ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS for the broker [its default, 1,000: the "
        "simulator spreads a large fleet over 127.0.0.x]",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    http_port = args.http_port or _free_port()
    mqtt_port = args.mqtt_port or _free_port()
    tmp = None
    if args.home is None:
        tmp = Path(tempfile.mkdtemp(prefix="atoll-sim-embedded-"))
        home = tmp / "home"
    else:
        home = args.home
        if home.exists():
            sys.exit(f"{home} exists: the broker must start on a fresh data directory")
    workdir = home.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.address_cap:
        env["ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS"] = str(args.address_cap)
    up_cmd = [
        str(VENV_BIN / "atoll"),
        "up",
        "--home",
        str(home),
        "--http-port",
        str(http_port),
        "--mqtt-port",
        str(mqtt_port),
    ]
    up_log = open(workdir / "up.log", "w")  # noqa: SIM115 - closed at the end
    up = subprocess.Popen(up_cmd, stdout=subprocess.PIPE, stderr=up_log, env=env, text=True)
    key = None
    assert up.stdout is not None
    for line in up.stdout:
        up_log.write(line)
        if "admin API key" in line:
            key = line.split()[-1]
        if line.startswith("Press Ctrl-C"):
            break
    if key is None:
        up.kill()
        sys.exit("atoll up did not print an admin API key")
    threading.Thread(
        target=lambda: [up_log.write(x) for x in up.stdout],
        daemon=True,  # type: ignore[union-attr]
    ).start()
    sampler = Sampler(up.pid)
    sampler.start()

    sim_json = workdir / "sim.json"
    sim_cmd = [
        str(VENV_BIN / "atoll"),
        "sim",
        "--api",
        f"http://127.0.0.1:{http_port}",
        "--api-key",
        key,
        "-t",
        args.template,
        "-n",
        str(args.devices),
        "-r",
        f"{args.rate:g}",
        "--broker",
        f"mqtt://127.0.0.1:{mqtt_port}",
        "-d",
        f"{args.duration:g}",
        "--json",
        str(sim_json),
    ]
    load_before = [round(x, 2) for x in os.getloadavg()]
    t_start = time.time()
    sim = subprocess.Popen(
        sim_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    marks: dict[str, float] = {}
    sim_cpu_connected = 0.0
    threads_before: dict[int, float] = {}
    spy = None
    spy_out = None
    sim_lines = []
    assert sim.stdout is not None
    for line in sim.stdout:
        sim_lines.append(line)
        sys.stdout.write(line)
        for phase in ("registering devices", "connecting", "publishing"):
            if line.startswith(phase):
                marks[phase] = time.time()
        if line.startswith("connecting"):
            threads_before = _threads_cpu(up.pid)
            sim_cpu_connected = _proc_cpu(sim.pid)
        if line.startswith("connecting") and args.py_spy and args.json:
            suffix = ".speedscope.json" if args.py_spy_format == "speedscope" else ".folded"
            spy_out = args.json.with_name(args.json.stem + suffix)
            spy = subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--pid",
                    str(up.pid),
                    "--rate",
                    "50",
                    "--threads",
                    "--format",
                    args.py_spy_format,
                    "--output",
                    str(spy_out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    _, status, usage = os.wait4(sim.pid, 0)  # the simulator's own CPU, from the kernel
    sim.returncode = os.waitstatus_to_exitcode(status)
    t_end = time.time()
    sim_cpu = usage.ru_utime + usage.ru_stime
    threads_after = _threads_cpu(up.pid)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    stats = json.loads(sim_json.read_text()) if sim_json.exists() else {}
    rss_now, rss_peak = _rss_mb(up.pid)

    # Stop the broker, as Ctrl-C does, and time it.
    t_stop = time.time()
    up.send_signal(signal.SIGINT)
    try:
        up.wait(timeout=600)
    except subprocess.TimeoutExpired:
        up.kill()
    stop_s = time.time() - t_stop
    sampler.done.set()
    sampler.join()
    up_log.close()

    t_pub = marks.get("connecting", t_start)
    acked = stats.get("acked", 0)
    cpu_pub = sampler.cpu_at(t_end) - sampler.cpu_at(t_pub)
    during = sampler.between(t_pub, t_end)
    loads = [s[2] for s in sampler.samples if t_start <= s[0] <= t_end]
    offered = args.devices * args.rate
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "broker": " ".join(up_cmd[1:2] + ["--home", "<fresh>", *up_cmd[4:]]),
        "command": " ".join(sim_cmd[1:5] + ["$KEY", *sim_cmd[6:-1], "FILE"]),
        "offered_msgs_per_s": offered,
        "register_s": round(marks.get("registering devices", t_start) - t_start, 1),
        "publishing_wall_s": round(t_end - t_pub, 1),
        "broker_cpu_publishing_s": round(cpu_pub, 1),
        "broker_cores_publishing": round(cpu_pub / max(t_end - t_pub, 1e-9), 2),
        "broker_cpu_per_acked_msg_ms": round(1000 * cpu_pub / acked, 3) if acked else None,
        "acked_fraction_of_offered": round(stats.get("msgs_per_s", 0) / offered, 3),
        "load_average_1m": [round(min(loads), 2), round(max(loads), 2)] if loads else None,
        "broker_rss_mb": {
            "peak": round(rss_peak),
            "end": round(rss_now),
            "max_during_publishing": round(max((s[3] for s in during), default=0)),
        },
        "sim_exit_code": sim.returncode,
        "sim_cpu_s": round(sim_cpu, 1),
        "sim_cpu_publishing_s": round(sim_cpu - sim_cpu_connected, 1),
        "sim_cpu_per_acked_msg_ms": (
            round(1000 * (sim_cpu - sim_cpu_connected) / acked, 3) if acked else None
        ),
        "load_average_before": load_before,
        "broker_stop_s": round(stop_s, 1),
        # Native thread id -> CPU s while publishing (py-spy's output names the threads).
        "broker_threads_cpu_publishing_s": {
            tid: round(cpu - threads_before.get(tid, 0.0), 1)
            for tid, cpu in sorted(threads_after.items(), key=lambda kv: -kv[1])
            if cpu - threads_before.get(tid, 0.0) >= 0.1
        },
        "profile": str(spy_out) if spy_out else None,
        "sim": stats,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "sim"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
