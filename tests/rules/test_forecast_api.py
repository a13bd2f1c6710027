"""The rule API with ``forecast`` conditions (the real app, registry, pipeline and rules service of
``tests/rules/test_api.py``): bad conditions are 400s naming the field, stored forecasts are
listed with their reasons."""

from __future__ import annotations

import pytest

from tests.rules import test_api

env = test_api.env  # the fixture: app, registry, pipeline and rules service

# ------------------------------------------------------------------ the rule API

BAD = [
    ({"metric": "temperature", "within": "40m"}, "exactly one of above, below"),
    ({"metric": "temperature", "above": 1, "below": 0, "within": "40m"}, "exactly one of"),
    ({"metric": "temperature", "above": -15}, "within: Field required"),
    ({"metric": "temperature", "above": -15, "within": "10s"}, "within must be between 1m"),
    ({"metric": "temperature", "above": -15, "within": "400d"}, "within must be between"),
    ({"metric": "temperature", "above": -15, "within": "40m", "every": "0.5s"}, "at least 1s"),
    ({"metric": "temperature", "above": -15, "within": "40m", "confirm": 0}, "confirm"),
    ({"metric": "temperature", "above": -15, "within": "40m", "level": 1.5}, "level"),
    ({"metric": "temperature", "above": -15, "within": "40m", "on": "latest"}, "on"),
    ({"above": -15, "within": "40m"}, "metric: Field required"),
    ({"metric": "temperature", "above": "hot", "within": "40m"}, "above"),
    ({"metric": "temperature", "above": -15, "within": "soon"}, "within"),
]


@pytest.mark.parametrize(("condition", "says"), BAD)
async def test_the_rule_api_refuses_bad_forecast_conditions(env, condition, says):
    rule = {
        "name": "Cold chain",
        "target": {"device_type": "boiler"},
        "condition": {"type": "forecast", **condition},
    }
    r = await env.post("/projects/plant/rules", rule)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_input" and says in r.json()["message"], r.json()
    r = await env.post("/projects/plant/rules/validate", rule)
    assert r.status_code == 200 and r.json()["valid"] is False


async def test_the_rule_api_takes_a_forecast_condition_and_lists_its_forecasts(env):
    rule = {
        "name": "Cold chain",
        "target": {"device": "b1"},
        "condition": {"type": "forecast", "metric": "temperature", "below": 5, "within": "40m"},
    }
    r = await env.post("/projects/plant/rules", rule)
    assert r.status_code == 201, r.text
    got = r.json()["condition"]
    assert (got["within"], got["every"], got["confirm"], got["on"]) == (2400.0, 300.0, 2, "mean")
    # Nothing stored for b1: one evaluation, skipped with its reason, listed by the API.
    await env.svc.tick()
    await env.svc.forecasts_settled()
    r = await env.get("/projects/plant/rules/cold-chain/forecasts")
    assert r.status_code == 200, r.text
    (row,) = r.json()
    assert row["status"] == "skipped" and "no data" in row["reason"] and "path" not in row
    r = await env.get(f"/projects/plant/rules/cold-chain/forecasts/{row['id']}")
    assert r.status_code == 200 and r.json()["id"] == row["id"]
    assert (await env.get("/projects/plant/rules/cold-chain/forecasts/999")).status_code == 404
    assert (await env.get("/projects/plant/rules/nope/forecasts")).status_code == 404
    # Backtest does not replay forecasts: a clear 400, not an empty answer.
    r = await env.post("/projects/plant/rules/backtest", params={"rule": "cold-chain"})
    assert r.status_code == 400 and "forecast" in r.json()["message"], r.text
