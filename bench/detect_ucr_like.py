"""One anomaly per series after a known-normal stretch, UCR-archive style: development data for
``atoll detect --warmup-rows`` on single series (#10).

    .venv/bin/python bench/detect_ucr_like.py --json bench/results/detect_ucr_like.json

51 series: 40 synthetic periodic signals (ECG-like beats with rate variability, respiration,
gait harmonics, daily/weekly demand, a machine cycle; periods 20-400 readings, 6,000-16,000
readings) and, when ``../shared/datasets/smap_msl`` is there, 11 SMAP/MSL training parts (real
telemetry). The first third of each is the history. One anomaly of half to one period (20-300
readings) is put in the rest, of seven kinds in turn: amplitude change, local time warp, noise,
smoothing, a flat stretch, a reversed stretch, a phase jump. A series counts as found when the
highest score after the history lies within 100 readings of the anomaly (the UCR archive's rule).

``--matrix-profile`` adds a matrix-profile AB-join (test windows against the history, window =
the history's period by autocorrelation), the published baseline for this kind of archive; it
needs ``stumpy``, which Atoll does not depend on (``pip install stumpy`` into a scratch target).

Development data: nothing in Atoll's defaults was chosen on it (docs/DETECTION.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.progress import track

from atoll.detect.history import Table, detect_table

KINDS = ("amplitude", "warp", "noise", "smooth", "flat", "reversed", "phase")
SMAP_MSL = Path(__file__).resolve().parents[1].parent / "shared/datasets/smap_msl"


def _synthetic(rng: np.random.Generator, i: int) -> tuple[np.ndarray, float]:
    kind = i % 5
    n = int(rng.integers(6000, 16000))
    t = np.arange(n)
    p = float(rng.uniform(20, 400))
    if kind == 0:  # ECG-like beats with rate variability
        x = np.zeros(n)
        pos = 0.0
        while pos < n:
            per = p * rng.uniform(0.95, 1.05)
            for c, w, a in (
                (0.2, 0.04, 0.15),
                (0.35, 0.012, 1.0),
                (0.39, 0.015, -0.25),
                (0.6, 0.06, 0.3),
            ):
                x += a * np.exp(-0.5 * ((t - (pos + c * per)) / (w * per)) ** 2)
            pos += per
        x += rng.normal(0, 0.02, n)
    elif kind == 1:  # respiration
        x = (1 + 0.2 * np.sin(2 * np.pi * t / (p * 17))) * np.sin(2 * np.pi * t / p)
        x += rng.normal(0, 0.05, n)
    elif kind == 2:  # gait
        ph = 2 * np.pi * t / p
        x = np.sin(ph) + 0.5 * np.sin(2 * ph + 1) + 0.25 * np.sin(3 * ph + 2)
        x += rng.normal(0, 0.05, n)
    elif kind == 3:  # daily demand, quieter weekends
        ph = 2 * np.pi * t / p
        day = np.clip(np.sin(ph), 0, None) ** 2 + 0.3 * np.clip(np.sin(ph - 1), 0, None)
        x = day * np.where(((t // p) % 7) >= 5, 0.6, 1.0) + rng.normal(0, 0.03, n)
    else:  # a machine cycle
        x = ((t % p) / p) ** 1.5 + 0.1 * np.sin(2 * np.pi * t / (p / 3)) + rng.normal(0, 0.02, n)
    return x, p


def _inject(
    rng: np.random.Generator, x: np.ndarray, p: float, kind: int
) -> tuple[np.ndarray, int, int]:
    n = len(x)
    x = x.copy()
    length = int(np.clip(rng.uniform(0.5, 1.0) * p, 20, 300))
    s = int(rng.integers(n // 3 + 200, n - length - 50))
    seg = slice(s, s + length)
    if kind == 0:
        x[seg] = x[seg].mean() + (x[seg] - x[seg].mean()) * rng.choice([0.6, 1.4])
    elif kind == 1:
        x[seg] = np.interp(np.linspace(s, s + length * 0.8, length), np.arange(n), x)
    elif kind == 2:
        x[seg] += rng.normal(0, 0.15 * x.std(), length)
    elif kind == 3:
        x[seg] = np.convolve(x[s - 10 : s + length + 10], np.ones(15) / 15, "same")[
            10 : 10 + length
        ]
    elif kind == 4:
        x[seg] = x[s]
    elif kind == 5:
        x[seg] = x[seg][::-1]
    else:
        back = int(s - p * 3.5)
        x[seg] = x[back : back + length]
    return x, s, s + length


def series(data: Path | None) -> Iterator[tuple[str, np.ndarray, int, int, int]]:
    """``(name, values, history rows, anomaly start, anomaly end)``."""
    rng = np.random.default_rng(0)
    bases = [_synthetic(rng, i) for i in range(40)]
    for j, (x, p) in enumerate(bases):
        y, a, b = _inject(rng, x, p, j % 7)
        yield f"synthetic{j}_{KINDS[j % 7]}", y, len(x) // 3, a, b
    if data is None or not (data / "smap_msl_channel0.npz").is_file():
        return
    channels = np.load(data / "smap_msl_channel0.npz")
    keys = sorted(k for k in channels.keys() if k.endswith("__train"))
    for j, key in enumerate(keys[::4]):
        x = channels[key].astype(float)
        if len(x) < 2500 or np.ptp(x) == 0:
            continue
        y, a, b = _inject(rng, x + rng.normal(0, 0.001 * np.ptp(x), len(x)), 100.0, j % 7)
        yield f"{key.split('__')[0]}_{KINDS[j % 7]}", y, len(x) // 3, a, b


def _detector(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    def score(x: np.ndarray, history: int) -> np.ndarray:
        n = len(x)
        table = Table(
            [""] * n, np.arange(n, dtype=np.int64) * 1_000_000, ["v"], x[:, None], ",", []
        )
        return detect_table(table, name, history).scores

    return score


def _period(x: np.ndarray) -> int:
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[:n]
    ac /= ac[0] + 1e-12
    hi = min(1000, n // 4)
    z = int(np.argmax(ac[8:hi] < 0)) + 8
    return z + int(np.argmax(ac[z:hi])) if z < hi else 100


def _matrix_profile(x: np.ndarray, history: int) -> np.ndarray:
    import stumpy  # optional: only for this baseline

    m = int(np.clip(_period(x[:history]), 16, 400))
    mp = stumpy.stump(x[history:], m, x[:history], ignore_trivial=False)[:, 0].astype(float)
    out = np.zeros(len(x))
    out[history + m // 2 : history + m // 2 + len(mp)] = np.nan_to_num(mp)
    return out


def run(name: str, score: Callable[[np.ndarray, int], np.ndarray], data: Path | None) -> dict:
    found: dict[str, list[bool]] = {}
    cases = list(series(data))
    for label, x, history, a, b in track(cases, description=f"{name}: series"):
        i = history + int(np.argmax(score(x, history)[history:]))
        found.setdefault(label.rsplit("_", 1)[1], []).append(a - 100 <= i <= b + 100)
    hits = [h for v in found.values() for h in v]
    return {
        "detector": name,
        "series": len(hits),
        "found": int(sum(hits)),
        "accuracy": float(np.mean(hits)),
        "by_kind": {k: float(np.mean(v)) for k, v in found.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", action="append", help="detector names (default: default)")
    ap.add_argument("--matrix-profile", action="store_true", help="add the stumpy baseline")
    ap.add_argument("--data", type=Path, default=SMAP_MSL, help="SMAP/MSL directory (optional)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    data = args.data if args.data.is_dir() else None
    results = [run(d, _detector(d), data) for d in args.detector or ["default"]]
    if args.matrix_profile:
        results.append(run("matrix profile (stumpy, period window)", _matrix_profile, data))
    for r in results:
        print(f"{r['detector']}: {r['found']}/{r['series']} = {r['accuracy']:.3f}")
    if args.json:
        doc = {
            "benchmark": "detect_ucr_like",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "smap_msl": data is not None,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
