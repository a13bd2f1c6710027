"""The project portfolio and the quarterly lab report (issue #13 item 5) on the real app: the
``seeded`` lab of tests/api/test_lab.py (real registry, ingest, rules service and alarm book)."""

from __future__ import annotations

import csv
import io

from atoll.api.portfolio import quarter_range


async def key(lab, tenant: str, role: str) -> str:
    r = await lab.call("POST", "/keys", lab.keys[tenant], json={"name": role, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def test_a_project_moves_along_and_its_outcomes_show_in_the_lab(seeded):
    acme = seeded.keys["acme"]
    r = await seeded.call("GET", "/projects/acme~press/portfolio", acme)
    assert r.status_code == 200, r.text
    assert (r.json()["stage"], r.json()["owner"], r.json()["goals"]) == ("idea", None, "")

    viewer = await key(seeded, "acme", "viewer")
    body = {"stage": "pilot", "owner": "erin", "goals": "Catch bearing wear a week ahead"}
    r = await seeded.call("PUT", "/projects/acme~press/portfolio", viewer, json=body)
    assert r.status_code == 403
    r = await seeded.call("PUT", "/projects/acme~press/portfolio", acme, json={"stage": "done"})
    assert r.status_code == 400 and "idea, poc, pilot, production" in r.json()["message"]
    r = await seeded.call("PUT", "/projects/acme~press/portfolio", acme, json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["stage"], got["stage_name"], got["owner"]) == ("pilot", "Pilot", "erin")
    # Another enterprise's project is not found.
    r = await seeded.call("PUT", "/projects/beta~ovens/portfolio", acme, json=body)
    assert r.status_code == 404
    entries = await seeded.call("GET", "/audit", acme, params={"action": "project.portfolio"})
    (entry,) = entries.json()
    assert entry["detail"]["stage"] == ["idea", "pilot"]

    # Outcomes: b0's failure came after its alarm (caught), b1's before its alarm (not).
    for device, at in (("acme~press-b0", "now"), ("acme~press-b1", "now-1h")):
        r = await seeded.call(
            "POST", f"/devices/{device}/maintenance", acme, json={"kind": "failure", "at": at}
        )
        assert r.status_code == 201, r.text
    r = await seeded.call(
        "PUT", f"/alarms/{seeded.ids['press-hot']}/feedback", acme, json={"feedback": "real"}
    )
    assert r.status_code == 200, r.text

    r = await seeded.call("GET", "/lab/portfolio")
    assert r.status_code == 200, r.text
    lab_view = r.json()
    assert lab_view["quarter"] == quarter_range(None)[0]
    funnel = {f["stage"]: f["projects"] for f in lab_view["funnel"]}
    assert funnel == {"idea": 2, "poc": 0, "pilot": 1, "production": 0}
    rows = {p["project"]: p for p in lab_view["projects"]}
    press = rows["acme~press"]
    assert (press["alarms_raised"], press["alarms_real"], press["precision"]) == (2, 1, 1.0)
    assert (press["failures"], press["caught_before_failure"]) == (2, 1)
    assert press["points"] == 2 and press["enterprise_name"] == "Acme Works"
    assert rows["beta~ovens"]["alarms_raised"] == 1 and rows["beta~ovens"]["failures"] == 0
    assert lab_view["totals"]["caught_before_failure"] == 1

    # An enterprise sees its own projects only; another quarter has no outcomes.
    mine = (await seeded.call("GET", "/lab/portfolio", acme)).json()["projects"]
    assert {p["project"] for p in mine} == {"acme~press", "acme~paint"}
    old = (await seeded.call("GET", "/lab/portfolio", params={"quarter": "2020Q1"})).json()
    assert old["since"].startswith("2020-01-01") and old["until"].startswith("2020-04-01")
    assert sum(p["alarms_raised"] + p["failures"] for p in old["projects"]) == 0
    r = await seeded.call("GET", "/lab/portfolio", params={"quarter": "Q5-2026"})
    assert r.status_code == 400 and "2026Q4" in r.json()["message"]


async def test_the_quarterly_report_as_csv_and_pdf(seeded):
    acme = seeded.keys["acme"]
    await seeded.call("PUT", "/projects/acme~paint/portfolio", acme, json={"stage": "production"})
    r = await seeded.call("GET", "/lab/report.csv", acme)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = {x["project"]: x for x in csv.DictReader(io.StringIO(r.text))}
    assert set(rows) == {"acme~press", "acme~paint"}
    assert (rows["acme~paint"]["stage"], rows["acme~paint"]["alarms_raised"]) == ("production", "1")
    r = await seeded.call("GET", "/lab/report.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and len(r.content) > 1000
    assert "atoll-lab-" in r.headers["content-disposition"]
