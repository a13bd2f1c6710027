"""Each template's rules, run by the real rules engine on simulated data, catch the faults the
simulator injects into that template's devices, and stay quiet on healthy ones."""

from __future__ import annotations

import pytest
import yaml

from atoll.rules import loading
from atoll.rules.clock import FakeClock
from atoll.rules.directory import StaticDirectory
from atoll.rules.engine import RuleEngine
from atoll.sim import Fault, Fleet, SimDevice, evaluate
from atoll.solutions import discover

T0 = 1_700_006_400.0
STEP = 5.0
WARMUP = 1800.0


def _scenario(template):
    """One device per (device type, fault kind) with that fault, plus two healthy ones per type."""
    devices, planned = [], []
    for dtype in template.device_types:
        for k, (kind, spec) in enumerate(sorted(dtype.faults.items())):
            dev = SimDevice(f"{dtype.name}-{kind.value}", template.name, dtype.name)
            devices.append(dev)
            start = T0 + WARMUP + 300 * k
            metrics = tuple(dict.fromkeys(e.metric for e in spec.effects))
            planned.append(
                Fault(dev.device_id, kind.value, metrics, start, start + spec.duration_s[0])
            )
        devices += [
            SimDevice(f"{dtype.name}-healthy-{i}", template.name, dtype.name) for i in range(2)
        ]
    fleet = Fleet(devices, seed=5, start=T0, templates=[template])
    for f in planned:
        fleet.inject(f)
    return fleet


@pytest.mark.parametrize("template", discover(), ids=lambda t: t.name)
def test_template_rules_catch_injected_faults(template):
    fleet = _scenario(template)
    clock = FakeClock(int(T0 * 1e6))
    directory = StaticDirectory({"p": {d.device_id: d.device_type for d in fleet.devices}})
    engine = RuleEngine(clock, directory)
    for rule in loading.load_rules(yaml.safe_dump(template.rules, allow_unicode=True), project="p"):
        engine.upsert(rule)

    detections = []
    until = max(f.end for f in fleet.faults) + 600
    for readings in fleet.history(until, STEP):
        clock.set(int(readings[0].ts * 1e6) if readings else clock.now_us() + int(STEP * 1e6))
        changes = []
        for r in readings:
            values = {k: float(v) for k, v in r.values.items()}
            changes += engine.on_telemetry(
                "p", fleet.devices[r.device].device_id, int(r.ts * 1e6), values
            )
        changes += engine.on_tick()
        detections += [
            {"device": c.device, "ts": c.ts, "rule": c.rule_id} for c in changes if c.active
        ]

    score = evaluate(fleet.faults, detections, grace_s=600)
    missed = [k for k, v in score["by_kind"].items() if v["detected"] < v["faults"]]
    false = [d for d in detections if "healthy" in d["device"]]
    assert score["recall"] == 1.0, f"{template.name}: rules miss {missed}"
    assert not false, f"{template.name}: false alarms {false[:5]}"
    assert score["precision"] >= 0.9, score
    assert score["median_ttd"] <= 300, score
