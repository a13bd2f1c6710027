"""Multivariate condition monitoring on a synthetic pump rig: development data for ``atoll
detect --warmup-rows`` with several sensors (#10).

    .venv/bin/python bench/detect_pump_rig.py --json bench/results/detect_pump_rig.json

Each file is a rig of 8 sensors at 1 Hz (two vibration RMS, current, pressure, two temperatures,
voltage, flow) tied to one slowly varying load, 1,000-1,300 rows. The first 400 rows are known
normal (``--warmup-rows 400``); then one fault lasting a third of the file, of four kinds in turn:
partial valve closure (flow -4 %, pressure and current move with it), rotor imbalance (both
vibrations up), cavitation (flow and pressure noise up) and a broken relation (current up, voltage
down, load unchanged). Faults are 1-3 noise standard deviations: not visible on most single
readings. The score is the point F1 of ``is_anomaly`` over the rows after the warm-up, pooled over
the files, as multivariate industrial benchmarks report it.

This is development data: the rig was written to resemble a public pump test bench before any
detector was run on it, and the defaults it was used to choose (``atoll.detect.pca``) are
recorded in docs/DETECTION.md. It is not evidence of how Atoll does on the real bench.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime

import numpy as np
from rich.progress import track

from atoll.detect.history import Table, detect_table

KINDS = ("valve", "imbalance", "cavitation", "relation")


def rig(seed: int, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """One file: (rows × 8 sensors, fault label per row)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1000, 1300))
    t = np.arange(n)
    load = (
        1
        + 0.05 * np.sin(2 * np.pi * t / rng.uniform(200, 600))
        + np.cumsum(rng.normal(0, 0.002, n))
    )
    flow = 30 * load + rng.normal(0, 0.6, n)
    pressure = 2.0 - 0.02 * (flow - 30) + rng.normal(0, 0.02, n)
    current = 1.5 * load + 0.3 * pressure + rng.normal(0, 0.03, n)
    voltage = 230 + rng.normal(0, 0.5, n) - 2 * (current - 2.1)
    temp = 60 + np.convolve(current - 2.1, np.ones(60) / 60, "same") * 20 + rng.normal(0, 0.1, n)
    thermo = temp - 5 + rng.normal(0, 0.15, n)
    acc1 = 0.2 + 0.02 * load + np.abs(rng.normal(0, 0.01, n))
    acc2 = 0.25 + 0.02 * load + np.abs(rng.normal(0, 0.012, n))
    x = np.column_stack([acc1, acc2, current, pressure, temp, thermo, voltage, flow])
    label = np.zeros(n, dtype=bool)
    start = int(rng.integers(450, n - n // 3 - 20))
    end = min(n, start + n // 3)
    label[start:end] = True
    f = slice(start, end)
    if kind == 0:
        x[f, 7] -= 1.2
        x[f, 3] += 0.03
        x[f, 2] -= 0.03
    elif kind == 1:
        x[f, 0] += 0.012
        x[f, 1] += 0.015
    elif kind == 2:
        x[f, 7] += rng.normal(0, 1.2, end - start)
        x[f, 3] += rng.normal(0, 0.04, end - start)
    else:
        x[f, 2] += 0.06
        x[f, 6] -= 0.12
    return x, label


def run(detector: str, files: int, warmup: int) -> dict:
    tp = fp = fn = 0
    per_kind: dict[str, list[float]] = {k: [] for k in KINDS}
    for i in track(range(files), description=f"{detector}: files"):
        x, label = rig(i, i % len(KINDS))
        n = len(x)
        table = Table(
            [str(j) for j in range(n)],
            np.arange(n, dtype=np.int64) * 1_000_000,
            [f"s{j}" for j in range(x.shape[1])],
            x,
            ",",
            [],
        )
        flags, truth = detect_table(table, detector, warmup).flags[warmup:], label[warmup:]
        a, b, c = (
            int((flags & truth).sum()),
            int((flags & ~truth).sum()),
            int((~flags & truth).sum()),
        )
        tp, fp, fn = tp + a, fp + b, fn + c
        per_kind[KINDS[i % len(KINDS)]].append(2 * a / max(2 * a + b + c, 1))
    return {
        "detector": detector,
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "f1_by_kind": {k: float(np.mean(v)) for k, v in per_kind.items() if v},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", action="append", help="detector names (default: default)")
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--warmup-rows", type=int, default=400)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    results = [run(d, args.files, args.warmup_rows) for d in args.detector or ["default"]]
    doc = {
        "benchmark": "detect_pump_rig",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "files": args.files,
        "warmup_rows": args.warmup_rows,
        "results": results,
    }
    for r in results:
        print(
            f"{r['detector']}: F1 {r['f1']:.3f} (P {r['precision']:.3f}, R {r['recall']:.3f}) "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["f1_by_kind"].items())
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
