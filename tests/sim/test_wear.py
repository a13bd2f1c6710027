import numpy as np
import pytest
from pydantic import ValidationError

from atoll.sim import Fleet
from atoll.sim.fleet import WEAR_OUT, plan_devices
from atoll.sim.wear import WearPlan
from atoll.solutions import load
from atoll.solutions.models import DeviceType

T0 = 1_765_000_000.0


def _fleet(wear: bool) -> Fleet:
    tpl = load("manufacturing")
    return Fleet(plan_devices([tpl], 14), seed=3, start=T0, templates=[tpl], wear=wear)


def _series(fleet: Fleet, until: float, step: float = 10.0) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, list]] = {}
    for readings in fleet.history(until, step):
        for r in readings:
            d = out.setdefault(fleet.devices[r.device].device_id, {})
            d.setdefault("ts", []).append(r.ts)
            for k, v in r.values.items():
                d.setdefault(k, []).append(v)
    return {dev: {k: np.asarray(v, dtype=float) for k, v in m.items()} for dev, m in out.items()}


def test_motors_wear_to_failure_and_are_repaired_as_new():
    hours = 2 * 3600.0
    worn, plain = _fleet(True), _fleet(False)
    a, b = _series(worn, T0 + hours), _series(plain, T0 + hours)
    failures = worn.failures(T0, T0 + hours)
    motors = {d.device_id for d in worn.devices if d.device_type == "motor"}
    assert failures and {f.device for f in failures} <= motors
    # Staggered: the failures spread over the two hours rather than coming in a bunch.
    gaps = np.diff([f.at for f in failures])
    assert len(failures) >= 2 * len(motors) and gaps.max() < 15 * 60
    wear = load("manufacturing").device_type("motor").wear
    assert wear is not None
    lo, hi = wear.life_s
    for f in failures:
        dev = a[f.device]
        extra = dev["vibration_rms"] - b[f.device]["vibration_rms"]
        # Wear adds nothing to the metrics it does not touch (its own random stream) ...
        assert np.array_equal(dev["current"], b[f.device]["current"])
        # ... and to vibration it adds value x wear**4: just before the failure almost all of
        # it, just after (repaired as new) almost nothing.
        before = (dev["ts"] < f.at) & (dev["ts"] >= f.at - 30)
        after = (dev["ts"] >= f.at) & (dev["ts"] < f.at + 30)
        if before.any():
            assert extra[before].min() > 2.5
        if after.any():
            assert extra[after].max() < 0.05
        if f.began >= T0:  # a whole run: its life is one the template allows
            assert lo <= f.life <= hi
    # Pumps do not wear.
    pumps = [d.device_id for d in worn.devices if d.device_type == "pump"]
    assert all(np.array_equal(a[p]["vibration_rms"], b[p]["vibration_rms"]) for p in pumps)


def test_failures_are_known_ahead_and_the_same_for_the_same_seed():
    first = _fleet(True).failures(T0, T0 + 7200)
    again = _fleet(True)
    list(again.history(T0 + 3600, 5.0))  # stepping the signals does not move the plan
    assert again.failures(T0, T0 + 7200) == first
    assert _fleet(False).failures(T0, T0 + 7200) == []


def test_wear_outs_are_ground_truth_from_when_the_wear_shows():
    fleet = _fleet(True)
    wear = load("manufacturing").device_type("motor").wear
    assert wear is not None
    outs = fleet.wear_outs(T0, T0 + 3600)
    fails = fleet.failures(T0, T0 + 3600)
    assert [(o.device, o.end) for o in outs] == [(f.device, f.at) for f in fails]
    for o, f in zip(outs, fails, strict=True):
        assert o.kind == WEAR_OUT and set(o.metrics) == {"vibration_rms", "bearing_temp"}
        assert o.start == pytest.approx(f.began + wear.visible_from * f.life)


def test_wear_plan_keeps_time_moving_per_device():
    wear = load("manufacturing").device_type("motor").wear
    assert wear is not None
    plan = WearPlan(wear, 3, t0=0.0, seed=5)
    t = np.zeros(3)
    seen = []
    for step in range(0, 4 * 3600, 30):
        seen.append(plan.wear(np.arange(3), t + step))
    h = np.array(seen)
    assert ((h >= 0) & (h < 1)).all()
    # Each reset of the wear is a failure the plan lists, and the other way round.
    resets = [(k, i) for k in range(3) for i in range(1, len(h)) if h[i, k] < h[i - 1, k]]
    assert len(resets) == len(plan.failures(0.0, 4 * 3600 - 30 + 1e-9))


def test_a_template_refuses_wear_on_an_unknown_metric():
    with pytest.raises(ValidationError, match="wear on unknown metric"):
        DeviceType.model_validate(
            {
                "name": "m",
                "telemetry": [{"name": "x", "sim": {"base": 1}}],
                "wear": {"life_s": [10, 20], "effects": [{"metric": "y", "value": 1}]},
            }
        )
    with pytest.raises(ValidationError, match="life_s"):
        DeviceType.model_validate(
            {
                "name": "m",
                "telemetry": [{"name": "x", "sim": {"base": 1}}],
                "wear": {"life_s": [20, 10], "effects": [{"metric": "x", "value": 1}]},
            }
        )
