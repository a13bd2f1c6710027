"""The audit page's API: who did what, when and from where, filtered, paged and exported;
admins only (the ``seeded`` fixture of tests/api/test_lab.py)."""

from __future__ import annotations

import csv
import io


async def test_admins_read_filter_page_and_export_the_log(seeded):
    acme = seeded.keys["acme"]
    i = seeded.ids
    for name in ("press-hot", "press-warm"):
        r = await seeded.call("POST", f"/alarms/{i[name]}/ack", acme)
        assert r.status_code == 200
    await seeded.call("POST", f"/alarms/{i['paint-hot']}/clear", acme)
    r = await seeded.call("GET", "/audit", acme)
    assert r.status_code == 200, r.text
    rows = r.json()
    total = int(r.headers["X-Total-Count"])
    assert total == len(rows) >= 3 + 3  # the tenant's creation, projects, rules; the alarms
    latest = rows[0]
    assert (latest["action"], latest["target"]) == ("alarm.clear", f"alarm:{i['paint-hot']}")
    assert latest["source"] == "127.0.0.1" and latest["at"].endswith("Z")
    # Filters: an action's prefix, part of the actor, time; another tenant's entries never.
    r = await seeded.call("GET", "/audit", acme, params={"action": "alarm."})
    assert [e["action"] for e in r.json()] == ["alarm.clear", "alarm.ack", "alarm.ack"]
    assert r.headers["X-Total-Count"] == "3"
    r = await seeded.call("GET", "/audit", acme, params={"action": "alarm.ack"})
    assert len(r.json()) == 2
    r = await seeded.call("GET", "/audit", acme, params={"actor": "TENANT ADMIN"})
    assert r.json() and all("tenant admin" in e["actor"] for e in r.json())
    r = await seeded.call("GET", "/audit", acme, params={"actor": "%"})
    assert r.json() == []  # a LIKE wildcard is taken literally
    r = await seeded.call("GET", "/audit", acme, params={"since": "-1h"})
    assert len(r.json()) == total
    r = await seeded.call("GET", "/audit", acme, params={"until": "-1h"})
    assert r.json() == [] and r.headers["X-Total-Count"] == "0"
    assert all(not e["target"].endswith(f":{i['ovens-hot']}") for e in rows)
    # Paging: before_id, with the total across pages.
    first = (await seeded.call("GET", "/audit", acme, params={"limit": 2})).json()
    r = await seeded.call("GET", "/audit", acme, params={"limit": 2, "before_id": first[-1]["id"]})
    assert [e["id"] for e in first + r.json()] == [e["id"] for e in rows[:4]]
    assert r.headers["X-Total-Count"] == str(total)
    # The actions for the filter's choices; the CSV with the same filters.
    actions = (await seeded.call("GET", "/audit/actions", acme)).json()
    assert {"alarm.ack", "alarm.clear"} <= set(actions) and actions == sorted(actions)
    r = await seeded.call("GET", "/audit.csv", acme, params={"action": "alarm."})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    got = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["action"] for x in got] == ["alarm.clear", "alarm.ack", "alarm.ack"]
    assert got[0]["source"] == "127.0.0.1"
    # Bad input is a 4xx with a reason.
    r = await seeded.call("GET", "/audit", acme, params={"since": "yesterday-ish"})
    assert r.status_code == 400 and "time" in r.json()["message"]


async def test_operators_and_viewers_cannot_read_the_log(seeded):
    for role in ("viewer", "operator"):
        r = await seeded.call(
            "POST", "/keys", seeded.keys["acme"], json={"name": role, "role": role}
        )
        token = r.json()["token"]
        for path in ("/audit", "/audit/actions", "/audit.csv"):
            r = await seeded.call("GET", path, token)
            assert r.status_code == 403, (role, path)
            assert "admin" in r.json()["message"]
