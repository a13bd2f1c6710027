"""``atoll up``'s runtime starts the rules service and the API finds it (real HTTP server)."""

from __future__ import annotations

import asyncio
import json

import httpx
from argon2 import PasswordHasher
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.config import Settings
from atoll.platform import Platform
from atoll.rules.service import RulesService


async def test_platform_runs_rules_behind_the_http_api(tmp_path):
    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", store_url="memory://")
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    async with Platform(settings, password_hasher=fast) as p:
        assert any(isinstance(s, RulesService) for s in p.services)
        key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
        # No keep-alive: on a stalled 2-core box the server may drop an idle connection just as
        # the client reuses it, which is not what this test is about.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=p.http_url + "/api/v1", headers=key, limits=no_reuse
        ) as http:
            assert (
                await http.post("/projects", json={"name": "Lab", "id": "lab"})
            ).status_code == 201
            r = await http.post("/projects/lab/devices", json={"id": "s1"})
            secret = r.json()["credentials"]["secret"]
            r = await http.post(
                "/projects/lab/rules",
                json={
                    "name": "Cold",
                    "target": {"device": "s1"},
                    "condition": {"type": "threshold", "metric": "t", "op": "<", "value": 0},
                },
            )
            assert r.status_code == 201, r.text
            r = await http.post(
                "/ingest/telemetry", auth=("s1", secret), headers={}, json={"values": {"t": -4.5}}
            )
            assert r.status_code < 300, r.text
            for _ in range(750):  # up to 15 s on a loaded CI box
                alarms = (await http.get("/alarms", params={"project": "lab"})).json()
                if alarms:
                    break
                await asyncio.sleep(0.02)
            assert [(a["rule_id"], a["device"], a["value"]) for a in alarms] == [
                ("cold", "s1", -4.5)
            ]

        # The CLI against the same server (it is synchronous: run it off the loop).
        def cli(*args):
            env = {"ATOLL_URL": p.http_url, "ATOLL_API_KEY": p.bootstrap.api_key}
            return CliRunner().invoke(app, list(args), env=env)

        rules_file = tmp_path / "more.yaml"
        rules_file.write_text(
            "rules:\n  - {name: Hot, target: {device: s1}, "
            "condition: {type: threshold, metric: t, value: 40}}\n"
        )
        r = await asyncio.to_thread(cli, "rules", "apply", str(rules_file), "-p", "lab")
        assert r.exit_code == 0 and "applied 1 rules, 0 channels to lab" in r.output, r.output
        r = await asyncio.to_thread(
            cli, "rules", "backtest", str(rules_file), "-p", "lab", "--start", "-1h", "--json"
        )
        assert r.exit_code == 0 and json.loads(r.output) == [], r.output  # -4.5 is not > 40
        freezing = tmp_path / "freezing.yaml"
        freezing.write_text(
            "- {name: Freezing, target: {device: s1}, "
            "condition: {type: threshold, metric: t, op: '<', value: -1}}\n"
        )
        r = await asyncio.to_thread(cli, "rules", "backtest", str(freezing), "-p", "lab", "--json")
        (ep,) = json.loads(r.output)
        assert (ep["rule"], ep["device"], ep["value"], ep["cleared_at"]) == (
            "freezing",
            "s1",
            -4.5,
            None,
        )
        r = await asyncio.to_thread(cli, "rules", "list", "-p", "lab", "--json")
        assert [x["id"] for x in json.loads(r.output)] == ["cold", "hot"]
        r = await asyncio.to_thread(cli, "alarms", "ack", str(alarms[0]["id"]), "-m", "seen")
        assert r.exit_code == 0 and "active" not in r.output and "acknowledged" in r.output
        r = await asyncio.to_thread(cli, "alarms", "ack", str(alarms[0]["id"]))
        assert r.exit_code == 1 and "already acknowledged" in r.output
        r = await asyncio.to_thread(cli, "alarms", "list", "-p", "lab", "--json")
        assert [(x["status"], x["acknowledged"]) for x in json.loads(r.output)] == [
            ("acknowledged", True)
        ]
