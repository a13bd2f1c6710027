"""Fleet make-up, the reporting schedule and fault planning."""

from __future__ import annotations

import collections
import itertools

import pytest

from atoll.core.errors import InvalidInput
from atoll.sim import Fault, Fleet, plan_devices
from atoll.solutions import load

T0 = 1_700_006_400.0


def test_devices_follow_the_template_shares_and_ids_are_unique():
    devices = plan_devices([load("manufacturing")], 1000)
    counts = collections.Counter(d.device_type for d in devices)
    assert counts == {"motor": 600, "pump": 400}
    assert len({d.device_id for d in devices}) == 1000
    assert devices[0].device_id == "sim-manufacturing-motor-00000"


def test_every_device_reports_once_per_period_spread_over_slots():
    fleet = Fleet.build(["retail", "finance"], 200, seed=1, rate=0.5, start=T0)
    readings = fleet.advance(T0 + 20)  # ten periods of 2 s
    per_device = collections.Counter(r.device for r in readings)
    assert set(per_device.values()) == {10}
    assert len(per_device) == 200
    # The load is spread: no instant carries more than its share of the fleet.
    per_instant = collections.Counter(round(r.ts, 6) for r in readings)
    assert max(per_instant.values()) <= 200 / fleet.slots + 1
    device = readings[0].device
    ts = sorted(r.ts for r in readings if r.device == device)
    assert all(b - a == pytest.approx(2.0) for a, b in itertools.pairwise(ts))


def test_payload_matches_the_wire_contract():
    fleet = Fleet.build("healthcare", 3, seed=1, start=T0)
    r = fleet.tick()[0]
    p = r.payload()
    assert p["ts"] == int(T0 * 1000)
    assert set(p) == {"ts", "values"}
    assert all(isinstance(v, (int, float)) for v in p["values"].values())


def test_history_then_live_continues_in_time():
    fleet = Fleet.build("retail", 5, seed=1, start=T0)
    hist = [r for rs in fleet.history(T0 + 600, 60) for r in rs]
    assert len(hist) == 5 * 10
    live = fleet.advance(T0 + 603)
    assert min(r.ts for r in live) >= T0 + 600
    with pytest.raises(InvalidInput):
        next(fleet.history(T0 + 1200, 60))
    with pytest.raises(InvalidInput):
        fleet.resume_at(T0 + 2000)


def test_resume_at_skips_a_gap_before_going_live():
    fleet = Fleet.build("retail", 5, seed=1, start=T0)
    list(fleet.history(T0 + 600, 60))
    fleet.resume_at(T0 + 900)  # the back-fill took five minutes of wall time
    live = fleet.advance(T0 + 901)
    assert len(live) == 5 and min(r.ts for r in live) == T0 + 900


def test_plan_faults_is_seeded_and_respects_kinds_and_window():
    def plan(seed):
        fleet = Fleet.build(["retail", "finance"], 50, seed=seed, start=T0)
        return fleet.plan_faults(
            8, T0 + 600, T0 + 7200, kinds=["door_left_open", "cash_running_out"]
        )

    faults = plan(3)
    assert faults == plan(3) and faults != plan(4)
    assert len({f.device for f in faults}) == 8
    assert {f.kind for f in faults} <= {"door_left_open", "cash_running_out"}
    for f in faults:
        assert T0 + 600 <= f.start < f.end <= T0 + 7200
        assert f.metrics


def test_bad_requests_are_refused_clearly():
    fleet = Fleet.build("retail", 4, seed=1, start=T0)
    dev = fleet.devices[0].device_id
    with pytest.raises(InvalidInput, match="no fault"):
        fleet.inject(Fault(dev, "cash_running_out", ("cash_level",), T0, T0 + 60))
    with pytest.raises(InvalidInput, match="unknown device"):
        fleet.inject(Fault("nope", "door_left_open", ("door",), T0, T0 + 60))
    with pytest.raises(InvalidInput, match="cannot place"):
        fleet.plan_faults(5, T0, T0 + 3600)
    with pytest.raises(InvalidInput, match="window is empty"):
        fleet.plan_faults(1, T0, T0)
    with pytest.raises(InvalidInput, match="unknown fault kinds"):
        fleet.plan_faults(1, T0, T0 + 3600, kinds=["door_ajar"])
    with pytest.raises(InvalidInput):
        Fleet.build("retail", 0)
    with pytest.raises(InvalidInput):
        Fleet.build("retail", 3, rate=0)
