"""PUBACK means durable: kill -9 the platform mid-stream,
restart it, every acknowledged point is there."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from atoll.core import topics

ATOLL = [
    sys.executable,
    "-m",
    "atoll.cli.main",
    "up",
    "--http-port",
    "0",
    "--mqtt-port",
    "0",
    "--log-level",
    "warning",
]


def start(home: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    """Run ``atoll up`` and wait until it wrote ``runtime.json`` (ports) and printed its secrets."""
    proc = subprocess.Popen(
        [*ATOLL, "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    lines: list[str] = []
    # A reader thread keeps draining output so the child never blocks on a full pipe.
    threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    ).start()
    runtime = home / "runtime.json"
    deadline = time.monotonic() + 60
    while not (runtime.exists() and any("Press Ctrl-C" in x for x in lines)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("atoll up did not start:\n" + "".join(lines))
        time.sleep(0.05)
    info = json.loads(runtime.read_text())
    info["key"] = next((x.split()[-1] for x in lines if "admin API key" in x), None)
    info["log"] = lines  # keeps growing: the server's output, for failure messages
    return proc, info


def test_acknowledged_points_survive_kill_9(tmp_path):
    home = tmp_path / "home"
    proc, info = start(home)
    try:
        _publish_then_kill(proc, info, home)
    finally:
        if proc.poll() is None:
            proc.kill()


def _publish_then_kill(proc, info, home):
    key = info["key"]
    auth = {"Authorization": f"Bearer {key}"}
    api = httpx.Client(base_url=info["http_url"] + "/api/v1", headers=auth, timeout=10)
    assert api.post("/projects", json={"name": "Lab", "id": "lab"}).status_code == 201
    r = api.post("/projects/lab/devices", json={"id": "d1"})
    secret = r.json()["credentials"]["secret"]
    port = int(info["mqtt_url"].rsplit(":", 1)[1])

    sent: list[tuple[int, mqtt.MQTTMessageInfo]] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="d1")
    c.username_pw_set("d1", secret)
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    # Each reading has its own timestamp: a store keeps one point per series and timestamp.
    t0_ms = int(time.time() * 1000) - 3_600_000

    def send(value: int) -> None:
        body = json.dumps(
            [{"ts": t0_ms + value + i, "values": {"v": value + i}} for i in range(5)]
        ).encode()
        sent.append((value, c.publish(topics.telemetry("d1"), body, qos=1)))

    try:
        value = 0
        # Generous: the platform's first telemetry compiles the detectors (numba), which can hold
        # its event loop for tens of seconds on a loaded machine.
        t_end = time.monotonic() + 120
        while time.monotonic() < t_end and sum(1 for _, m in sent[-400:] if m.is_published()) < 300:
            if sum(1 for _, m in sent[-1000:] if not m.is_published()) >= 1000:
                time.sleep(0.05)  # nothing acknowledged lately: wait instead of queueing more
                continue
            send(value)
            value += 5
            if value % 500 == 0:
                time.sleep(0.01)
        for _ in range(2000):  # a burst the server cannot have acknowledged by the kill
            send(value)
            value += 5
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: messages are still in flight
        proc.wait(10)
    finally:
        c.loop_stop()
    # is_published() turns true only when the PUBACK arrived.
    acked = [v for v, m in sent if m.is_published()]
    assert len(acked) > 100, (
        "the test needs acknowledged messages to mean anything; server log:\n"
        + "".join(info["log"][-40:])
    )
    assert len(acked) < len(sent), "kill -9 should have caught messages in flight"
    expected = {v + i for v in acked for i in range(5)}

    proc2, info2 = start(home)
    try:
        api2 = httpx.Client(base_url=info2["http_url"] + "/api/v1", headers=auth, timeout=30)
        r = api2.get("/devices/d1/series/v", params={"start": 0, "mode": "raw"})
        assert r.status_code == 200, r.text
        stored = {int(v) for v in r.json()["value"]}
        missing = expected - stored
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {sorted(missing)[:10]}"
    finally:
        proc2.send_signal(signal.SIGINT)
        try:
            assert proc2.wait(30) == 0, "Ctrl-C must stop atoll cleanly"
        finally:
            if proc2.poll() is None:
                proc2.kill()
