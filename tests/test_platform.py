"""The runtime: wiring, the services extension point, ``atoll up`` start/stop and port errors."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from argon2 import PasswordHasher

from atoll.config import Settings
from atoll.core.errors import Unavailable
from atoll.core.points import SeriesKey
from atoll.platform import Platform

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Recorder:
    """A real service: it subscribes to the bus on start and records what it saw."""

    def __init__(self, platform, log):
        self.platform, self.log, self.seen, self.sub = platform, log, [], None

    async def start(self):
        self.log.append("start")

        async def on(msg):
            self.seen.append(msg.subject)

        self.sub = await self.platform.bus.subscribe("telemetry.>", on)

    async def stop(self):
        self.log.append("stop")
        await self.sub.unsubscribe()


async def test_platform_wires_http_ingest_store_bus_and_services(tmp_path):
    log = []
    p = Platform(
        Settings(home=tmp_path, http_port=0, mqtt_port=0, services=[]), password_hasher=FAST
    )
    rec = Recorder(p, log)
    p.add_service(rec)
    await p.start()
    try:
        assert p.bootstrap is not None and p.bootstrap.api_key
        reg = p.registry
        reg.create_project("default", "Lab", project_id="lab")
        _, creds = reg.register_device("lab", device_id="d1")
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            r = await http.post(
                "/api/v1/ingest/telemetry",
                auth=("d1", creds.secret),
                json=[{"values": {"t": 1.5}}, {"values": {"t": 2.5}}],
            )
            assert r.status_code in (200, 201, 202), r.text
            # 2xx means durable: already in the store.
            assert p.store.query_raw(SeriesKey("lab", "d1", "t"), 0, 2**62).value.tolist() == [
                1.5,
                2.5,
            ]
            r = await http.post(
                "/api/v1/ingest/telemetry", auth=("d1", creds.secret), content=b"{bad"
            )
            assert r.status_code == 400 and r.json()["error"] == "invalid_input"
        for _ in range(100):
            if rec.seen:
                break
            await asyncio.sleep(0.02)
        assert rec.seen == ["telemetry.lab.d1"]
    finally:
        await p.stop()
    assert log == ["start", "stop"]
    # A second start on the same data directory finds the data and creates no new secrets.
    p2 = Platform(
        Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[]), password_hasher=FAST
    )
    await p2.start()
    try:
        assert p2.bootstrap is None
        assert len(p2.store.query_raw(SeriesKey("lab", "d1", "t"), 0, 2**62).ts) == 2
    finally:
        await p2.stop()


async def test_taken_http_port_is_reported_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = Platform(Settings(home=tmp_path, http_port=port, mqtt_port=0, services=[]))
        with pytest.raises(Unavailable) as e:
            await p.start()
    assert f"HTTP port {port}" in e.value.message and "--http-port" in e.value.hint
    assert not (tmp_path / "registry.sqlite").exists()


def test_atoll_up_prints_urls_and_stops_cleanly_on_ctrl_c(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atoll.cli.main",
            "up",
            "--home",
            str(tmp_path),
            "--http-port",
            "0",
            "--mqtt-port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        out = "".join(lines)
        assert (
            "console + API  http://127.0.0.1:" in out and "MQTT           mqtt://127.0.0.1:" in out
        )
        assert "admin API key" in out
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + rest
        assert "stopped" in rest
        assert not (tmp_path / "runtime.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_atoll_up_on_a_taken_mqtt_port_says_how_to_choose_another(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "atoll.cli.main",
                "up",
                "--home",
                str(tmp_path),
                "--http-port",
                "0",
                "--mqtt-port",
                str(port),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert f"MQTT port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "--mqtt-port" in r.stderr


async def test_registry_url_puts_the_registry_outside_the_data_directory(tmp_path):
    shared = tmp_path / "shared" / "registry.sqlite"
    shared.parent.mkdir()
    settings = Settings(
        home=tmp_path / "a",
        registry_url=f"sqlite:///{shared}",
        http_port=0,
        mqtt_mode="off",
        services=[],
    )
    p = Platform(settings, password_hasher=FAST)
    await p.start()
    try:
        p.registry.create_project("default", "Lab", project_id="lab")
    finally:
        await p.stop()
    assert shared.exists() and not (tmp_path / "a" / "registry.sqlite").exists()
    # a second process with its own data directory sees the same registry
    p2 = Platform(settings.model_copy(update={"home": tmp_path / "b"}), password_hasher=FAST)
    await p2.start()
    try:
        assert p2.bootstrap is None
        assert [pr.id for pr in p2.registry.list_projects("default")] == ["lab"]
    finally:
        await p2.stop()


async def _failed_logins(http: httpx.AsyncClient, n: int, forwarded_for) -> list[int]:
    """``n`` wrong passwords for ``n`` different users (so only the per-address limit can bite)."""
    codes = []
    for i in range(n):
        r = await http.post(
            "/api/v1/auth/login",
            json={"username": f"nobody-{i}", "password": "x" * 12},
            headers={"X-Forwarded-For": forwarded_for(i)},
        )
        codes.append(r.status_code)
    return codes


async def test_forged_x_forwarded_for_does_not_reset_the_login_limit_by_default(tmp_path):
    p = Platform(
        Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[]), password_hasher=FAST
    )
    await p.start()
    try:
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            codes = await _failed_logins(http, 22, lambda i: f"203.0.113.{i}")
    finally:
        await p.stop()
    # 20 failures per address, and the address is the
    # socket's (127.0.0.1), whatever the header says.
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]


async def test_a_trusted_proxy_s_x_forwarded_for_is_the_client_address(tmp_path):
    settings = Settings(
        home=tmp_path, http_port=0, mqtt_mode="off", services=[], trusted_proxies=["127.0.0.1"]
    )
    p = Platform(settings, password_hasher=FAST)
    await p.start()
    try:
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            spread = await _failed_logins(http, 22, lambda i: f"203.0.113.{i}")
            one = await _failed_logins(http, 21, lambda i: "198.51.100.7")
    finally:
        await p.stop()
    assert spread == [401] * 22  # 22 different clients behind the proxy
    assert one[:20] == [401] * 20 and one[20] == 429  # one client behind it is still limited


def test_trusted_proxies_come_from_the_environment_or_atoll_up(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from atoll.cli import up as up_cli
    from atoll.cli.main import app

    assert Settings().trusted_proxies == []
    monkeypatch.setenv("ATOLL_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]
    monkeypatch.delenv("ATOLL_TRUSTED_PROXIES")
    seen = []

    async def record(settings):  # stands in for running the platform; only the flags matter here
        seen.append(settings)

    monkeypatch.setattr(up_cli, "_run", record)
    r = CliRunner().invoke(
        app,
        [
            "up",
            "--home",
            str(tmp_path),
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "10.0.0.0/8",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen[0].trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]


async def test_the_api_gets_one_typed_context_with_the_running_parts(tmp_path):
    from atoll.api import AppContext
    from atoll.registry.retention import RetentionService
    from atoll.rules.service import RulesService

    settings = Settings(
        home=tmp_path, http_port=0, mqtt_port=0, services=["rules", "atoll.registry.retention"]
    )
    async with Platform(settings, password_hasher=FAST) as p:
        # ``Settings.services`` picks modules by package or full name.
        assert sorted(type(s).__name__ for s in p.services) == ["RetentionService", "RulesService"]
        (rules,) = [s for s in p.services if isinstance(s, RulesService)]
        assert any(isinstance(s, RetentionService) for s in p.services)
        ctx = p.app.state.ctx
        assert type(ctx) is AppContext
        assert ctx.registry is p.registry and ctx.store is p.store and ctx.bus is p.bus
        assert ctx.ingest is p.pipeline and ctx.sessions is p.mqtt and ctx.commands is p.commands
        assert ctx.settings is settings and ctx.rules is rules
        assert ctx.mqtt_url == p.mqtt_url and p.mqtt_url.startswith("mqtt://127.0.0.1:")
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            # The console prints the port the broker actually bound, not the configured 0.
            info = (await http.get("/api/v1/console/info")).json()
            assert info["mqtt"]["url"] == p.mqtt_url and info["mqtt"]["port"] == p.mqtt.port
            key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
            await http.post("/api/v1/projects", json={"name": "Lab", "id": "lab"}, headers=key)
            r = await http.get("/api/v1/projects/lab/rules", headers=key)
            assert r.status_code == 200 and r.json() == []


async def test_without_the_rules_service_its_routes_still_work(tmp_path):
    """A node that runs no rules service serves the rules, alarms and channels routes from the
    database (issue 11: no 503 on the second node); it evaluates nothing."""
    from atoll.rules.service import RulesService

    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[])
    async with Platform(settings, password_hasher=FAST) as p:
        rules = p.app.state.ctx.rules
        assert isinstance(rules, RulesService) and not rules.evaluate and p.services == []
        assert p.app.state.ctx.mqtt_url is None
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            assert (await http.get("/api/v1/console/info")).json()["mqtt"] is None
            key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
            await http.post("/api/v1/projects", json={"name": "Lab", "id": "lab"}, headers=key)
            await http.post("/api/v1/projects/lab/devices", json={"id": "d1"}, headers=key)
            rule = {
                "name": "Hot",
                "target": {"devices": ["d1"]},
                "condition": {"type": "threshold", "metric": "temp", "value": 100},
            }
            made = await http.post("/api/v1/projects/lab/rules", json=rule, headers=key)
            listed = await http.get("/api/v1/projects/lab/rules", headers=key)
            alarms = await http.get("/api/v1/alarms?project=lab", headers=key)
    assert made.status_code == 201, made.text
    assert listed.status_code == 200 and [r["name"] for r in listed.json()] == ["Hot"]
    assert alarms.status_code == 200, alarms.text
    assert rules.stats["readings"] == 0


async def test_the_api_reaches_the_detection_service_through_its_port(tmp_path):
    from atoll.detect.service import DetectionService

    settings = Settings(
        home=tmp_path, http_port=0, mqtt_mode="off", services=["atoll.detect.service"]
    )
    async with Platform(settings, password_hasher=FAST) as p:
        (detect,) = p.services
        assert isinstance(detect, DetectionService) and p.app.state.ctx.detection is detect
        assert detect.refit_interval == settings.detect_refit_interval_s == 86_400.0
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
            await http.post("/api/v1/projects", json={"name": "Lab", "id": "lab"}, headers=key)
            await http.post("/api/v1/projects/lab/devices", json={"id": "s1"}, headers=key)
            r = await http.get("/api/v1/projects/lab/devices/s1/detection", headers=key)
    assert r.status_code == 200 and r.json() == {"project": "lab", "device": "s1", "series": []}


async def test_the_api_reaches_the_rul_service_through_its_port(tmp_path):
    from atoll.rul.service import RulService

    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=["rul"])
    async with Platform(settings, password_hasher=FAST) as p:
        (rul,) = p.services
        assert isinstance(rul, RulService) and p.app.state.ctx.rul is rul
        assert rul.models_dir == tmp_path / "models" / "rul" and rul.interval == 10.0
        async with httpx.AsyncClient(base_url=p.http_url) as http:
            key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
            await http.post("/api/v1/projects", json={"name": "Lab", "id": "lab"}, headers=key)
            body = {"name": "motor", "id": "motor", "metrics": [{"name": "vibration"}]}
            await http.post("/api/v1/projects/lab/device-types", json=body, headers=key)
            r = await http.post(
                "/api/v1/projects/lab/rul/fit?wait=true", json={"device_type": "motor"}, headers=key
            )
            # Off the request: the job at once, failed once the worker has looked.
            job = await http.post(
                "/api/v1/projects/lab/rul/fit", json={"device_type": "motor"}, headers=key
            )
            assert job.status_code == 202 and job.json()["state"] in ("queued", "running", "failed")
            for _ in range(100):
                got = await http.get(
                    f"/api/v1/projects/lab/rul/fits/{job.json()['id']}", headers=key
                )
                if got.json()["state"] == "failed":
                    break
                await asyncio.sleep(0.05)
    # No device of the type, so nothing to learn from: a 400 that says so, not a 500.
    assert r.status_code == 400 and "no device of type 'motor'" in r.json()["message"]
    assert got.json()["state"] == "failed" and got.json()["error"]["error"] == "invalid_input"
    assert "no device of type 'motor'" in got.json()["error"]["message"]


async def test_a_service_that_cannot_be_created_is_reported_and_skipped(
    tmp_path, monkeypatch, caplog
):
    import types

    import atoll.platform
    from atoll.registry import retention
    from atoll.registry.retention import RetentionService

    broken = types.ModuleType("atoll_test_broken_service")

    def create_service(ctx):
        raise RuntimeError("no " + str(ctx.settings.home))

    broken.create_service = create_service
    monkeypatch.setattr(atoll.platform, "SERVICE_MODULES", (broken, retention))
    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off")
    async with Platform(settings, password_hasher=FAST) as p:
        assert [type(s) for s in p.services] == [RetentionService]
    assert "service atoll_test_broken_service could not be created" in caplog.text
    assert f"RuntimeError: no {tmp_path}" in caplog.text


def test_two_nodes_started_at_once_on_a_fresh_postgresql_database_both_run(tmp_path):
    """``atoll up`` twice at the same moment on one empty PostgreSQL database (store, registry
    and the rules tables in it): both come up, and only one prints the admin secrets."""
    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_two_nodes", skip_if_unreachable=True) as url:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ATOLL_STORE_URL": url,
            "ATOLL_REGISTRY_URL": url,
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "atoll.cli.main", "up", "--home", str(tmp_path / f"n{i}")]
                + ["--http-port", "0", "--mqtt", "off", "--log-level", "warning"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            for i in range(2)
        ]
        outs = []
        try:
            for proc in procs:
                assert proc.stdout is not None
                lines = []
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    line = proc.stdout.readline()
                    lines.append(line)
                    if "Press Ctrl-C" in line or not line:
                        break
                outs.append("".join(lines))
            for proc, out in zip(procs, outs, strict=True):
                assert "Press Ctrl-C" in out and proc.poll() is None, out
                assert "Traceback" not in out and "rror" not in out, out
            assert sum("admin API key" in out for out in outs) == 1
            for proc in procs:
                proc.send_signal(signal.SIGINT)
            for proc in procs:
                proc.communicate(timeout=30)
                assert proc.returncode == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


async def test_the_operators_ingest_rate_quotas_apply_when_a_node_starts(tmp_path):
    """A quota set on one node (or before a restart) is in the registry; every node applies it
    to its ingest rate limits at start, over the settings' default."""
    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[])
    p = Platform(settings, password_hasher=FAST)
    await p.start()
    try:
        p.registry.create_tenant("Acme", "acme")
        p.registry.set_quotas("acme", {"ingest_rate": 40.0})
    finally:
        await p.stop()
    async with Platform(settings, password_hasher=FAST) as p2:
        quotas = p2.pipeline.quotas
        assert quotas is not None
        assert quotas.policy("acme").tenant.per_s == 40.0
        assert quotas.policy("default").tenant.per_s == settings.quota_tenant_rate
