"""A small synthetic fleet that wears out: motors whose vibration and temperature rise as they
age, run to failure (recorded as ``failure`` maintenance) and started again.

``history`` writes the back-filled readings straight into the platform's store (as a migration
of old data would) and returns the failures as a maintenance CSV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atoll.core.points import PointBatch, SeriesKey

HOUR = 3_600_000_000
STEP = HOUR // 3  # three readings an hour
METRICS = [
    {"name": "vibration", "unit": "mm/s"},
    {"name": "temperature", "unit": "°C"},
]


@dataclass
class Motor:
    device: str
    #: Run lengths (hours) of the runs that ended in a failure.
    runs: list[int]
    #: Hours of the run under way (after the last failure) and how long it will last.
    current: int
    current_life: int


def readings(rng: np.random.Generator, life: int, hours: int, offset: float) -> np.ndarray:
    """``hours`` hours of a run that fails after ``life`` hours: (n, 2) vibration, temperature."""
    n = hours * 3
    age = np.arange(n) / (life * 3)
    vib = 2.0 + offset + 3.0 * age**2 + rng.normal(0, 0.1, n)
    temp = 50.0 + 4 * offset + 15.0 * age**3 + rng.normal(0, 0.4, n)
    return np.column_stack([vib, temp])


def fleet(n: int = 6, seed: int = 0) -> list[Motor]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        runs = [int(x) for x in rng.integers(60, 120, size=2)]
        life = int(rng.integers(60, 120))
        out.append(Motor(f"m{i}", runs, 0, life))
    return out


def history(store, project: str, motors: list[Motor], end: int, seed: int = 0) -> str:
    """Write every motor's runs, ending (with the run under way) just before ``end`` (µs, an
    hour boundary); the failures as CSV ``device,at,kind``."""
    rng = np.random.default_rng(seed + 1)
    lines = ["device,at,kind"]
    for k, m in enumerate(motors):
        offset = 0.3 * (k % 3)
        total = sum(m.runs) + m.current
        t0 = end - total * HOUR
        ts_parts, values = [], []
        start = t0
        for life in m.runs:
            v = readings(rng, life, life, offset)
            ts_parts.append(start + np.arange(len(v)) * STEP)
            values.append(v)
            failed_at = start + life * HOUR - STEP // 2
            lines.append(f"{m.device},{failed_at // 1000},failure")
            start += life * HOUR
        if m.current:
            v = readings(rng, m.current_life, m.current, offset)
            ts_parts.append(start + np.arange(len(v)) * STEP)
            values.append(v)
        ts = np.concatenate(ts_parts).astype(np.int64)
        vals = np.vstack(values)
        keys = (
            SeriesKey(project, m.device, "vibration"),
            SeriesKey(project, m.device, "temperature"),
        )
        store.append(
            PointBatch(
                keys,
                np.r_[np.zeros(len(ts), np.int32), np.ones(len(ts), np.int32)],
                np.r_[ts, ts],
                np.r_[vals[:, 0], vals[:, 1]],
            )
        )
    return "\n".join(lines) + "\n"
