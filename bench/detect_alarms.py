"""AI alarms on simulated fleets: what the templates' ``anomaly`` rules raise, per template.

    .venv/bin/python bench/detect_alarms.py --json bench/results/detect_alarms.json

The platform's own path, minus the network: for each solution template a seeded ``atoll.sim``
fleet (``--devices``) produces ``--days`` of history, one reading per device every ``--step``
seconds. Every tick goes as one telemetry batch through the real ``DetectionService`` (bound
like ``atoll demo`` binds it: the template's ``detectors``), its ``anomaly.*`` events go into the
real ``RuleEngine`` holding the template's rules that use the ``anomaly`` condition, and the
alarms those rules raise are the detections. The first ``--learn-days`` are commissioning: no
faults, alarms not counted. Then ``--faults`` faults per template, of the kinds that change
values (bearing wear, compressor failure, door left open, structural shift, cash running out;
failing sensors are the ``no_data``/``rate`` rules' job), are injected on distinct devices.
``atoll.sim.evaluate`` scores the alarms (a hit names the faulty device within the fault window
+ ``--grace`` s). ``--reading-decisions`` ignores the bindings' episode ``decision`` settings
(``is_anomaly`` = the detector's own per-reading decision, as before episodes existed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import yaml

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

START = 1_764_000_000.0  # a fixed virtual start (a Monday, 16:00 UTC) keeps runs reproducible
SENSOR_FAULTS = {"sensor_stuck", "sensor_dropout"}
PROJECT = "p"


def _uses_anomaly(cond: dict) -> bool:
    return cond.get("type") == "anomaly" or any(_uses_anomaly(c) for c in cond.get("conditions", []))


class _Types:
    """The service asks the registry for a device's type; the fleet knows it."""

    def __init__(self, fleet: Fleet) -> None:
        self.types = {d.device_id: d.device_type for d in fleet.devices}

    def get_device(self, device: str):
        return SimpleNamespace(device_type=self.types[device], labels={})


async def run_template(template, args) -> dict:
    fleet = Fleet.build(template.name, args.devices, seed=args.seed, start=START)
    kinds = sorted({k.value for d in template.device_types for k in d.faults} - SENSOR_FAULTS)
    learn_end = START + args.learn_days * 86_400
    end = START + args.days * 86_400
    eligible = sum(1 for i in range(len(fleet.devices))
                   if {k.value for k in fleet.device_type(i).faults} & set(kinds))
    faults = fleet.plan_faults(min(args.faults, eligible), learn_end, end, kinds=kinds)

    service = DetectionService(MemoryBus(), None, registry=_Types(fleet))
    for d in template.device_types:
        for b in d.detectors:
            decision = None if args.reading_decisions else b.decision
            service.bind(PROJECT, d.name, b.detector, list(b.metrics), dict(b.params), decision=decision)
    rules = [r for r in template.rules if _uses_anomaly(r["condition"])]
    clock = FakeClock(int(START * 1e6))
    engine = RuleEngine(clock, StaticDirectory({PROJECT: {d.device_id: d.device_type
                                                          for d in fleet.devices}}))
    for rule in loading.load_rules(yaml.safe_dump(rules, allow_unicode=True), project=PROJECT):
        engine.upsert(rule)

    alarms, points, t_detect, t_rules = [], 0, 0.0, 0.0
    for readings in fleet.history(end, args.step):
        if not readings:
            continue
        ts_us = int(readings[0].ts * 1e6)
        clock.set(ts_us)
        keys, idx, ts, vals = {}, [], [], []
        for r in readings:
            dev = fleet.devices[r.device].device_id
            for metric, v in r.values.items():
                idx.append(keys.setdefault(SeriesKey(PROJECT, dev, metric), len(keys)))
                ts.append(int(r.ts * 1e6))
                vals.append(float(v))
        batch = PointBatch(tuple(keys), np.array(idx, np.int32), np.array(ts, np.int64),
                           np.array(vals, np.float64))
        t0 = time.process_time()
        events = await service.process(batch)
        t1 = time.process_time()
        changes = []
        for e in events:
            changes += engine.on_anomaly(e["project"], e["device"], e["metric"], e["ts"],
                                         e["score"], e["is_anomaly"])
        changes += engine.on_tick()
        t_rules += time.process_time() - t1
        t_detect += t1 - t0
        points += len(batch)
        alarms += [{"device": c.device, "ts": c.ts / 1e6, "rule": c.rule_id}
                   for c in changes if c.active and c.ts / 1e6 >= learn_end]
    res = evaluate(faults, alarms, grace_s=args.grace)
    res.update(template=template.name, series=len(service.series), points=points,
               alarms_per_device_day=len(alarms) / len(fleet.devices)
               / (args.days - args.learn_days),
               detect_cpu_s=round(t_detect, 2), rules_cpu_s=round(t_rules, 2),
               faults=[f.to_dict() for f in faults], alarms=alarms)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", default=",".join(t.name for t in discover()))
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--days", type=float, default=3.0)
    p.add_argument("--learn-days", type=float, default=1.0)
    p.add_argument("--step", type=float, default=30.0)
    p.add_argument("--faults", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--grace", type=float, default=300.0)
    p.add_argument("--reading-decisions", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()

    by_name = {t.name: t for t in discover()}
    rows = []
    for name in args.templates.split(","):
        res = asyncio.run(run_template(by_name[name], args))
        rows.append(res)
        ttd = "-" if res["median_ttd"] is None else f"{res['median_ttd']:.0f}s"
        prec = "-" if res["precision"] is None else f"{res['precision']:.2f}"
        print(f"{name:14s} alarms {res['detections']:4d}  precision {prec:>5s}  "
              f"recall {res['recall']:.2f}  median TTD {ttd:>6s}  "
              f"alarms/device/day {res['alarms_per_device_day']:.2f}  by kind "
              + ", ".join(f"{k} {v['detected']}/{v['faults']}" for k, v in res["by_kind"].items()),
              flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("detections", "true_positives", "detected")
             if all(k in r for r in rows)}
    out = {"args": vars(args), "results": rows, "total": total,
           "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
           "date": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
