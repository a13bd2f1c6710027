"""The lab home and the alarm console across tenants, on the real app: SQLite registry, memory
store, HTTP ingest through the real pipeline, the real rules service and its alarm book."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa


async def test_platform_admin_sees_every_enterprise_with_counts(seeded):
    r = await seeded.call("GET", "/lab/overview")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "platform"
    rows = {e["id"]: e for e in body["enterprises"]}
    assert set(rows) == {"default", "acme", "beta"}
    acme = rows["acme"]
    assert acme["name"] == "Acme Works"
    assert (acme["projects"], acme["devices"], acme["online"]) == (2, 3, 3)
    assert acme["open_alarms"] == 3
    assert acme["alarms"] == {"critical": 1, "major": 1, "minor": 0, "warning": 1, "info": 0}
    assert acme["points"] == 3 and acme["bytes"] == 3 * body["point_bytes"]
    assert acme["ingest_rate"] > 0 and acme["last_activity"] is not None
    beta = rows["beta"]
    assert (beta["projects"], beta["devices"], beta["online"], beta["open_alarms"]) == (1, 1, 0, 1)
    assert beta["points"] == 0 and beta["ingest_rate"] == 0
    empty = rows["default"]
    assert (empty["projects"], empty["devices"], empty["open_alarms"]) == (0, 0, 0)
    assert empty["last_activity"] is None
    totals = body["totals"]
    assert (totals["enterprises"], totals["projects"], totals["devices"]) == (3, 3, 4)
    assert totals["open_alarms"] == 4 and totals["alarms"]["critical"] == 2
    # A cleared alarm is not open any more.
    assert (
        await seeded.call("POST", f"/alarms/{seeded.ids['ovens-hot']}/clear", seeded.keys["beta"])
    ).status_code == 200
    rows = {e["id"]: e for e in (await seeded.call("GET", "/lab/overview")).json()["enterprises"]}
    assert rows["beta"]["open_alarms"] == 0


async def test_enterprise_drill_down_per_project(seeded):
    r = await seeded.call("GET", "/lab/enterprises/acme")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["enterprise"]["id"] == "acme" and body["enterprise"]["devices"] == 3
    projects = {p["id"]: p for p in body["projects"]}
    assert set(projects) == {"acme~press", "acme~paint"}
    press = projects["acme~press"]
    assert (press["name"], press["devices"], press["online"], press["open_alarms"]) == (
        "Press",
        2,
        2,
        2,
    )
    assert press["points"] == 2 and projects["acme~paint"]["alarms"]["major"] == 1
    # The page's quota bars come with it: what GET /tenants/{t}/quotas answers.
    quotas = (await seeded.call("GET", "/tenants/acme/quotas")).json()
    assert body["quotas"] == quotas and quotas["devices"]["used"] == 3
    assert quotas["storage_points"]["used"] == body["enterprise"]["points"] > 0
    assert (await seeded.call("GET", "/lab/enterprises/nope")).status_code == 404


async def test_an_enterprise_admin_sees_only_its_own_enterprise(seeded):
    acme = seeded.keys["acme"]
    body = (await seeded.call("GET", "/lab/overview", acme)).json()
    assert body["scope"] == "tenant"
    assert [e["id"] for e in body["enterprises"]] == ["acme"]
    assert body["totals"]["open_alarms"] == 3
    # Another enterprise is "not found", as everywhere else, header or not.
    assert (await seeded.call("GET", "/lab/enterprises/beta", acme)).status_code == 404
    r = await seeded.http.get(
        "/api/v1/lab/overview", headers=seeded.h(acme, **{"X-Atoll-Tenant": "beta"})
    )
    assert r.status_code == 404
    # The platform admin looking at one tenant still gets the lab.
    r = await seeded.http.get(
        "/api/v1/lab/overview", headers=seeded.h(**{"X-Atoll-Tenant": "acme"})
    )
    assert len(r.json()["enterprises"]) == 3
    assert (await seeded.call("GET", "/lab/overview", "not-a-key")).status_code == 401


async def test_overview_costs_the_same_queries_for_1_or_12_projects(lab):
    """Set-based: the number of SQL statements does not grow with projects or tenants."""
    statements: list[str] = []
    sa.event.listen(
        lab.registry.engine, "before_cursor_execute", lambda *a: statements.append(a[2])
    )

    async def count() -> int:
        statements.clear()
        r = await lab.call("GET", "/lab/overview")
        assert r.status_code == 200
        # (Usage metering writes from the ingest pipeline's thread meanwhile: not the view's.)
        return len(
            [s for s in statements if s.lstrip().upper().startswith("SELECT") and "usage_" not in s]
        )

    await lab.tenant("t0", "T0")
    await lab.project("t0", "p0", 1)
    small = await count()
    for i in range(1, 4):
        await lab.tenant(f"t{i}", f"T{i}")
        for j in range(3):
            await lab.project(f"t{i}", f"p{i}{j}", 1)
    assert (await count()) == small


async def test_alarm_console_filters_across_enterprises(seeded):
    r = await seeded.call("GET", "/lab/alarms")
    assert r.status_code == 200, r.text
    assert r.headers["X-Total-Count"] == "4"
    rows = r.json()
    assert {a["tenant"] for a in rows} == {"acme", "beta"}
    ovens = next(a for a in rows if a["project"] == "beta~ovens")
    assert (ovens["tenant_name"], ovens["project_name"]) == ("Beta Foods", "Ovens")

    async def ids(key=None, **params) -> set[int]:
        r = await seeded.call("GET", "/lab/alarms", key, params=params)
        assert r.status_code == 200, r.text
        return {a["id"] for a in r.json()}

    i = seeded.ids
    assert await ids(enterprise="beta") == {i["ovens-hot"]}
    assert await ids(project="acme~paint") == {i["paint-hot"]}
    assert await ids(severity="critical") == {i["press-hot"], i["ovens-hot"]}
    assert await ids(severity="critical", enterprise="acme") == {i["press-hot"]}
    assert await ids(rule="acme~warm") == {i["press-warm"]}
    assert await ids(since="-1h") == set(i.values())
    assert await ids(until="-1h") == set()
    assert await ids(status="cleared") == set()
    # Worst first: the two critical ones (newest first among them), then major, then warning.
    r = await seeded.call("GET", "/lab/alarms", params={"order": "severity"})
    assert [a["id"] for a in r.json()] == [
        i["ovens-hot"],
        i["press-hot"],
        i["paint-hot"],
        i["press-warm"],
    ]
    assert (await seeded.call("GET", "/lab/alarms", params={"order": "odd"})).status_code == 422
    r = await seeded.call("GET", "/lab/alarms", params={"limit": 1, "offset": 1})
    assert len(r.json()) == 1 and r.headers["X-Total-Count"] == "4"
    # Bad input is a 4xx with a reason.
    r = await seeded.call("GET", "/lab/alarms", params={"severity": "huge"})
    assert r.status_code == 400 and "severity" in r.json()["message"]
    r = await seeded.call("GET", "/lab/alarms", params={"status": "sleepy"})
    assert r.status_code == 400
    # An enterprise admin sees its own alarms only; naming another enterprise is 404.
    acme = seeded.keys["acme"]
    assert await ids(acme) == {i["press-hot"], i["press-warm"], i["paint-hot"]}
    r = await seeded.call("GET", "/lab/alarms", acme, params={"enterprise": "beta"})
    assert r.status_code == 404
    r = await seeded.call("GET", "/lab/alarms", acme, params={"project": "beta~ovens"})
    assert r.status_code == 404


async def test_bulk_acknowledge_and_clear_within_what_the_caller_may_see(seeded):
    i = seeded.ids
    acme = seeded.keys["acme"]
    # A foreign alarm is "not found" for the enterprise admin, and left alone.
    r = await seeded.call(
        "POST", "/lab/alarms/ack", acme, json={"ids": [i["press-hot"], i["ovens-hot"]]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["done"] == [i["press-hot"]]
    assert r.json()["skipped"] == [
        {"id": i["ovens-hot"], "reason": f"alarm {i['ovens-hot']} not found"}
    ]
    assert seeded.svc.alarms.get(i["ovens-hot"]).acknowledged is False
    # The platform admin acknowledges across enterprises; an acknowledged one is skipped.
    r = await seeded.call(
        "POST", "/lab/alarms/ack", json={"ids": [i["press-hot"], i["ovens-hot"]], "comment": "seen"}
    )
    assert r.json()["done"] == [i["ovens-hot"]]
    assert "already acknowledged" in r.json()["skipped"][0]["reason"]
    # The action is audited in the alarm's own enterprise, naming the platform admin.
    audit = (await seeded.call("GET", "/audit", seeded.keys["beta"])).json()
    entry = next(e for e in audit if e["target"] == f"alarm:{i['ovens-hot']}")
    assert entry["action"] == "alarm.ack" and "(platform)" in entry["actor"]
    r = await seeded.call("POST", "/lab/alarms/clear", json={"ids": list(i.values())})
    assert sorted(r.json()["done"]) == sorted(i.values())
    assert (await seeded.call("GET", "/lab/alarms")).json() == []
    # Viewers may look, not act; malformed bodies are 4xx.
    viewer = (
        await seeded.call("POST", "/keys", acme, json={"name": "v", "role": "viewer"})
    ).json()["token"]
    assert (await seeded.call("GET", "/lab/alarms", viewer)).status_code == 200
    r = await seeded.call("POST", "/lab/alarms/ack", viewer, json={"ids": [i["press-hot"]]})
    assert r.status_code == 403
    assert (await seeded.call("POST", "/lab/alarms/ack", json={"ids": []})).status_code == 422
    r = await seeded.call("POST", "/lab/alarms/ack", json={"ids": ["x"]})
    assert r.status_code == 422


async def test_alarm_export_is_csv_with_the_filters(seeded):
    r = await seeded.call("GET", "/lab/alarms.csv", params={"enterprise": "acme"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 and {x["tenant"] for x in rows} == {"acme"}
    hot = next(x for x in rows if x["rule_id"] == "acme~hot")
    assert (hot["tenant_name"], hot["severity"], hot["value"]) == ("Acme Works", "critical", "95.0")
    r = await seeded.call(
        "GET", "/lab/alarms.csv", seeded.keys["beta"], params={"enterprise": "acme"}
    )
    assert r.status_code == 404


async def test_every_project_the_caller_may_see_in_one_call(seeded):
    body = (await seeded.call("GET", "/lab/projects")).json()
    assert body["scope"] == "platform"
    assert {(p["id"], p["tenant"]) for p in body["projects"]} == {
        ("acme~press", "acme"),
        ("acme~paint", "acme"),
        ("beta~ovens", "beta"),
    }
    r = await seeded.http.get(
        "/api/v1/lab/projects", headers=seeded.h(seeded.keys["beta"], **{"X-Atoll-Tenant": "beta"})
    )
    assert r.json() == {
        "scope": "tenant",
        "projects": [next(p for p in body["projects"] if p["id"] == "beta~ovens")],
    }


async def test_without_the_rules_service_the_lab_still_counts_devices(api):
    """A node without the rules service: alarms are null on the lab home, the alarm console
    answers 503 with a reason, never 500."""
    await api.project("solo")
    await api.device("solo", "s1")
    body = (await api.http.get("/api/v1/lab/overview", headers=api.admin)).json()
    (row,) = body["enterprises"]
    assert (row["projects"], row["devices"], row["alarms"], row["open_alarms"]) == (
        1,
        1,
        None,
        None,
    )
    assert body["totals"]["alarms"] is None and row["points"] == 0
    r = await api.http.get("/api/v1/lab/alarms", headers=api.admin)
    assert r.status_code == 503 and "rules service" in r.json()["message"]
