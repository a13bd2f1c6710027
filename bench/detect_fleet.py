"""Detectors on a simulated fleet with injected faults: precision, recall and time to detect.

    .venv/bin/python bench/detect_fleet.py --json bench/results/detect_fleet.json

A seeded ``atoll.sim`` fleet (``--template``, ``--devices``; set up by ``fleet_scenario``)
produces ``--days`` of history, one reading per device every ``--step`` seconds; the first
``--learn-days`` (1) are fault-free, then ``--faults`` faults from the template (bearing wear,
stuck sensors, dropouts...) are injected on distinct devices.
Each detector runs strictly online on every series (one detector per metric), and ``joint`` runs
one detector per device over all its metrics. A reading at or above the detector's own default
threshold is a detection; ``atoll.sim.evaluate`` scores them against the ground truth (a hit names
the faulty device within the fault window + ``--grace`` s; detections of a series within
``--merge`` s of the last counted one are one detection). Nothing is tuned on the faults.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from fleet_scenario import add_arguments, scenario, summary, write_json

from atoll.detect.registry import for_features, get_detector, resolve
from atoll.detect.replay import warm_up
from atoll.sim.evaluate import evaluate


def history(args):
    fleet = scenario(args.template, args)
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for rows in fleet.ticks(args.step):
        for dev, metric, ts, v in rows:
            series[(dev, metric)].append((ts, v))
    return fleet.faults, {
        k: (np.array([t for t, _ in v]), np.array([x for _, x in v])) for k, v in series.items()
    }


def per_series(name, series):
    dets, points, t = [], 0, 0.0
    for (dev, metric), (ts, vals) in series.items():
        det = get_detector(name)
        t0 = time.process_time()
        scores = det.score_many(vals, (ts * 1e6).astype(np.int64))
        t += time.process_time() - t0
        points += len(vals)
        dets += [
            {"device": dev, "metric": metric, "ts": float(x)}
            for x in ts[scores >= det.default_threshold]
        ]
    return dets, points, t


def per_device(name, series):
    by_dev: dict[str, dict[str, tuple]] = defaultdict(dict)
    for (dev, metric), s in series.items():
        by_dev[dev][metric] = s
    dets, points, t = [], 0, 0.0
    for dev, metrics in by_dev.items():
        names = sorted(metrics)
        ts = np.unique(np.concatenate([metrics[m][0] for m in names]))
        x = np.full((len(ts), len(names)), np.nan)
        for j, m in enumerate(names):
            x[np.searchsorted(ts, metrics[m][0]), j] = metrics[m][1]
        det = for_features(len(names), name)
        t0 = time.process_time()
        scores = det.score_many(x, (ts * 1e6).astype(np.int64))
        t += time.process_time() - t0
        points += int(np.isfinite(x).sum())
        dets += [
            {"device": dev, "metric": "+".join(names), "ts": float(v)}
            for v in ts[scores >= det.default_threshold]
        ]
    return dets, points, t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--template", default="manufacturing")
    add_arguments(p, devices=30, faults=15)
    p.add_argument("--merge", type=float, default=1800.0)
    p.add_argument("--detectors", default="default,seasonal,windowed_gaussian,ewma")
    args = p.parse_args()

    faults, series = history(args)
    names = args.detectors.split(",")
    warm_up([resolve(n) for n in names])
    rows = []
    for label, run in [(n, lambda n=n: per_series(n, series)) for n in names] + [
        (f"joint({resolve('default')})", lambda: per_device("default", series))
    ]:
        dets, points, cpu = run()
        res = evaluate(faults, dets, grace_s=args.grace, merge_s=args.merge)
        res.update(
            detector=label, points=points, points_per_cpu_second=points / cpu if cpu else None
        )
        rows.append(res)
        print(summary(label, res), flush=True)
    write_json(
        args.json,
        {
            "args": vars(args),
            "series": len(series),
            "faults": [f.to_dict() for f in faults],
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
