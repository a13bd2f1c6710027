"""The lab through the SDK: overview, an enterprise, projects, the alarm console and bulk
acknowledge/clear, against the real server and rules service."""

from __future__ import annotations

import csv
import io

import pytest

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


def test_feedback_assignees_quality_and_the_audit_log(server, client, plant):
    client.create_rule("plant", HOT)
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send({"temperature": 95})
    (alarm,) = wait_for(lambda: client.alarms(project="plant", status="active"))
    judged = client.judge_alarm(alarm.id, "false", comment="the door was open")
    assert judged.feedback == "false" and judged.feedback_at is not None
    quality = client.lab_quality(project="plant", weeks=2)
    assert quality["total"]["false"] == 1 and quality["total"]["precision"] == 0.0
    assert len(quality["total"]["weeks"]) == 2
    assert [a.id for a in client.lab_alarms(feedback="false")] == [alarm.id]
    who = client.alarm_assignees()
    assert client.assign_alarm(alarm.id, None).assignee is None
    if who["users"]:
        assert client.assign_alarm(alarm.id, who["users"][0]).assignee == who["users"][0]
        assert [a.id for a in client.lab_alarms(assignee=who["users"][0])] == [alarm.id]
    with pytest.raises(atoll.NotFound):
        client.assign_alarm(alarm.id, "no-such-user")
    entries = client.audit(action="alarm.", since="-1h")
    assert {e.action for e in entries} >= {"alarm.feedback", "alarm.assign"}
    assert all(e.source for e in entries)
    assert "alarm.feedback" in client.audit_actions()
    rows = list(csv.DictReader(io.StringIO(client.audit_csv(action="alarm.feedback"))))
    assert [r["target"] for r in rows] == [f"alarm:{alarm.id}"]
