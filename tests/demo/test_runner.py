import asyncio
import threading
from datetime import UTC, datetime

import httpx
import pytest

from atoll.client import Alarm
from atoll.demo import LAB, DemoOptions, run_demo
from atoll.demo.lab import split_devices
from atoll.demo.runner import score
from atoll.sim import Fault, Fleet
from atoll.sim.fleet import plan_devices
from atoll.solutions import load


def test_split_devices_gives_every_tenant_some_and_sums_to_total():
    for total in (10, 11, 60, 1000):
        counts = split_devices(total)
        assert sum(counts) == total
        assert min(counts) >= 2
    with pytest.raises(ValueError):
        split_devices(5)


def test_plan_faults_spreads_over_types_and_staggers_starts():
    from atoll.demo.runner import plan_faults

    templates = [load(t.template) for t in LAB]
    fleet = Fleet(plan_devices(templates, 40), seed=1, start=1_700_000_000.0, templates=templates)
    faults = plan_faults(fleet, 10, 1_700_000_000.0, 20.0, 15.0)
    assert len(faults) == 10
    assert len({f.device for f in faults}) == 10
    starts = [f.start for f in faults]
    assert (
        starts == sorted(starts) and starts[0] == 1_700_000_020.0 and starts[1] - starts[0] == 15.0
    )
    assert len({fleet.devices[fleet.index[f.device]].template for f in faults}) == 5


def _alarm(device: str, raised_at: float) -> Alarm:
    return Alarm(
        id=1,
        project="p",
        rule_id="r",
        rule_name="r",
        device=device,
        severity="major",
        status="active",
        acknowledged=False,
        raised_at=datetime.fromtimestamp(raised_at, UTC),
    )


def test_score_counts_only_played_out_faults_for_recall():
    faults = [
        Fault("a", "k", ("m",), 100, 200),
        Fault("b", "k", ("m",), 150, 250),
        Fault("c", "k", ("m",), 900, 1000),
    ]
    alarms = [_alarm("a", 120), _alarm("x", 130)]
    r = score(faults, alarms, now=600)
    # a detected; b ended long enough ago and was missed; c is still to come.
    assert r["played_out"] == 2 and r["in_progress"] == 1
    assert r["recall"] == 0.5
    assert r["precision"] == 0.5
    assert r["false_positives"] == 1


def test_demo_runs_end_to_end_and_ingests_live_data(tmp_path):
    opts = DemoOptions(
        home=tmp_path / "demo",
        devices=10,
        duration=8,
        history_s=300,  # enough to fit on (256 readings)
        fit_history=True,
        faults=2,
        http_port=0,
        mqtt_port=0,
        first_fault_s=1,
        fault_every_s=1,
    )
    seen = {}
    views = {}

    def ready(info):
        seen.update(info)
        # ready() runs on the platform's event loop: talk to the API from another thread.
        checker.append(threading.Thread(target=check, args=(info,)))
        checker[0].start()

    def check(info):
        # While the demo runs: each enterprise's login sees its own project, and only that.
        first, second = info["tenants"][0], info["tenants"][1]
        with httpx.Client(base_url=info["console"] + "/api/v1") as http:
            token = http.post(
                "/auth/login", json={"username": first["user"], "password": first["password"]}
            ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            views["projects"] = [p["id"] for p in http.get("/projects", headers=auth).json()]
            views["other"] = http.get(f"/projects/{second['project']}", headers=auth).status_code
            views["devices"] = http.get(
                f"/projects/{first['project']}/devices", headers=auth
            ).json()

    checker = []
    said: list[str] = []
    summary = asyncio.run(run_demo(opts, say=said.append, ready=ready))
    checker[0].join(30)
    # Names chosen in a tenant live in its namespace, and the demo prints the real ones.
    assert views["projects"] == [f"{LAB[0].id}~{LAB[0].project}"]
    assert seen["tenants"][0]["user"] == f"{LAB[0].id}~admin"
    assert views["other"] == 404
    assert len(views["devices"]) >= 2
    assert summary.tenants == len(LAB)
    assert summary.devices == 10
    # 300 s of history plus ~8 s live, every device once a second, several metrics each.
    assert summary.points_ingested > 10 * 300 * 2
    # Every series was fitted on the back-filled history before going live.
    (fitted,) = [m for m in said if "models fitted" in m]
    assert "keep their detector" not in fitted and int(fitted.split()[0]) >= 20
    assert summary.rejected == 0
    assert summary.faults_injected == 2
    # Five minutes of history hold too few motor failures for an RUL model: the demo says so
    # and goes on without one.
    assert summary.rul_model is None and summary.rul_note is not None
    assert "needs at least 10" in summary.rul_note
    assert any("no RUL model for motor" in m for m in said)
    assert seen["console"].startswith("http://127.0.0.1:")
    assert len(seen["password"]) >= 16 and seen["api_key"].startswith("atk_")
    assert (tmp_path / "demo" / "ground_truth.json").exists()


def test_caught_by_tells_a_fault_under_way_from_a_missed_one():
    from atoll.demo.runner import GRACE_S, caught_by

    faults = [Fault("a", "k", ("m",), 100, 200), Fault("b", "k", ("m",), 100, 200)]
    out = caught_by(faults, [_alarm("a", 150)], now=250)
    assert out[0]["detected_after_s"] == 50 and out[0]["under_way"] is False
    assert out[1]["detected_after_s"] is None and out[1]["under_way"] is True
    late = caught_by(faults, [], now=200 + GRACE_S + 1)
    assert [f["under_way"] for f in late] == [False, False]
