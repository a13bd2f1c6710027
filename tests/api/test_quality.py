"""Operator feedback on alarms (real fault, false alarm, unsure), the detection precision the
lab computes from it, and assignees: on the real app, registry, rules service and alarm book
(the ``lab`` and ``seeded`` fixtures of tests/api/test_lab.py)."""

from __future__ import annotations


async def key(lab, tenant: str, role: str) -> str:
    r = await lab.call("POST", "/keys", lab.keys[tenant], json={"name": role, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def judge(lab, alarm_id: int, verdict, who: str, code: int = 200) -> dict:
    r = await lab.call("PUT", f"/alarms/{alarm_id}/feedback", who, json={"feedback": verdict})
    assert r.status_code == code, r.text
    return r.json()


async def test_operators_judge_alarms_viewers_cannot(seeded):
    i = seeded.ids
    operator, viewer = await key(seeded, "acme", "operator"), await key(seeded, "acme", "viewer")
    got = await judge(seeded, i["press-hot"], "real", operator)
    assert (got["feedback"], got["feedback_by"]) == ("real", "operator")
    assert got["feedback_at"].endswith("Z")
    await judge(seeded, i["press-hot"], "false", viewer, 403)
    await judge(seeded, i["press-hot"], "maybe", operator, 422)
    # Another enterprise's alarm is "not found", and stays unjudged.
    await judge(seeded, i["ovens-hot"], "false", operator, 404)
    assert seeded.svc.alarms.get(i["ovens-hot"]).feedback is None
    # Audited in the alarm's tenant, with where from; the alarm's history says it too.
    audit = (await seeded.call("GET", "/audit", seeded.keys["acme"])).json()
    entry = next(e for e in audit if e["action"] == "alarm.feedback")
    assert entry["target"] == f"alarm:{i['press-hot']}" and entry["detail"] == {"feedback": "real"}
    assert entry["source"] == "127.0.0.1"
    alarm = (await seeded.call("GET", f"/alarms/{i['press-hot']}", viewer)).json()
    assert [(h["kind"], h["detail"]) for h in alarm["history"]][-1] == ("feedback", "real")
    # A comment comes along; null withdraws the verdict.
    r = await seeded.call(
        "PUT",
        f"/alarms/{i['press-hot']}/feedback",
        operator,
        json={"feedback": "unsure", "comment": "sensor was being serviced"},
    )
    assert r.json()["feedback"] == "unsure"
    assert (await seeded.call("GET", f"/alarms/{i['press-hot']}/comments", viewer)).json()[-1][
        "text"
    ] == "sensor was being serviced"
    assert (await judge(seeded, i["press-hot"], None, operator))["feedback"] is None


async def test_precision_per_enterprise_project_rule_and_week(seeded):
    i = seeded.ids
    acme = seeded.keys["acme"]
    # Before any verdict: nothing judged, no precision (not 0 %, not 100 %).
    body = (await seeded.call("GET", "/lab/overview")).json()
    rows = {e["id"]: e for e in body["enterprises"]}
    assert rows["acme"]["quality"] == {
        "judged": 0,
        "real": 0,
        "false": 0,
        "unsure": 0,
        "precision": None,
    }
    await judge(seeded, i["press-hot"], "real", acme)
    await judge(seeded, i["press-warm"], "false", acme)
    await judge(seeded, i["paint-hot"], "unsure", acme)
    await judge(seeded, i["ovens-hot"], "real", seeded.keys["beta"])
    body = (await seeded.call("GET", "/lab/overview")).json()
    rows = {e["id"]: e for e in body["enterprises"]}
    q = rows["acme"]["quality"]
    assert (q["judged"], q["real"], q["false"], q["unsure"], q["precision"]) == (3, 1, 1, 1, 0.5)
    assert rows["beta"]["quality"]["precision"] == 1.0
    assert rows["default"]["quality"]["judged"] == 0
    assert body["totals"]["quality"]["judged"] == 4
    assert body["totals"]["quality"]["precision"] == round(2 / 3, 4)
    # Week by week, the current week last.
    weeks = body["quality_weeks"]
    assert len(weeks) == 12 and weeks[-1]["judged"] == 4
    assert all(w["judged"] == 0 for w in weeks[:-1])
    # Per project and per rule on the enterprise page, from the same call.
    ent = (await seeded.call("GET", "/lab/enterprises/acme")).json()
    projects = {p["id"]: p["quality"] for p in ent["projects"]}
    assert projects["acme~press"]["precision"] == 0.5 and projects["acme~press"]["judged"] == 2
    assert projects["acme~paint"]["precision"] is None and projects["acme~paint"]["unsure"] == 1
    rules = {(r["project"], r["rule_name"]): r for r in ent["rules"]}
    assert set(rules) == {("acme~press", "Hot"), ("acme~press", "Warm"), ("acme~paint", "Hot")}
    assert rules[("acme~press", "Warm")]["precision"] == 0.0
    assert rules[("acme~press", "Hot")]["weeks"][-1]["real"] == 1
    # The quality call: the scope narrowed like the alarm console's.
    r = await seeded.call("GET", "/lab/quality", params={"project": "acme~press", "weeks": 4})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["total"]["precision"] == 0.5 and len(got["total"]["weeks"]) == 4
    assert [p["project"] for p in got["projects"]] == ["acme~press"]
    assert {r["rule_name"] for r in got["rules"]} == {"Hot", "Warm"}
    r = await seeded.call("GET", "/lab/quality", acme, params={"enterprise": "beta"})
    assert r.status_code == 404
    # Viewers read the quality (and the verdicts); only operators and admins give them.
    viewer = await key(seeded, "acme", "viewer")
    r = await seeded.call("GET", "/lab/quality", viewer)
    assert r.status_code == 200 and r.json()["total"]["judged"] == 3
    r = await seeded.call("GET", "/lab/enterprises/acme", viewer)
    assert r.json()["enterprise"]["quality"]["precision"] == 0.5
    r = await seeded.call("GET", "/lab/quality", params={"weeks": 0})
    assert r.status_code == 422
    # The alarm console filters by verdict.
    r = await seeded.call("GET", "/lab/alarms", params={"feedback": "real"})
    assert {a["id"] for a in r.json()} == {i["press-hot"], i["ovens-hot"]}
    r = await seeded.call("GET", "/lab/alarms", params={"feedback": "none"})
    assert r.json() == []
    r = await seeded.call("GET", "/lab/alarms", params={"feedback": "false,unsure"})
    assert {a["id"] for a in r.json()} == {i["press-warm"], i["paint-hot"]}
    r = await seeded.call("GET", "/lab/alarms", params={"feedback": "perhaps"})
    assert r.status_code == 400 and "feedback" in r.json()["message"]


async def test_assign_to_a_user_of_the_tenant_and_filter_mine(seeded):
    i = seeded.ids
    # Usernames are namespaced by their tenant ("acme~olga"), as everywhere.
    olga_name = seeded.registry.create_user("acme", "olga", "olga-password-1", "operator").username
    vic = seeded.registry.create_user("acme", "vic", "vic-password-12", "viewer").username
    bert = seeded.registry.create_user("beta", "bert", "bert-password-1", "operator").username
    operator, viewer = await key(seeded, "acme", "operator"), await key(seeded, "acme", "viewer")
    r = await seeded.call("GET", "/alarms/assignees", operator)
    assert r.json()["users"] == [olga_name, vic]
    assert (await seeded.call("GET", "/alarms/assignees", viewer)).status_code == 403

    async def assign(alarm_id: int, who, name, code=200) -> dict:
        r = await seeded.call("PUT", f"/alarms/{alarm_id}/assignee", who, json={"assignee": name})
        assert r.status_code == code, r.text
        return r.json()

    assert (await assign(i["press-hot"], operator, olga_name))["assignee"] == olga_name
    await assign(i["press-warm"], viewer, olga_name, 403)
    got = await assign(i["press-warm"], operator, bert, 404)  # a user of another tenant
    assert bert in got["message"]
    await assign(i["press-warm"], operator, "nobody", 404)
    await assign(i["ovens-hot"], operator, olga_name, 404)  # another tenant's alarm
    await assign(i["paint-hot"], operator, vic)
    audit = (await seeded.call("GET", "/audit", seeded.keys["acme"])).json()
    assert {
        (e["action"], e["detail"]["assignee"]) for e in audit if e["action"] == "alarm.assign"
    } == {
        ("alarm.assign", olga_name),
        ("alarm.assign", vic),
    }
    # Olga signs in: "mine" is hers, in the lab console and in a project's alarm list.
    r = await seeded.http.post(
        "/api/v1/auth/login", json={"username": olga_name, "password": "olga-password-1"}
    )
    olga = r.json()["token"]
    r = await seeded.call("GET", "/lab/alarms", olga, params={"assignee": "me"})
    assert [a["id"] for a in r.json()] == [i["press-hot"]]
    r = await seeded.call("GET", "/alarms", olga, params={"assignee": "me"})
    assert [a["id"] for a in r.json()] == [i["press-hot"]]
    r = await seeded.call("GET", "/lab/alarms", olga, params={"assignee": "none"})
    assert [a["id"] for a in r.json()] == [i["press-warm"]]
    r = await seeded.call("GET", "/lab/alarms", params={"assignee": vic})
    assert [a["id"] for a in r.json()] == [i["paint-hot"]]
    # Unassigning.
    assert (await assign(i["press-hot"], olga, None))["assignee"] is None
    r = await seeded.call("GET", "/lab/alarms", olga, params={"assignee": "me"})
    assert r.json() == []


def test_weeks_start_on_monday_utc():
    from datetime import UTC, datetime

    from atoll.rules.alarms import WEEK_US, week_of, week_start

    for day in range(1, 15):  # two weeks of December 2026, each hour 13:00 UTC
        at = int(datetime(2026, 12, day, 13, tzinfo=UTC).timestamp() * 1e6)
        start = week_start(week_of(at))
        assert start <= at < start + WEEK_US
        begins = datetime.fromtimestamp(start / 1e6, UTC)
        assert (begins.weekday(), begins.hour, begins.minute) == (0, 0, 0)
