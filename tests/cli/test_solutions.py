"""``atoll solutions`` and ``atoll sim --api``, end to end against a running platform: a project
started from a template, simulated devices registered through the API, their MQTT telemetry
stored."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.config import Settings
from atoll.platform import Platform
from atoll.solutions import load

pytestmark = pytest.mark.timeout(120)


def test_list_and_show():
    r = CliRunner().invoke(app, ["solutions", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert {t["sector"] for t in json.loads(r.output)} == {
        "manufacturing",
        "retail",
        "healthcare",
        "finance",
        "construction",
    }
    r = CliRunner().invoke(app, ["solutions", "show", "healthcare"])
    assert r.exit_code == 0 and "vaccine_fridge" in r.output and "door_left_open" in r.output
    r = CliRunner().invoke(app, ["solutions", "show", "aquaculture"])
    assert r.exit_code == 2 and "known templates" in r.output


async def test_apply_a_template_then_simulate_its_devices(tmp_path):
    settings = Settings(home=tmp_path, http_port=0, mqtt_port=0, store_url="memory://")
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    template = load("retail")
    async with Platform(settings, password_hasher=fast) as p:
        env = {"ATOLL_URL": p.http_url, "ATOLL_API_KEY": p.bootstrap.api_key}

        def cli(*args):
            return CliRunner().invoke(app, list(args), env=env)

        n = len(template.rules)
        r = await asyncio.to_thread(cli, "solutions", "apply", "retail", "-p", "shop", "--dry-run")
        assert r.exit_code == 0, r.output
        assert "create project shop" in r.output and "(dry run)" in r.output
        assert "temperature (°C)" in r.output
        assert f"would add 3 device type(s) and {n} rule(s)" in r.output
        assert "shop" not in {q.id for q in p.registry.list_projects()}  # nothing made
        r = await asyncio.to_thread(cli, "solutions", "apply", "retail", "-p", "shop")
        assert r.exit_code == 0, r.output
        assert (
            f"did add 3 device type(s) and {n} rule(s)" in r.output
            and "next: atoll sim" in r.output
        )
        r = await asyncio.to_thread(
            cli, "solutions", "apply", "retail", "-p", "shop", "--dry-run", "--json"
        )
        again = json.loads(r.output)
        assert not again["create_project"] and again["adds"] == {"device_types": 0, "rules": 0}
        assert {t["action"] for t in again["device_types"]} == {"keep"}
        assert {r["action"] for r in again["rules"]} == {"replace"}
        r = await asyncio.to_thread(cli, "solutions", "apply", "aquaculture", "-p", "shop")
        assert r.exit_code == 2 and "known templates" in r.output

        stats_file = tmp_path / "stats.json"
        r = await asyncio.to_thread(
            cli,
            "sim",
            "--api",
            p.http_url,
            "--project",
            "shop",
            "-t",
            "retail",
            "-n",
            "6",
            "--rate",
            "2",
            "--duration",
            "3",
            "--broker",
            p.mqtt_url,
            "--prefix",
            "e2e",
            "--json",
            str(stats_file),
        )
        assert r.exit_code == 0, r.output
        stats = json.loads(stats_file.read_text())
        assert stats["connected"] == 6 and stats["published"] == stats["acked"] == 6 * 6

        key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
        async with httpx.AsyncClient(
            base_url=p.http_url + "/api/v1",
            headers=key,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as http:
            types = (await http.get("/projects/shop/device-types")).json()
            assert {t["id"] for t in types} == {"freezer", "chiller", "store_meter"}
            rules = (await http.get("/projects/shop/rules")).json()
            assert len(rules) == len(template.rules)
            latest = (await http.get("/projects/shop/latest")).json()
            devices = {x["device"] for x in latest if not x["metric"].endswith(".anomaly_score")}
            assert len(devices) == 6 and all(d.startswith("e2e-retail-") for d in devices)
