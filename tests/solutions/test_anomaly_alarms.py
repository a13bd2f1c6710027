"""Each template's AI alarms: the real detection service, bound as the template says, feeds the
real rules engine running the template's ``anomaly`` rules over a simulated fleet. The faults
that change values (bearing wear, a dead compressor, an open door, a structural shift, cash
running out) are caught, and healthy devices raise nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from atoll.bus.memory import MemoryBus
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.service import DetectionService
from atoll.rules import loading
from atoll.rules.clock import FakeClock
from atoll.rules.directory import StaticDirectory
from atoll.rules.engine import RuleEngine
from atoll.sim import Fault, Fleet, SimDevice, evaluate
from atoll.solutions import discover

T0 = 1_763_974_800.0  # a Monday, 09:00 UTC: no shift change during the warm-up
STEP = 20.0
WARMUP = 3 * 3600.0
SENSOR_FAULTS = {"sensor_stuck", "sensor_dropout"}


def _anomaly_rules(template) -> list[dict]:
    def uses(c):
        return c.get("type") == "anomaly" or any(uses(x) for x in c.get("conditions", []))

    return [r for r in template.rules if uses(r["condition"])]


def _watched(template, dtype) -> set[str]:
    """Metrics of ``dtype`` an anomaly rule of the template reads."""

    def leaves(c):
        if c.get("type") == "anomaly":
            yield c.get("metric")
        for x in c.get("conditions", []):
            yield from leaves(x)

    return {
        m
        for r in _anomaly_rules(template)
        if r["target"].get("device_type") == dtype.name
        for m in leaves(r["condition"])
    }


def _scenario(template):
    """Per device type: one device per value fault that shows in a metric the AI watches (a
    door left open shows in the temperature), plus three healthy devices."""
    devices, planned = [], []
    for dtype in template.device_types:
        watched = _watched(template, dtype)
        physics = {
            m
            for t in dtype.telemetry
            for f in (t.sim.follows if t.sim else [])
            if t.name in watched
            for m in [f.metric]
        }
        kinds = sorted(
            k
            for k, spec in dtype.faults.items()
            if k.value not in SENSOR_FAULTS
            and {e.metric for e in spec.effects} & (watched | physics)
        )
        for k, kind in enumerate(kinds):
            spec = dtype.faults[kind]
            dev = SimDevice(f"{dtype.name}-{kind.value}", template.name, dtype.name)
            devices.append(dev)
            start = T0 + WARMUP + 1800 * k
            metrics = tuple(dict.fromkeys(e.metric for e in spec.effects))
            planned.append(
                Fault(dev.device_id, kind.value, metrics, start, start + spec.duration_s[1])
            )
        if watched:
            devices += [
                SimDevice(f"{dtype.name}-healthy-{i}", template.name, dtype.name) for i in range(3)
            ]
    fleet = Fleet(devices, seed=11, start=T0, templates=[template])
    for f in planned:
        fleet.inject(f)
    return fleet


class _Types:
    def __init__(self, fleet):
        self.types = {d.device_id: d.device_type for d in fleet.devices}

    def get_device(self, device):
        return SimpleNamespace(device_type=self.types[device], labels={})


async def _alarms(template, fleet) -> list[dict]:
    service = DetectionService(MemoryBus(), None, registry=_Types(fleet))
    for d in template.device_types:
        for b in d.detectors:
            service.bind(
                "p", d.name, b.detector, list(b.metrics), dict(b.params), decision=b.decision
            )
    clock = FakeClock(int(T0 * 1e6))
    engine = RuleEngine(
        clock, StaticDirectory({"p": {d.device_id: d.device_type for d in fleet.devices}})
    )
    for rule in loading.load_rules(
        yaml.safe_dump(_anomaly_rules(template), allow_unicode=True), project="p"
    ):
        engine.upsert(rule)
    alarms = []
    until = max((f.end for f in fleet.faults), default=T0 + WARMUP) + 900
    for readings in fleet.history(until, STEP):
        clock.set(int(readings[0].ts * 1e6))
        keys, idx, ts, vals = {}, [], [], []
        for r in readings:
            for metric, v in r.values.items():
                idx.append(
                    keys.setdefault(
                        SeriesKey("p", fleet.devices[r.device].device_id, metric), len(keys)
                    )
                )
                ts.append(int(r.ts * 1e6))
                vals.append(float(v))
        batch = PointBatch(
            tuple(keys), np.array(idx, np.int32), np.array(ts, np.int64), np.array(vals, np.float64)
        )
        changes = []
        for e in await service.process(batch):
            changes += engine.on_anomaly(e.project, e.device, e.metric, e.ts, e.score, e.is_anomaly)
        changes += engine.on_tick()
        alarms += [
            {"device": c.device, "ts": c.ts / 1e6, "rule": c.rule_id} for c in changes if c.active
        ]
    return alarms


@pytest.mark.parametrize("template", discover(), ids=lambda t: t.name)
def test_template_anomaly_alarms_catch_value_faults(template):
    fleet = _scenario(template)
    alarms = asyncio.run(_alarms(template, fleet))
    score = evaluate(fleet.faults, alarms, grace_s=600)
    missed = [k for k, v in score["by_kind"].items() if v["detected"] < v["faults"]]
    false = [a for a in alarms if "healthy" in a["device"]]
    assert not false, f"{template.name}: false AI alarms {false[:5]}"
    if fleet.faults:  # finance: cash running out is the cash threshold rule's, not the AI's
        # Every kind is caught; after 3 h of history a freezer's dead compressor (+5 degC in
        # 40 min against a 1.5 degC compressor ripple) may still be below the band: the
        # "too warm" threshold rule has it then.
        assert not missed or score["recall"] >= 0.75, f"{template.name}: AI alarms miss {missed}"
        assert all(v["detected"] for v in score["by_kind"].values()), (template.name, alarms)
        assert score["precision"] >= 0.8, score
