"""Usage metering (docs/CONSOLE.md, "Usage"): messages, points and API calls per enterprise,
project and day, and the points each project holds, on the real app (the ``seeded`` lab of
tests/api/test_lab.py: the real ingest pipeline, registry and retention job)."""

from __future__ import annotations

import csv
import datetime as dt
import io

from atoll.registry.retention import RetentionService


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


async def usage(lab, key=None, **params):
    r = await lab.call("GET", "/lab/usage", key, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, {(d["enterprise"], d["project"]): d for d in body["days"]}


async def test_telemetry_and_api_calls_are_metered_per_enterprise_project_and_day(seeded):
    # seeded: acme~press got 2 messages of 1 point, acme~paint 1, beta~ovens none.
    r = await seeded.http.post(
        "/api/v1/ingest/telemetry",
        auth=("acme~press-b0", seeded.secrets["acme~press-b0"]),
        json=[{"values": {"temperature": 20.0 + i}, "ts": 1_700_000_000_000 + i} for i in range(3)],
    )
    assert r.status_code < 300, r.text
    await seeded.pipeline.flush_counters()

    body, rows = await usage(seeded)
    assert (body["since"], body["until"]) == (
        (dt.date.fromisoformat(today()) - dt.timedelta(days=29)).isoformat(),
        today(),
    )
    press, paint = rows[("acme", "acme~press")], rows[("acme", "acme~paint")]
    assert (press["day"], press["messages"], press["points"]) == (today(), 3, 5)
    assert (paint["messages"], paint["points"], paint["api_calls"]) == (1, 1, 0)
    assert press["project_name"] == "Press" and press["enterprise_name"] == "Acme Works"
    assert ("beta", "beta~ovens") not in rows  # sent nothing
    # API calls belong to the enterprise whose key made them (acme's set its projects up).
    assert rows[("acme", None)]["api_calls"] >= 6
    assert rows[("default", None)]["api_calls"] >= 1  # the platform admin's own
    before = rows[("beta", None)]["api_calls"]
    for _ in range(4):
        assert (await seeded.call("GET", "/projects", seeded.keys["beta"])).status_code == 200
    _, rows = await usage(seeded)
    assert rows[("beta", None)]["api_calls"] == before + 4
    totals = {t["enterprise"]: t for t in body["totals"]}
    assert (totals["acme"]["messages"], totals["acme"]["points"]) == (4, 6)


async def test_storage_is_sampled_by_the_retention_job(seeded):
    _, rows = await usage(seeded)
    assert rows[("acme", "acme~press")]["storage_points"] is None  # not sampled yet
    RetentionService(seeded.registry, seeded.pipeline.store).run_once()
    body, rows = await usage(seeded)
    press = rows[("acme", "acme~press")]
    assert (press["storage_points"], press["storage_bytes"]) == (2, 32)
    assert {t["enterprise"]: t["storage_points"] for t in body["totals"]}["acme"] == 3


async def test_an_enterprise_sees_only_its_own_usage(seeded):
    acme = seeded.keys["acme"]
    body, rows = await usage(seeded, acme)
    assert {e for e, _ in rows} == {"acme"}
    assert [t["enterprise"] for t in body["totals"]] == ["acme"]
    for params in ({"enterprise": "beta"}, {"project": "beta~ovens"}):
        r = await seeded.call("GET", "/lab/usage", acme, params=params)
        assert r.status_code == 404, r.text
    # The platform admin narrows to one enterprise or project.
    _, rows = await usage(seeded, project="acme~paint")
    assert set(rows) == {("acme", "acme~paint")}


async def test_usage_as_csv_and_bad_days(seeded):
    r = await seeded.call("GET", "/lab/usage.csv", params={"enterprise": "acme"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    press = next(x for x in rows if x["project"] == "acme~press")
    assert (press["day"], press["messages"], press["points"]) == (today(), "2", "2")
    assert next(x for x in rows if x["project"] == "")["api_calls"] != "0"
    for params, reason in (
        ({"since": "last tuesday"}, "day like"),
        ({"since": "2026-12-05", "until": "2026-12-01"}, "after"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "at most"),
    ):
        r = await seeded.call("GET", "/lab/usage", params=params)
        assert r.status_code == 400 and reason in r.json()["message"], r.text
    # Days with nothing metered: no rows, not an error.
    body, _ = await usage(seeded, since="2020-01-01", until="2020-01-31")
    assert body["days"] == [] and body["totals"] == []


async def test_trends_per_hour_and_per_day(seeded):
    # seeded: acme stored 3 messages and has 3 alarms, beta none and 1, all just now.
    for window, n in (("24h", 24), ("7d", 7)):
        r = await seeded.call("GET", "/lab/trends", params={"window": window})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["window"] == window and len(body["buckets"]) == n
        rows = {e["enterprise"]: e for e in body["enterprises"]}
        acme, beta = rows["acme"], rows["beta"]
        assert (acme["messages"][-1], acme["points"][-1], acme["alarms"][-1]) == (3, 3, 3)
        assert sum(acme["messages"]) == 3 and sum(acme["alarms"]) == 3
        assert (beta["messages"][-1], beta["alarms"][-1]) == (0, 1)
        assert body["total"]["alarms"][-1] == 4 and body["total"]["messages"][-1] == 3
        assert body["buckets"] == sorted(body["buckets"])
    # An enterprise sees its own; a bad window is refused with the choices.
    mine = (await seeded.call("GET", "/lab/trends", seeded.keys["beta"])).json()
    assert [e["enterprise"] for e in mine["enterprises"]] == ["beta"]
    r = await seeded.call("GET", "/lab/trends", params={"window": "1y"})
    assert r.status_code == 422 and "24h" in r.text
