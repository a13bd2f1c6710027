"""Score detections (alarms, anomalies) against the injected faults' ground truth.

A detection counts as a hit when it names the faulty device and falls inside the fault window
extended by ``grace_s`` (a warm case stays warm for a while after the door closes). Other
detections are false alarms. Recall is over faults (at least one hit each); precision is over
detections; time to detect is from a fault's start to its first hit.

>>> gt = [{"device": "a", "kind": "door_left_open", "metrics": ["door"],
...        "start": 100.0, "end": 200.0}]
>>> evaluate(gt, [{"device": "a", "ts": 130.0}, {"device": "b", "ts": 140.0}])["precision"]
0.5
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from atoll.core.errors import InvalidInput
from atoll.sim.faults import Fault, read_ground_truth, to_seconds

_TIME_KEYS = ("ts", "time", "raised_at", "start", "timestamp")


def _detection(d: Any) -> tuple[str, str | None, float]:
    """``(device, metric, seconds)`` from a dict, an object with attributes, or a tuple."""
    try:
        if isinstance(d, (tuple, list)):
            if len(d) == 2:
                return str(d[0]), None, to_seconds(d[1])
            return str(d[0]), (None if d[1] is None else str(d[1])), to_seconds(d[2])
        get = d.get if isinstance(d, dict) else (lambda k, default=None: getattr(d, k, default))
        ts = next((get(k) for k in _TIME_KEYS if get(k) is not None), None)
        metric = get("metric")
        return str(get("device")), (None if metric is None else str(metric)), to_seconds(ts)
    except (TypeError, ValueError, IndexError) as e:
        raise InvalidInput(
            f"cannot read detection {d!r}: {e}",
            hint="give device and ts (ISO-8601 or epoch s/ms/µs)",
        ) from e


def evaluate(
    ground_truth: Any,
    detections: Iterable[Any],
    *,
    grace_s: float = 300.0,
    merge_s: float = 0.0,
    match_metric: bool = False,
) -> dict[str, Any]:
    """Precision, recall and median time to detect (seconds) of ``detections``.

    ``ground_truth``: a ground-truth file path, its JSON, or a list of :class:`Fault` / records.
    ``detections``: dicts or objects with ``device``, a time (``ts``, ``time``, ``raised_at``…)
    and optionally ``metric``; or ``(device, ts)`` / ``(device, metric, ts)`` tuples.
    ``merge_s``: detections of one (device, metric) closer than this to the last counted one
    are one detection (a detector that fires on every reading of one episode).
    ``match_metric``: also require the detection's metric, when given, to be a faulty metric.
    Undefined ratios (no detections, no faults) are ``None``.
    """
    faults: list[Fault] = read_ground_truth(ground_truth)
    by_device: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(faults):
        by_device[f.device].append(i)

    dets = sorted((_detection(d) for d in detections), key=lambda x: x[2])
    last: dict[tuple[str, str | None], float] = {}
    tp = fp = 0
    first: dict[int, float] = {}
    for device, metric, t in dets:
        key = (device, metric)
        if merge_s > 0 and key in last and t - last[key] < merge_s:
            continue
        last[key] = t
        hit = False
        for i in by_device.get(device, ()):
            f = faults[i]
            if not f.start <= t <= f.end + grace_s:
                continue
            if match_metric and metric is not None and f.metrics and metric not in f.metrics:
                continue
            hit = True
            first.setdefault(i, t)
        if hit:
            tp += 1
        else:
            fp += 1

    ttd = [first[i] - faults[i].start for i in first]
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, f in enumerate(faults):
        kinds[f.kind][0] += 1
        kinds[f.kind][1] += i in first
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": len(first) / len(faults) if faults else None,
        "median_ttd": statistics.median(ttd) if ttd else None,
        "faults": len(faults),
        "detected": len(first),
        "detections": tp + fp,
        "true_positives": tp,
        "false_positives": fp,
        "by_kind": {k: {"faults": n, "detected": d} for k, (n, d) in sorted(kinds.items())},
    }
