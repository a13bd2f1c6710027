"""The lab through the SDK: overview, an enterprise, projects, the alarm console and bulk
acknowledge/clear, against the real server and rules service."""

from __future__ import annotations

import csv
import io

import atoll
from tests.client.conftest import wait_for
from tests.client.test_alarms import HOT


def test_lab_overview_and_alarm_console(server, client, plant):
    client.create_rule("plant", HOT)
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send({"temperature": 95})
    wait_for(lambda: client.alarms(project="plant", status="active"))
    overview = client.lab_overview()
    assert overview["totals"]["open_alarms"] == 1 and overview["totals"]["devices"] >= 1
    (ent,) = [e for e in overview["enterprises"] if e["open_alarms"]]
    one = client.lab_enterprise(ent["id"])
    assert [p["id"] for p in one["projects"] if p["open_alarms"]] == ["plant"]
    assert "plant" in {p["id"] for p in client.lab_projects()}
    (alarm,) = client.lab_alarms(severity="major", since="-1h")
    assert alarm.project == "plant" and alarm.rule_id == "boiler-too-hot"
    assert client.lab_alarms(severity=["critical"]) == []
    rows = list(csv.DictReader(io.StringIO(client.lab_alarms_csv(project="plant"))))
    assert [int(r["id"]) for r in rows] == [alarm.id]
    acked = client.ack_alarms([alarm.id, 999_999], comment="seen")
    assert acked.done == (alarm.id,) and acked.skipped[0][0] == 999_999
    assert "not found" in acked.skipped[0][1]
    assert client.clear_alarms([alarm.id]).done == (alarm.id,)
    assert client.lab_alarms() == []
