"""The rules and alarms routers on the real app: registry, HTTP ingest, pipeline, memory bus."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.rules.directory import RegistryDevices
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore

# Same algorithm, test-sized cost (the production cost takes ~1 s per hash on a busy 2-core box).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

RULE = {
    "name": "Boiler too hot",
    "target": {"device_type": "boiler"},
    "condition": {"type": "threshold", "metric": "temperature", "value": 90, "clear": 85},
    "notify": {"channels": ["log"]},
}


class Env:
    def __init__(self, http, key, svc, registry):
        self.http, self.key, self.svc, self.registry = http, key, svc, registry

    def h(self, key=None):
        return {"Authorization": f"Bearer {key or self.key}"}

    async def get(self, path, key=None, **params):
        return await self.http.get(f"/api/v1{path}", headers=self.h(key), params=params)

    async def post(self, path, json=None, key=None, **kw):
        return await self.http.post(f"/api/v1{path}", json=json, headers=self.h(key), **kw)

    async def put(self, path, json=None, key=None):
        return await self.http.put(f"/api/v1{path}", json=json, headers=self.h(key))

    async def role_key(self, role):
        r = await self.post("/keys", {"name": role, "role": role})
        assert r.status_code == 201, r.text
        return r.json()["token"]


@pytest.fixture
async def env(tmp_path):
    registry = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = registry.bootstrap()
    store, bus = MemoryStore(), MemoryBus()
    pipeline = IngestPipeline(store, bus, RegistryDirectory(registry), flush_interval=0.05)
    await pipeline.start()
    svc = RulesService(
        bus, db=registry.engine, directory=RegistryDevices(registry), store=store, tick_interval=0
    )
    await svc.start()
    ctx = AppContext(registry=registry, store=store, ingest=pipeline, bus=bus, rules=svc)
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as http:
        e = Env(http, boot.api_key, svc, registry)
        assert (await e.post("/projects", {"name": "Plant", "id": "plant"})).status_code == 201
        r = await e.post(
            "/projects/plant/device-types", {"id": "boiler", "metrics": [{"name": "temperature"}]}
        )
        assert r.status_code == 201, r.text
        r = await e.post("/projects/plant/devices", {"id": "b1", "device_type": "boiler"})
        e.secret = r.json()["credentials"]["secret"]
        r = await e.put(
            "/projects/plant/channels/log", {"type": "log", "config": {"level": "INFO"}}
        )
        assert r.status_code == 200, r.text
        yield e
    await svc.stop()
    await pipeline.stop()
    registry.close()


async def send(env, value):
    r = await env.http.post(
        "/api/v1/ingest/telemetry", auth=("b1", env.secret), json={"values": {"temperature": value}}
    )
    assert r.status_code < 300, r.text


async def wait_for(predicate, timeout=15.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_rule_crud_and_errors_name_the_field(env):
    r = await env.post("/projects/plant/rules", RULE)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "boiler-too-hot" and r.json()["project"] == "plant"
    r = await env.post("/projects/plant/rules", RULE)  # same name: a fresh id
    assert r.json()["id"] == "boiler-too-hot-2"
    bad = {**RULE, "condition": {"type": "threshold", "metric": "temperature"}}
    r = await env.post("/projects/plant/rules", bad)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_input"
    assert "condition.threshold.value: Field required" in r.json()["message"]
    r = await env.post("/projects/plant/rules", {**RULE, "target": {"device": "ghost"}})
    assert (
        r.status_code == 400
        and "target.device: project 'plant' has no device 'ghost'" in r.json()["message"]
    )
    r = await env.post(
        "/projects/plant/rules",
        {
            **RULE,
            "condition": {
                "type": "any",
                "conditions": [{"type": "no_data", "timeout": 60, "device": "pump-9"}],
            },
        },
    )
    assert r.status_code == 400
    assert (
        "condition.conditions[0].device: project 'plant' has no device 'pump-9'"
        in r.json()["message"]
    )
    r = await env.post("/projects/plant/rules", {**RULE, "project": "other"})
    assert r.status_code == 400 and r.json()["message"].startswith("project:")
    r = await env.post("/projects/plant/rules/validate", bad)
    assert r.status_code == 200 and r.json()["valid"] is False
    assert "condition.threshold.value" in r.json()["error"]["message"]
    r = await env.post("/projects/plant/rules/validate", RULE)
    assert r.json()["valid"] is True and r.json()["rule"]["condition"]["clear"] == 85
    assert r.json()["warnings"] == []
    # A misspelled metric or device type is valid (it may be declared later) but named: #13's
    # user walk found the editor calling both simply "valid".
    typo = {**RULE, "condition": {**RULE["condition"], "metric": "tempreature"}}
    r = await env.post("/projects/plant/rules/validate", typo)
    assert r.json()["valid"] is True
    assert r.json()["warnings"] == [
        "condition.metric: 'tempreature' is not declared by boiler (declared: temperature)"
    ]
    r = await env.post("/projects/plant/rules/validate", {**typo, "target": {"device": "b1"}})
    assert r.json()["warnings"][0].startswith("condition.metric: 'tempreature'")
    r = await env.post(
        "/projects/plant/rules/validate", {**RULE, "target": {"device_type": "boilr"}}
    )
    assert r.json()["warnings"] == [
        "target.device_type: 'boilr' is not a device type of this project (it has boiler)"
    ]
    r = await env.put("/projects/plant/rules/boiler-too-hot-2", {**RULE, "severity": "critical"})
    assert r.status_code == 200 and r.json()["severity"] == "critical"
    r = await env.get("/projects/plant/rules/boiler-too-hot")
    assert r.json()["devices"] == ["b1"] and r.json()["state"] == {"b1": None}
    # What GET answers can be sent back as is.
    assert (await env.put("/projects/plant/rules/boiler-too-hot", r.json())).status_code == 200
    ids = [x["id"] for x in (await env.get("/projects/plant/rules")).json()]
    assert ids == ["boiler-too-hot", "boiler-too-hot-2"]
    r = await env.http.delete("/api/v1/projects/plant/rules/boiler-too-hot-2", headers=env.h())
    assert r.status_code == 204
    assert (await env.get("/projects/plant/rules/boiler-too-hot-2")).status_code == 404
    assert (await env.get("/projects/nope/rules")).status_code == 404


async def test_yaml_import(env):
    text = """
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/x", attempts: 1}
rules:
  - name: Quiet boiler
    target: {device: b1}
    condition: {type: no_data, timeout: 10m}
    notify: {channels: [hook]}
"""
    r = await env.post("/projects/plant/rules/import", content=text.encode())
    assert r.status_code == 200, r.text
    assert r.json() == {"rules": ["quiet-boiler"], "channels": ["hook"]}
    r = await env.post("/projects/plant/rules/import", content=b"rules: [ {name: x")
    assert r.status_code == 400 and "does not parse at line" in r.json()["message"]
    names = [c["name"] for c in (await env.get("/projects/plant/channels")).json()]
    assert names == ["hook", "log"]
    await env.put(
        "/projects/plant/channels/signed",
        {
            "type": "webhook",
            "config": {
                "url": "http://127.0.0.1:9/x",
                "secret": "s3cret",
                "headers": {"Authorization": "Bearer t"},
            },
        },
    )
    viewer = await env.role_key("viewer")
    seen = {
        c["name"]: c["config"]
        for c in (await env.get("/projects/plant/channels", key=viewer)).json()
    }
    assert seen["signed"]["secret"] == "***" and seen["signed"]["headers"] == {
        "Authorization": "***"
    }
    seen = {c["name"]: c["config"] for c in (await env.get("/projects/plant/channels")).json()}
    assert seen["signed"]["secret"] == "s3cret"
    r = await env.put("/projects/plant/channels/bad", {"type": "webhook", "config": {"url": "x"}})
    assert r.status_code == 400 and "channels.bad.config.url" in r.json()["message"]
    types = {t["type"] for t in (await env.get("/channel-types")).json()}
    assert {"webhook", "command", "log"} <= types


async def test_telemetry_to_alarm_then_ack_comment_clear_over_http(env):
    assert (await env.post("/projects/plant/rules", RULE)).status_code == 201
    await send(env, 95)
    await wait_for(lambda: env.svc.stats["raised"] == 1)
    (a,) = (await env.get("/alarms", project="plant", status="open")).json()
    assert (a["device"], a["status"], a["severity"]) == ("b1", "active", "major")
    assert a["raised_at"].endswith("Z")
    summary = (await env.get("/alarms/summary", project="plant")).json()
    assert summary == {
        "open": 1,
        "active": 1,
        "acknowledged": 0,
        "by_severity": {"major": 1},
        "by_device": {"b1": {"open": 1, "active": 1, "severity": "major"}},
    }
    viewer = await env.role_key("viewer")
    assert (await env.post(f"/alarms/{a['id']}/ack", {}, key=viewer)).status_code == 403
    assert len((await env.get("/alarms", key=viewer)).json()) == 1
    r = await env.post(f"/alarms/{a['id']}/ack", {"comment": "looking"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert (await env.post(f"/alarms/{a['id']}/ack", {})).status_code == 409
    r = await env.post(f"/alarms/{a['id']}/comments", {"text": "burner reset"})
    assert r.status_code == 201 and r.json()["text"] == "burner reset"
    r = await env.post(f"/alarms/{a['id']}/comments", {"text": ""})
    assert r.status_code == 422
    r = await env.post(f"/alarms/{a['id']}/clear")
    assert r.status_code == 200 and r.json()["status"] == "cleared"
    # Pausing the rule: a new excursion raises nothing.
    r = await env.http.patch(
        "/api/v1/projects/plant/rules/boiler-too-hot", json={"enabled": False}, headers=env.h()
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    await send(env, 10)
    await send(env, 99)
    await wait_for(lambda: env.svc.stats["readings"] >= 3)
    assert env.svc.stats["raised"] == 1
    r = await env.http.patch(
        "/api/v1/projects/plant/rules/boiler-too-hot", json={"id": "x"}, headers=env.h()
    )
    assert r.status_code == 400
    full = (await env.get(f"/alarms/{a['id']}")).json()
    assert [h["kind"] for h in full["history"]] == [
        "raised",
        "acknowledged",
        "commented",
        "commented",
        "cleared",
    ]
    assert [c["text"] for c in full["comments"]] == ["looking", "burner reset"]
    assert [h["kind"] for h in (await env.get(f"/alarms/{a['id']}/history")).json()][
        -1
    ] == "cleared"
    assert (await env.get("/alarms", status="active")).json() == []
    assert (await env.get("/alarms/summary")).json()["open"] == 0
    assert len((await env.get("/alarms", status="cleared,active")).json()) == 1
    assert (await env.get("/alarms", status="bogus")).status_code == 400
    deliveries = (await env.get("/projects/plant/deliveries")).json()
    assert sorted(d["event"] for d in deliveries) == ["cleared", "raised"]


async def test_other_tenants_see_nothing(env):
    assert (await env.post("/projects/plant/rules", RULE)).status_code == 201
    await send(env, 95)
    await wait_for(lambda: env.svc.stats["raised"] == 1)
    (a,) = env.svc.alarms.list()
    env.registry.create_tenant("Rival", tenant_id="rival")
    rival = env.registry.create_api_key("rival", "k", "admin").token
    assert (await env.get("/alarms", key=rival)).json() == []
    assert (await env.get(f"/alarms/{a.id}", key=rival)).status_code == 404
    assert (await env.post(f"/alarms/{a.id}/ack", {}, key=rival)).status_code == 404
    assert (await env.get("/projects/plant/rules", key=rival)).status_code == 404


async def test_reports_over_http(env):
    body = {
        "name": "Daily",
        "cron": "0 7 * * *",
        "period": "1d",
        "bucket": "1h",
        "series": [{"device": "b1", "metric": "temperature"}],
        "channels": ["log"],
    }
    r = await env.put("/projects/plant/reports/daily", body)
    assert r.status_code == 200, r.text
    await send(env, 50)
    await wait_for(lambda: env.svc.stats["readings"] == 1)
    r = await env.post("/projects/plant/reports/daily/run", params={"download": "true"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "device,metric,bucket_start,min,avg,max" and lines[1].startswith(
        "b1,temperature,"
    )
    assert lines[1].endswith(",50,50,50")
    r = await env.post("/projects/plant/reports/daily/run")
    assert r.json()["sent_to"] == ["log"]
    r = await env.put("/projects/plant/reports/daily", {**body, "cron": "sometimes"})
    assert r.status_code == 400 and "report.cron" in r.json()["message"]


async def test_command_channel_records_and_publishes_a_device_command(env):
    from atoll.api.sender import TopicCommandSender
    from atoll.rules.commands import RegistryCommands

    published = []

    async def publish(topic, payload, *, qos=1, retain=False):
        published.append((topic, payload))

    env.svc.notifier.ctx.command_sender = RegistryCommands(
        env.registry, TopicCommandSender(publish)
    )
    r = await env.put(
        "/projects/plant/channels/burner-off",
        {"type": "command", "config": {"command": "burner_off", "args": {"level": 0}}},
    )
    assert r.status_code == 200, r.text
    rule = {**RULE, "notify": {"channels": ["burner-off"], "on": ["raised"]}}
    assert (await env.post("/projects/plant/rules", rule)).status_code == 201
    await send(env, 99)
    await wait_for(lambda: env.svc.stats["raised"] == 1)
    await env.svc.notifier.drain()
    (cmd,) = env.registry.list_commands("b1")
    assert (cmd.name, cmd.status, cmd.args["level"], cmd.args["event"]) == (
        "burner_off",
        "delivered",
        0,
        "raised",
    )
    assert published[0][0] == f"atoll/v1/devices/b1/commands/{cmd.id}"
    # Without an MQTT side the command waits in the registry for the device to fetch it.
    env.svc.notifier.ctx.command_sender = RegistryCommands(env.registry)
    assert await env.svc.notifier.ctx.command_sender.send_command("plant", "b1", "ping", {})
    assert [c.status for c in env.registry.list_commands("b1", status="pending")] == ["pending"]
    from atoll.rules.channels import DeliveryFailed

    with pytest.raises(DeliveryFailed, match="not in project"):
        await env.svc.notifier.ctx.command_sender.send_command("other", "b1", "ping", {})


async def test_backtest_over_http(env):
    from atoll.core.points import PointBatch, SeriesKey

    now = env.svc.clock.now_us()
    ts = [now - 3_600_000_000 + i * 60_000_000 for i in range(4)]
    env.svc.store.append(
        PointBatch.of_series(SeriesKey("plant", "b1", "temperature"), ts, [80.0, 95.0, 96.0, 70.0])
    )
    r = await env.post("/projects/plant/rules/backtest", RULE, params={"start": "-2h"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["devices"] == ["b1"] and out["points"] == 4
    (ep,) = out["episodes"]
    assert ep["device"] == "b1" and ep["value"] == 95 and ep["cleared_at"] is not None
    assert env.svc.alarms.list() == []  # nothing real was raised
    r = await env.post("/projects/plant/rules/backtest", {**RULE, "severity": "loud"})
    assert r.status_code == 400 and "severity" in r.json()["message"]
