"""Synthetic run-to-failure fleets in C-MAPSS's layout, for tests that must run with no corpus.

Each unit starts with its own manufacturing offset, wears along an exponential path to a
failure threshold, and reports 21 sensors: some follow the wear (with different gains and
signs), some are noise, some are constant, as in NASA's files.

>>> rows, left = synthetic_cmapss(units=3, seed=1)
>>> rows.shape[1], sorted({int(u) for u in rows[:, 0]}), left
(26, [1, 2, 3], {1: 0, 2: 0, 3: 0})
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Sensors (0-based) that follow the wear, and their gains.
WEAR_GAINS = {1: 0.8, 2: 1.5, 3: 2.0, 6: -1.2, 8: 0.6, 10: 1.0, 11: -1.5, 12: 0.4, 19: -0.9}
CONSTANT = (0, 4, 9, 15, 17, 18)


def synthetic_cmapss(
    units: int = 30, seed: int = 0, cut: bool = False
) -> tuple[np.ndarray, dict[int, int]]:
    """Rows ``unit, cycle, 3 settings, 21 sensors`` (float64), and each unit's cycles left at its
    last row. Every unit runs to failure (0 left) unless ``cut``: then each stops 5-100 cycles
    before it."""
    rng = np.random.default_rng(seed)
    out = []
    left = {}
    for u in range(1, units + 1):
        life = int(rng.integers(90, 200))
        end = life - int(rng.integers(5, 100)) if cut else life
        left[u] = life - end
        cycles = np.arange(1, end + 1, dtype=np.float64)
        wear = np.expm1(2.0 * cycles / life) / np.expm1(2.0)  # 0 at start, 1 at failure
        offset = rng.normal(0.0, 0.3, 21)
        sensors = offset + rng.normal(0.0, 0.2, (len(cycles), 21))
        for j, g in WEAR_GAINS.items():
            sensors[:, j] += g * 6.0 * wear
        sensors[:, list(CONSTANT)] = 100.0
        settings = np.column_stack(
            [
                rng.normal(0, 0.002, len(cycles)),
                rng.normal(0, 0.0003, len(cycles)),
                np.full(len(cycles), 100.0),
            ]
        )
        out.append(np.column_stack([np.full(len(cycles), u), cycles, settings, sensors]))
    return np.vstack(out), left


def write_cmapss(rows: np.ndarray, path: Path) -> Path:
    """Write ``rows`` as NASA does: space-separated, no header."""
    np.savetxt(path, rows, fmt="%.6g", delimiter=" ")
    return path
