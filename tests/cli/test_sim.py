"""``atoll sim`` end to end against a real Mosquitto with a password file, a real embedded
platform, and a broker that never answers; stopped by signals in every phase."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.sim import Fleet, read_ground_truth
from atoll.sim.mosquitto import Mosquitto

pytestmark = pytest.mark.timeout(90)


def test_sim_publishes_with_credentials_and_writes_stats_and_ground_truth(tmp_path):
    plan = Fleet.build(["manufacturing", "retail"], 20, seed=3)
    creds = {d.device_id: secrets.token_hex(12) for d in plan.devices}
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps(creds))
    with Mosquitto(tmp_path / "broker", creds) as broker:
        result = CliRunner().invoke(
            app,
            [
                "sim",
                "--devices",
                "20",
                "--rate",
                "2",
                "--duration",
                "2",
                "--broker",
                broker.url,
                "--credentials",
                str(cred_file),
                "-t",
                "manufacturing",
                "-t",
                "retail",
                "--faults",
                "3",
                "--ground-truth",
                str(tmp_path / "gt.json"),
                "--history",
                "600",
                "--history-step",
                "60",
                "--json",
                str(tmp_path / "stats.json"),
            ],
        )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["connected"] == 20 and stats["refused"] == 0
    # 10 minutes of history at 1/min: one batch message per device; then 2 s live at 2/s.
    assert stats["published"] == stats["acked"] == 20 + 20 * 4
    assert stats["msgs_per_s"] > 0 and stats["points_per_s"] > stats["msgs_per_s"]
    assert "msgs/s" in result.output
    faults = read_ground_truth(tmp_path / "gt.json")
    assert len(faults) == 3 and {f.device for f in faults} <= set(creds)


def test_sim_explains_bad_input(tmp_path):
    bad = tmp_path / "creds.json"
    bad.write_text("[]")
    result = CliRunner().invoke(app, ["sim", "--credentials", str(bad), "--duration", "1"])
    assert result.exit_code == 2
    assert "non-empty JSON object" in result.output
    result = CliRunner().invoke(app, ["sim", "--api", "http://127.0.0.1:9", "--duration", "1"])
    assert result.exit_code == 2 and "--api-key" in result.output
    result = CliRunner().invoke(app, ["sim", "-t", "aquaculture", "--duration", "1"])
    assert result.exit_code == 2 and "known templates" in result.output


def test_sim_over_tls_with_a_ca_file(tmp_path):
    creds = {f"tls-{i}": f"secret-{i}" for i in range(3)}
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps(creds))
    with Mosquitto(tmp_path / "broker", creds, tls=True) as broker:
        result = CliRunner().invoke(
            app,
            [
                "sim",
                "--broker",
                broker.url,
                "--ca-file",
                broker.ca_file,
                "--credentials",
                str(cred_file),
                "-t",
                "finance",
                "--rate",
                "2",
                "--duration",
                "1",
                "--json",
                str(tmp_path / "stats.json"),
            ],
        )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["connected"] == 3 and stats["acked"] == stats["published"] == 3 * 2


# --- signals: every phase stops, prints what was done, exits 130 -----------------------------


def _sim_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "atoll.cli.main", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )


def _stopped(proc: subprocess.Popen, sig: signal.Signals) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_while_connecting_to_a_broker_that_never_answers(tmp_path):
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps({f"dev-{i}": "s" for i in range(3)}))
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
        proc = _sim_process("--broker", url, "--credentials", str(cred_file), "-t", "retail")
        try:
            # A connection waiting in the backlog: the simulator is in its connecting phase.
            assert select.select([silent], [], [], 60)[0], "the simulator never connected"
        except BaseException:
            proc.kill()
            raise
        out, err = _stopped(proc, signal.SIGTERM)
    assert proc.returncode == 130, out + err
    assert "SIGTERM: stopping" in err
    assert "atoll sim" in out and "interrupted" in out and "connected" in out


def test_sigint_while_publishing_prints_the_summary(tmp_path):
    from tests.sim.test_mqtt import Observer

    plan = Fleet.build(["retail"], 5, seed=3)
    creds = {d.device_id: secrets.token_hex(12) for d in plan.devices}
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps(creds))
    with Mosquitto(tmp_path / "broker", creds) as broker:
        observer = Observer(broker)
        try:
            proc = _sim_process(
                "--broker",
                broker.url,
                "--credentials",
                str(cred_file),
                "-t",
                "retail",
                "--rate",
                "5",
                "--keepalive",
                "5",
                "--connect-rate",
                "100",
                "--json",
                str(tmp_path / "stats.json"),
            )  # no --duration: until stopped
            deadline = time.monotonic() + 60
            while not observer.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            assert observer.messages, "nothing was published"
            out, err = _stopped(proc, signal.SIGINT)
        finally:
            observer.close()
    assert proc.returncode == 130, out + err
    assert "messages acked" in out and "interrupted" in out
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["interrupted"] and stats["connected"] == 5
    assert stats["acked"] == stats["published"] > 0


@pytest.mark.timeout(180)
async def test_sigterm_while_registering_keeps_what_was_registered(tmp_path):
    from argon2 import PasswordHasher

    from atoll.config import Settings
    from atoll.platform import Platform

    settings = Settings(home=tmp_path / "home", http_port=0, mqtt_port=0, services=[])
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    saved = tmp_path / "creds.json"
    async with Platform(settings, password_hasher=fast) as p:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "atoll.cli.main",
            "sim",
            "--api",
            p.http_url,
            "--api-key",
            p.bootstrap.api_key,
            "-t",
            "retail",
            "-n",
            "10000",
            "--save-credentials",
            str(saved),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            for _ in range(1200):  # until the first devices are registered
                if "sim" in {x.id for x in p.registry.list_projects("default")}:
                    if p.registry.list_devices("sim", limit=20):
                        break
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    out, err = out.decode(), err.decode()
    assert proc.returncode == 130, out + err
    assert "interrupted while registering devices" in out
    registered = len(json.loads(saved.read_text()))
    assert 0 < registered < 10_000
    assert f"{registered:,} of 10,000 registered" in out


def test_the_summary_names_the_connection_cap_when_refusals_look_like_it(capsys):
    from atoll.cli.sim import _summary
    from atoll.sim import RunStats

    _summary(
        RunStats(devices=10_000, connected=1_000, failed=9_000, retries=36_000, closed_early=45_000)
    )
    out = capsys.readouterr().out
    assert "ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS" in " ".join(out.split())
    _summary(RunStats(devices=10, connected=10))
    assert "ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS" not in capsys.readouterr().out


@pytest.mark.timeout(240)
async def test_sigterm_stops_a_fleet_mid_connect_and_mid_publish_on_the_embedded_broker(tmp_path):
    """A real ``atoll sim`` process against the embedded broker: 300 devices connecting at
    40 a second with a 5 s keep-alive. SIGTERM while some are connected and the rest are still
    connecting, then SIGTERM while publishing: each time it exits 130 within the wait below,
    with the summary and stats of what was done, and closes every connection it held."""
    from atoll.sim import save_credentials
    from tests.sim.test_mqtt import embedded

    n = 300
    async with embedded(tmp_path, n) as atoll:
        cred_file = tmp_path / "creds.json"
        save_credentials(cred_file, atoll.devices)
        broker, stats = atoll.platform.mqtt, atoll.platform.pipeline.stats
        for phase in ("connect", "publish"):
            stats_file = tmp_path / f"{phase}.json"
            proc = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "atoll.cli.main", "sim", "--broker", atoll.url],
                *["--credentials", str(cred_file), "-t", "retail", "-n", str(n)],
                *["--rate", "1", "--keepalive", "5", "--connect-rate", "40"],
                *["--json", str(stats_file)],  # no --duration: until stopped
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            )
            try:
                before = stats.messages
                for _ in range(1200):
                    if phase == "connect" and len(broker.connected_devices()) >= 50:
                        break
                    if phase == "publish" and stats.messages - before >= 2 * n:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"the simulator never got to {phase}")
                proc.send_signal(signal.SIGTERM)
                out, err = await asyncio.wait_for(proc.communicate(), 15)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            out, err = out.decode(), err.decode()
            assert proc.returncode == 130, out + err
            assert "SIGTERM: stopping" in err and "interrupted" in out, out + err
            done = json.loads(stats_file.read_text())
            assert done["interrupted"] and done["lost"] == 0
            if phase == "connect":
                assert 50 <= done["connected"] < n and done["published"] == 0
            else:
                assert done["connected"] == n and done["acked"] == done["published"] >= 2 * n
            for _ in range(200):  # its DISCONNECTs arrive
                if not broker.connected_devices():
                    break
                await asyncio.sleep(0.05)
            assert not broker.connected_devices()
