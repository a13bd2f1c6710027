"""Alarms through the SDK: raised by the real rules service from a device's reading."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

import atoll
from tests.client.conftest import wait_for

HOT = {
    "name": "Boiler too hot",
    "severity": "major",
    "target": {"device_type": "boiler"},
    "condition": {"type": "threshold", "metric": "temperature", "op": ">", "value": 90},
}


def test_alarm_lifecycle(server, client, plant):
    client.create_rule("plant", HOT)
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send({"temperature": 95})
    (alarm,) = wait_for(lambda: client.alarms(project="plant", status="active"))
    assert (alarm.device, alarm.rule_id, alarm.severity, alarm.value) == (
        "b1",
        "boiler-too-hot",
        "major",
        95,
    )
    assert isinstance(alarm.raised_at, datetime) and not alarm.acknowledged and alarm.history == ()

    # filters
    assert client.alarms(device="b1", rule="boiler-too-hot", severity=["major", "critical"]) == [
        alarm
    ]
    assert client.alarms(status=["acknowledged", "cleared"]) == []
    assert client.alarms(acknowledged=False) == [alarm]
    assert client.alarms(since=alarm.raised_at - timedelta(seconds=1)) == [alarm]
    assert client.alarms(until=alarm.raised_at - timedelta(seconds=1)) == []
    assert client.alarms(limit=1, offset=1) == []
    with pytest.raises(atoll.InvalidInput, match="status"):
        client.alarms(status="sleeping")
    summary = client.alarm_summary("plant")
    assert (summary.open, summary.active, summary.acknowledged) == (1, 1, 0)
    assert summary.by_severity == {"major": 1} and summary.by_device["b1"]["severity"] == "major"

    acked = client.ack_alarm(alarm.id, comment="on it")
    assert acked.acknowledged and acked.acknowledged_by and acked.acknowledged_at >= alarm.raised_at
    with pytest.raises(atoll.Conflict):
        client.ack_alarm(alarm.id)
    note = client.comment_alarm(alarm.id, "burner swapped")
    assert note.text == "burner swapped" and note.alarm_id == alarm.id
    assert client.alarm_summary().acknowledged == 1
    cleared = client.clear_alarm(alarm.id, comment="fixed")
    assert cleared.status == "cleared" and cleared.cleared_at is not None
    with pytest.raises(atoll.Conflict):
        client.clear_alarm(alarm.id)
    assert client.alarms(project="plant", status="open") == []

    history = client.alarm_history(alarm.id)
    kinds = [e.kind for e in history]
    assert kinds[0] == "raised" and kinds.index("acknowledged") < kinds.index("cleared")
    assert {e.actor for e in history if e.kind in ("acknowledged", "cleared")} == {
        acked.acknowledged_by
    }
    comments = client.alarm_comments(alarm.id)
    assert note in comments and {c.text for c in comments} >= {"on it", "burner swapped"}
    full = client.alarm(alarm.id)
    assert (
        full.status == "cleared"
        and full.history == tuple(history)
        and full.comments == tuple(comments)
    )
    with pytest.raises(atoll.NotFound):
        client.alarm(alarm.id + 1000)

    viewer = client.create_api_key("ro", "viewer")
    with atoll.Client(server.url, viewer.token) as ro:
        assert ro.alarm(alarm.id).id == alarm.id
        with pytest.raises(atoll.Forbidden):
            ro.comment_alarm(alarm.id, "me too")


def test_alarms_stay_in_their_tenant(server, client, plant):
    client.create_rule("plant", HOT)
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send({"temperature": 95})
    (alarm,) = wait_for(lambda: client.alarms(status="active"))
    _, key = client.create_tenant("Acme", id="acme")
    with atoll.Client(server.url, key.token) as acme:
        assert acme.alarms() == [] and acme.alarm_summary().open == 0
        with pytest.raises(atoll.NotFound):
            acme.alarm(alarm.id)
        with pytest.raises(atoll.NotFound):
            acme.alarms(project="plant")
    with client.in_tenant("acme") as admin_in_acme:
        assert admin_in_acme.alarms() == []
