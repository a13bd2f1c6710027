"""The README's "Connect a real device" snippets, run as written against a real `atoll up`.

The shell block runs in bash with curl and mosquitto_pub; only the ports are changed. The Python
block runs with the secret and key it names. A README example nobody runs would rot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
ATOLL = Path(sys.executable).with_name("atoll")


def _blocks(lang: str) -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## Connect a real device", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def atoll_up(tmp_path):
    http, mqtt = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            str(ATOLL),
            "up",
            "--home",
            str(tmp_path / "home"),
            "--http-port",
            str(http),
            "--mqtt-port",
            str(mqtt),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    key = None
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "admin API key" in line:
            key = line.split()[-1]
        if "Press Ctrl-C" in line:
            break
    assert key, "atoll up did not print its first-start key:\n" + "".join(lines)
    try:
        yield http, mqtt, key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("mosquitto_pub")),
    reason="needs curl and mosquitto_pub (make test installs mosquitto)",
)
def test_readme_device_snippets_work(atoll_up):
    http, mqtt, key = atoll_up
    register, send = _blocks("sh")
    python = _blocks("python")[0]
    env = {**os.environ, "KEY": key}

    def bash(script: str) -> str:
        script = script.replace("127.0.0.1:8080", f"127.0.0.1:{http}").replace(
            "-p 1883", f"-p {mqtt}"
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = bash(register)
    docs, rest = [], out.strip()
    while rest:  # curl -s prints the three answers back to back
        doc, end = json.JSONDecoder().raw_decode(rest)
        docs.append(doc)
        rest = rest[end:].lstrip()
    device = docs[-1]
    secret = device["credentials"]["secret"]
    env["SECRET"] = secret
    bash("A=http://127.0.0.1:8080/api/v1\n" + send)

    code = python.replace("127.0.0.1:8080", f"127.0.0.1:{http}")
    # The README block itself is the code under test.
    exec(
        compile(code, "README.md", "exec"),
        {
            "secret": secret,
            "key": key,  # noqa: S102
            "print": lambda *a: None,
        },
    )

    # All three readings (MQTT, HTTP with a timestamp, Python SDK) are stored.
    with httpx.Client(
        base_url=f"http://127.0.0.1:{http}/api/v1", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        deadline = time.monotonic() + 10
        while True:
            raw = api.get(
                "/devices/gh-sensor-1/series/temperature",
                params={"mode": "raw", "start": "2026-01-01T00:00:00Z"},
            ).json()
            values = sorted(raw["value"])
            if len(values) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert values == [21.4, 21.5, 21.5]


class _PressInAThread:
    """The OPC UA press of the connector tests, served from a thread of its own (this test is
    synchronous: the README's commands run as processes)."""

    def __init__(self) -> None:
        import asyncio
        import threading

        from tests.edge.connectors.opcua_machine import Press

        self.loop = asyncio.new_event_loop()
        self.press = Press()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self.press.start())

    def call(self, coro, timeout: float = 30.0):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.press.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _edge_section() -> str:
    text = REPO.joinpath("README.md").read_text()
    section = text.split("### Connect an OPC UA machine in five commands", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)[0]


def test_readme_opcua_machine_in_five_commands(atoll_up, tmp_path):
    pytest.importorskip("asyncua", reason="the edge extra (make setup installs it)")
    http, mqtt, key = atoll_up
    api = f"http://127.0.0.1:{http}/api/v1"
    headers = {"Authorization": f"Bearer {key}"}
    httpx.post(
        f"{api}/projects", json={"name": "Greenhouse", "id": "greenhouse"}, headers=headers
    ).raise_for_status()
    press = _PressInAThread()
    try:
        script = (
            _edge_section()
            .replace("opc.tcp://10.0.0.9:4840/", press.press.url)
            .replace("127.0.0.1:1883", f"127.0.0.1:{mqtt}")
        )
        *setup, run = [c for c in re.split(r"\n(?=atoll |cat |SECRET=)", script.strip()) if c]
        assert run.startswith("atoll edge run") and len(setup) == 4, (setup, run)
        env = {
            **os.environ,
            "KEY": key,
            "A": api,
            "PATH": f"{ATOLL.parent}{os.pathsep}{os.environ['PATH']}",
            "COLUMNS": "200",  # browse prints a table as wide as the terminal
        }
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(setup)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Press1.Temperature" in done.stdout  # what browse listed
        agent = subprocess.Popen(
            ["bash", "-c", run], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            values = [20.5, 21.0, 21.5, 22.0, 22.5]
            got: list[float] = []
            deadline = time.monotonic() + 90
            i = 0
            while time.monotonic() < deadline and not set(values) <= set(got):
                press.call(press.press.set("Temperature", values[i % len(values)]))
                i += 1
                time.sleep(0.5)
                r = httpx.get(
                    f"{api}/devices/press-1/series/oil_temperature",
                    params={"mode": "raw", "start": "2026-01-01T00:00:00Z"},
                    headers=headers,
                )
                if r.status_code == 200:
                    got = r.json()["value"]
            assert set(values) <= set(got), got
            children = httpx.get(
                f"{api}/projects/greenhouse/devices",
                params={"parent": "line-1-gw"},
                headers=headers,
            ).json()
            assert [d["id"] for d in children] == ["press-1"], children
        finally:
            os.killpg(agent.pid, signal.SIGINT)
            out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out
    finally:
        press.close()
