"""RUL models per device type in the platform, against a real server (SQLite registry, memory
store, real ingest, rules and RUL services): fitting from the fleet's stored telemetry and
recorded failures, the registry draft, live scores of the active model, a plain threshold rule on
``rul`` raising a maintenance alarm, and the fleet's "due for maintenance" list."""

from __future__ import annotations

import time

import numpy as np
import pytest

import atoll
from atoll.core.points import SeriesKey
from atoll.rul import fleet
from atoll.testing import rul_fleet as synthetic
from tests.client.conftest import wait_for

HOUR = synthetic.HOUR


def test_fit_needs_failures_then_files_a_draft(motors):
    server, client, ms, _, csv = motors
    with pytest.raises(atoll.InvalidInput) as few:
        client.fit_rul("plant", "motor")
    assert "0 run-to-failure trajectories" in few.value.message
    assert "at least 10" in few.value.message
    # Five failures are not enough either: the answer counts them.
    client.import_maintenance("plant", "\n".join(csv.splitlines()[:6]) + "\n")
    with pytest.raises(atoll.InvalidInput) as still:
        client.fit_rul("plant", "motor")
    assert "5 run-to-failure trajectories" in still.value.message
    assert "5 failures recorded" in still.value.message
    client.import_maintenance("plant", "device,at,kind\n" + "\n".join(csv.splitlines()[6:]) + "\n")
    # A window cuts the runs under way at its start: only runs that begin inside it count.
    now = time.time_ns() // 1000
    end = now // HOUR * HOUR - HOUR
    since = end - 150 * HOUR
    inside = 0
    for m in ms:
        start = end - (sum(m.runs) + m.current) * HOUR
        for life in m.runs:
            inside += start >= since
            start += life * HOUR - synthetic.STEP // 2
    with pytest.raises(atoll.InvalidInput) as window:
        client.fit_rul("plant", "motor", since=since // 1000)
    assert f"{inside} run-to-failure trajectories" in window.value.message

    model = client.fit_rul("plant", "motor")
    runs = [life for m in ms for life in m.runs]
    assert (model.kind, model.scope, model.state, model.version) == (
        "rul",
        "type:motor",
        "draft",
        1,
    )
    # One row per hour of every run that ended in a failure (the runs under way are left out).
    assert model.rows == sum(runs)
    assert model.metrics["method"].startswith("5-fold cross-validation over devices")
    # The wear is plain in this fleet: held-out devices are judged within a day on average.
    assert model.metrics["mae"] < 24, model.metrics
    card = model.card
    assert card["fleet"]["metrics"] == ["vibration", "temperature"]
    assert card["fleet"]["trajectories"] == 12 and card["fleet"]["devices"] == 6
    assert model.params["cycle_seconds"] == 3600
    assert model.data_from is not None and model.data_to is not None
    assert (server.data_dir / "models" / "rul" / model.id / "model.json").is_file()
    # An unknown type, a bad cycle: 4xx, never a 500.
    with pytest.raises(atoll.NotFound):
        client.fit_rul("plant", "pump")
    with pytest.raises(atoll.InvalidInput):
        client.fit_rul("plant", "motor", cycle="soon")


def test_active_model_scores_live_and_a_threshold_rule_alarms(motors):
    server, client, _, secrets, csv = motors
    client.import_maintenance("plant", csv)
    model = client.fit_rul("plant", "motor")
    now = time.time_ns() // 1000
    # A draft scores nothing (the service runs a round every 0.2 s); the active version does.
    with atoll.DeviceClient(server.url, "m0", secrets["m0"]) as d:
        d.send({"vibration": 2.5, "temperature": 51.0}, ts=now // 1000)
    wait_for(lambda: server.rul.stats["rounds"] >= 1)  # the round that took m0 is over
    assert server.rul.stats["rounds"] >= 1 and server.rul.stats["scored"] == 0
    assert client.maintenance_due("plant") == []
    client.approve_model("plant", model.id)
    client.activate_model("plant", model.id)
    client.create_rule(
        "plant",
        {
            "name": "Motor due",
            "severity": "major",
            "target": {"device_type": "motor"},
            "condition": {"type": "threshold", "metric": "rul", "op": "<", "value": 36},
        },
    )
    for device in ("m0", "m1"):
        with atoll.DeviceClient(server.url, device, secrets[device]) as d:
            d.send({"vibration": 2.5, "temperature": 51.0}, ts=now // 1000)

    due = wait_for(
        lambda: len(client.maintenance_due("plant")) == 2 and client.maintenance_due("plant")
    )
    assert due, "the RUL service wrote no estimate"
    assert [d.device for d in due] == ["m0", "m1"]  # lowest rul_lo first
    late, early = due
    assert late.rul_lo_hours <= late.rul_hours <= late.rul_hi_hours
    assert late.rul_hours < early.rul_hours
    assert late.model is not None and (late.model.id, late.model.version) == (model.id, 1)
    assert late.rul_cycles == pytest.approx(late.rul_hours)  # one cycle is an hour
    assert late.rul_days == pytest.approx(late.rul_hours / 24, abs=1e-3)
    # Stamped at the end of the last complete hour, as series on the device.
    latest = server.store.latest("plant", "m0")
    at = latest[SeriesKey("plant", "m0", "rul")][0]
    assert at == now // HOUR * HOUR
    assert latest[SeriesKey("plant", "m0", "rul_model_version")][1] == 1
    # m0 is 10 hours from its failure: the rule raised its alarm, m1's stays quiet.
    assert late.rul_hours < 36, late
    alarms = wait_for(lambda: client.alarms(project="plant"))
    assert [a.device for a in alarms] == ["m0"]
    assert [d.device for d in client.maintenance_due("plant", within="36h")] == ["m0"]
    assert [d.device for d in client.maintenance_due("plant", device="m1")] == ["m1"]
    with pytest.raises(atoll.InvalidInput):
        client.maintenance_due("plant", within="later")


def test_dense_cycles_fill_gaps_with_the_last_value():
    got = fleet.dense(np.array([0, 3]), np.array([[1.0, 2.0], [4.0, np.nan]]), 0, 5)
    assert got.tolist() == [[1, 2], [1, 2], [1, 2], [4, 2], [4, 2]]
