"""AI alarms on simulated fleets: what the templates' ``anomaly`` rules raise, per template.

    .venv/bin/python bench/detect_alarms.py --json bench/results/detect_alarms.json

The platform's own path, minus the network: for each solution template a seeded ``atoll.sim`` fleet
(``--devices``; set up by ``fleet_scenario``) produces ``--days`` of history, one reading per device
every ``--step`` seconds. Every tick goes as one telemetry batch through the real
``DetectionService`` (bound like ``atoll demo`` binds it: the template's ``detectors``), its
``anomaly.*`` events go into the real ``RuleEngine`` holding the template's rules that use the
``anomaly`` condition, and the alarms those rules raise are the detections. The first
``--learn-days`` are commissioning: no faults, alarms not counted. Then ``--faults`` faults per
template, of the kinds that change values (bearing wear, compressor failure, door left open,
structural shift, cash running out; failing sensors are the ``no_data``/``rate`` rules' job), are
injected on distinct devices. ``atoll.sim.evaluate`` scores the alarms (a hit names the faulty
device within the fault window + ``--grace`` s). ``--reading-decisions`` ignores the bindings'
episode ``decision`` settings (``is_anomaly`` = the detector's own per-reading decision, as before
episodes existed).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace

import numpy as np
import yaml
from fleet_scenario import START, add_arguments, scenario, summary, write_json

from atoll.bus.memory import MemoryBus
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.service import DetectionService
from atoll.rules import loading
from atoll.rules.clock import FakeClock
from atoll.rules.directory import StaticDirectory
from atoll.rules.engine import RuleEngine
from atoll.sim.evaluate import evaluate
from atoll.sim.fleet import Fleet
from atoll.solutions import discover

SENSOR_FAULTS = {"sensor_stuck", "sensor_dropout"}
PROJECT = "p"


def _uses_anomaly(cond: dict) -> bool:
    return cond.get("type") == "anomaly" or any(
        _uses_anomaly(c) for c in cond.get("conditions", [])
    )


class _Types:
    """The service asks the registry for a device's type; the fleet knows it."""

    def __init__(self, fleet: Fleet) -> None:
        self.types = {d.device_id: d.device_type for d in fleet.devices}

    def get_device(self, device: str):
        return SimpleNamespace(device_type=self.types[device], labels={})


async def run_template(template, args) -> dict:
    kinds = {k.value for d in template.device_types for k in d.faults} - SENSOR_FAULTS
    run = scenario(template.name, args, kinds=kinds)
    fleet, faults, learn_end = run.fleet, run.faults, run.learn_end

    service = DetectionService(MemoryBus(), None, registry=_Types(fleet))
    for d in template.device_types:
        for b in d.detectors:
            decision = None if args.reading_decisions else b.decision
            service.bind(
                PROJECT, d.name, b.detector, list(b.metrics), dict(b.params), decision=decision
            )
    rules = [r for r in template.rules if _uses_anomaly(r["condition"])]
    clock = FakeClock(int(START * 1e6))
    engine = RuleEngine(
        clock, StaticDirectory({PROJECT: {d.device_id: d.device_type for d in fleet.devices}})
    )
    for rule in loading.load_rules(yaml.safe_dump(rules, allow_unicode=True), project=PROJECT):
        engine.upsert(rule)

    alarms, points, t_detect, t_rules = [], 0, 0.0, 0.0
    for rows in run.ticks(args.step):
        if not rows:
            continue
        clock.set(int(rows[0][2] * 1e6))
        keys, idx, ts, vals = {}, [], [], []
        for dev, metric, t, v in rows:
            idx.append(keys.setdefault(SeriesKey(PROJECT, dev, metric), len(keys)))
            ts.append(int(t * 1e6))
            vals.append(v)
        batch = PointBatch(
            tuple(keys), np.array(idx, np.int32), np.array(ts, np.int64), np.array(vals, np.float64)
        )
        t0 = time.process_time()
        events = await service.process(batch)
        t1 = time.process_time()
        changes = []
        for e in events:
            changes += engine.on_anomaly(e.project, e.device, e.metric, e.ts, e.score, e.is_anomaly)
        changes += engine.on_tick()
        t_rules += time.process_time() - t1
        t_detect += t1 - t0
        points += len(batch)
        alarms += [
            {"device": c.device, "ts": c.ts / 1e6, "rule": c.rule_id}
            for c in changes
            if c.active and c.ts / 1e6 >= learn_end
        ]
    res = evaluate(faults, alarms, grace_s=args.grace)
    res.update(
        template=template.name,
        series=len(service.series),
        points=points,
        alarms_per_device_day=len(alarms) / len(fleet.devices) / (args.days - args.learn_days),
        detect_cpu_s=round(t_detect, 2),
        rules_cpu_s=round(t_rules, 2),
        faults=[f.to_dict() for f in faults],
        alarms=alarms,
    )
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", default=",".join(t.name for t in discover()))
    add_arguments(p, devices=20, faults=8)
    p.add_argument("--reading-decisions", action="store_true")
    args = p.parse_args()

    by_name = {t.name: t for t in discover()}
    rows = []
    for name in args.templates.split(","):
        res = asyncio.run(run_template(by_name[name], args))
        rows.append(res)
        print(
            summary(
                name,
                res,
                noun="alarms",
                extra=f"alarms/device/day {res['alarms_per_device_day']:.2f}  ",
            ),
            flush=True,
        )
    total = {
        k: sum(r[k] for r in rows)
        for k in ("detections", "true_positives", "detected")
        if all(k in r for r in rows)
    }
    write_json(args.json, {"args": vars(args), "results": rows, "total": total})


if __name__ == "__main__":
    main()
