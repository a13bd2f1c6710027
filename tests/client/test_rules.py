"""Rules, channels and reports through the SDK, served by the real rules service."""

from __future__ import annotations

import time

import pytest

import atoll
from atoll.client import Report, Rule
from atoll.core.points import PointBatch, SeriesKey

HOT = {
    "name": "Boiler too hot",
    "severity": "major",
    "target": {"device_type": "boiler"},
    "condition": {"type": "threshold", "metric": "temperature", "op": ">", "value": 90},
}


def test_rule_lifecycle(client, plant):
    rule = client.create_rule("plant", HOT)
    assert isinstance(rule, Rule) and (rule.id, rule.project, rule.enabled) == (
        "boiler-too-hot",
        "plant",
        True,
    )
    assert rule.condition["value"] == 90 and rule.devices is None
    assert client.rules("plant") == [rule]
    with pytest.raises(atoll.Conflict):
        client.create_rule("plant", {**HOT, "id": "boiler-too-hot"})
    assert client.create_rule("plant", HOT).id != rule.id  # an id made from the name is made unique
    client.delete_rule("plant", client.rules("plant")[-1].id)
    got = client.rule("plant", "boiler-too-hot")
    assert got.devices == ["b1"] and got.state == {"b1": None}  # no reading yet

    paused = client.update_rule("plant", "boiler-too-hot", enabled=False, severity="critical")
    assert (paused.enabled, paused.severity) == (False, "critical")
    replaced = client.put_rule("plant", "boiler-too-hot", got)  # a Rule goes back as it came
    assert (replaced.enabled, replaced.severity) == (True, "major")
    assert (
        client.put_rule(
            "plant",
            "cold",
            {
                **HOT,
                "name": "Cold",
                "condition": {"type": "threshold", "metric": "temperature", "op": "<", "value": 5},
            },
        ).id
        == "cold"
    )

    assert client.validate_rule("plant", {**HOT, "severity": "minor"}).severity == "minor"
    with pytest.raises(atoll.InvalidInput, match="condition.threshold.value"):
        client.validate_rule(
            "plant",
            {
                "name": "broken",
                "target": {"device": "b1"},
                "condition": {"type": "threshold", "metric": "t", "op": ">"},
            },
        )
    with pytest.raises(atoll.InvalidInput, match="no device 'ghost'"):
        client.create_rule("plant", {**HOT, "target": {"device": "ghost"}})
    assert [r.id for r in client.rules("plant")] == ["boiler-too-hot", "cold"]

    client.delete_rule("plant", "cold")
    with pytest.raises(atoll.NotFound):
        client.rule("plant", "cold")
    with pytest.raises(atoll.NotFound):
        client.rules("elsewhere")


def test_import_rules_and_channels(client, plant):
    done = client.import_rules(
        "plant",
        {
            "channels": {"ops": {"type": "log", "level": "INFO"}},
            "rules": [{**HOT, "notify": {"channels": ["ops"]}}],
        },
    )
    assert (done.rules, done.channels) == (["boiler-too-hot"], ["ops"])
    again = client.import_rules(
        "plant",
        "rules:\n  - name: Cold\n    target: {device: b1}\n"
        "    condition: {type: threshold, metric: temperature, op: '<', value: 5}\n",
    )
    assert again.rules == ["cold"] and {r.id for r in client.rules("plant")} == {
        "boiler-too-hot",
        "cold",
    }
    with pytest.raises(atoll.InvalidInput, match="does not parse"):
        client.import_rules("plant", "rules:\n  - name: a\n   bad indent")

    assert {"log", "webhook", "email"} <= {t.type for t in client.channel_types()}
    hook = client.put_channel(
        "plant", "hook", "webhook", {"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}
    )
    assert (hook.type, hook.config["url"]) == ("webhook", "http://127.0.0.1:9/hook")
    assert [c.name for c in client.channels("plant")] == ["hook", "ops"]
    with pytest.raises(atoll.InvalidInput, match="channels.bad"):
        client.put_channel("plant", "bad", "webhook", {})
    viewer = client.create_api_key("ro", "viewer")
    with atoll.Client(client.base_url, viewer.token) as ro:
        assert {c.name: c.config.get("secret") for c in ro.channels("plant")}["hook"] == "***"

    test = client.test_channel("plant", "ops")
    assert test.ok and test.delivery.channel == "ops" and test.delivery.event == "test"
    (logged,) = client.deliveries("plant")
    assert (logged.id, logged.ok, logged.ts) == (test.delivery.id, True, test.delivery.ts)
    client.delete_channel("plant", "hook")
    assert [c.name for c in client.channels("plant")] == ["ops"]
    with pytest.raises(atoll.NotFound):
        client.test_channel("plant", "hook")


def test_backtest(server, client, plant):
    client.create_rule("plant", HOT)
    now_us = int(time.time() * 1e6)
    ts = [now_us - 3_600_000_000 + i * 60_000_000 for i in range(4)]
    server.store.append(
        PointBatch.of_series(SeriesKey("plant", "b1", "temperature"), ts, [80.0, 95.0, 96.0, 70.0])
    )
    for rule in ("boiler-too-hot", HOT):  # a saved rule by id, or a body
        bt = client.backtest_rule("plant", rule, start="-2h")
        assert bt.devices == ["b1"] and bt.points == 4 and not bt.devices_truncated
        (ep,) = bt.episodes
        assert ep.device == "b1" and ep.value == 95 and ep.cleared_at > ep.raised_at
        assert bt.rule.id == "boiler-too-hot" and bt.end > bt.start
    assert client.backtest_rule("plant", HOT, start="-10m").episodes == []
    assert client.alarms(project="plant") == []  # nothing real was raised


def test_reports(server, client, plant):
    client.put_channel("plant", "ops", "log")
    daily = client.put_report(
        "plant",
        "daily",
        {
            "name": "Daily",
            "cron": "0 7 * * *",
            "period": "1d",
            "bucket": "1h",
            "series": [{"device": "b1", "metric": "temperature"}],
            "channels": ["ops"],
        },
    )
    assert isinstance(daily, Report) and (daily.period, daily.bucket) == (86400, 3600)
    assert client.reports("plant") == [daily]
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send({"temperature": 50})
    csv = client.download_report("plant", "daily").decode().splitlines()
    assert csv[0] == "device,metric,bucket_start,min,avg,max" and csv[1].endswith(",50,50,50")
    run = client.run_report("plant", "daily")
    assert run.sent_to == ["ops"] and run.files[0]["bytes"] > 0
    weekly = client.put_report(
        "plant",
        "weekly",
        Report(
            id="weekly",
            project="plant",
            name="Weekly",
            cron="0 7 * * mon",
            channels=["ops"],
            format="pdf",
        ),
    )
    assert weekly.format == "pdf" and [r.id for r in client.reports("plant")] == ["daily", "weekly"]
    with pytest.raises(atoll.InvalidInput, match="report.cron"):
        client.put_report("plant", "daily", {"name": "x", "cron": "sometimes", "channels": ["ops"]})
    client.delete_report("plant", "daily")
    with pytest.raises(atoll.NotFound):
        client.run_report("plant", "daily")


def test_forecast_rules_store_their_forecasts_with_the_model(server, client, plant):
    """A boiler warming 15 °C an hour for 40 minutes (70 now), after three days steady at 60: the
    forecast condition (fitted by the server's rules service on its timer) says it passes 90
    within 2 h,
    and each stored forecast names its forecaster's registry record."""
    import numpy as np

    from tests.client.conftest import wait_for

    minute, now_us = 60_000_000, int(time.time() * 1e6)
    ts = np.arange(now_us - 3 * 1440 * minute, now_us, minute, dtype=np.int64)
    v = 60.0 + np.clip((ts - (now_us - 40 * minute)) / 3_600e6, 0.0, None) * 15.0
    server.store.append(PointBatch.of_series(SeriesKey("plant", "b1", "temperature"), ts, v))
    rule = {
        "name": "Boiler heading hot",
        "target": {"device": "b1"},
        "condition": {
            "type": "forecast",
            "metric": "temperature",
            "above": 90,
            "within": "2h",
            "every": "1s",
            "confirm": 1,
        },
    }
    client.create_rule("plant", rule)
    got = wait_for(lambda: client.rule_forecasts("plant", "boiler-heading-hot"), timeout=60)
    assert got, "no forecast stored within 60 s"
    fc = got[0]
    assert (fc.device, fc.metric, fc.status, fc.direction) == (
        "b1",
        "temperature",
        "crosses",
        "above",
    )
    assert fc.crossing_ts is not None and fc.crossing_ts > now_us and fc.path is None
    (model,) = client.models("plant", ref=fc.model_id)
    assert (model.kind, model.scope, model.version) == ("forecaster", "series:b1/temperature", 1)
    full = client.rule_forecast("plant", "boiler-heading-hot", fc.id)
    assert full.path is not None and len(full.path["ts"]) == len(full.path["mean"]) > 0
    (alarm,) = wait_for(lambda: client.alarms(project="plant"))
    assert "forecast crosses 90 (above)" in alarm.detail
    assert client.rule_forecasts("plant", "boiler-heading-hot", device="nope") == []
