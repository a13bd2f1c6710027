"""NASA's C-MAPSS run-to-failure format, read into Atoll's own ``Trajectories``.

One row per engine and operating cycle, whitespace-separated, no header, 26 columns: unit,
cycle, three operational settings, 21 sensors (Saxena et al., PHM08). A training file runs every
engine to failure; a test file stops each engine some time before it.

>>> import io
>>> rows = "1 1 0.1 0.0 100 " + " ".join(["5"] * 21) + "\\n"
>>> rows += "1 2 0.1 0.0 100 " + " ".join(["6"] * 21) + "\\n"
>>> t = read_cmapss(io.StringIO(rows))
>>> t.units.tolist(), t.cycles.tolist(), t.sensors.shape, t.rul_to_failure().tolist()
([1, 1], [1, 2], (2, 21), [1, 0])
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from atoll.core.errors import InvalidInput

COLUMNS = 26
SETTINGS = 3
SENSORS = 21
HINT = (
    "C-MAPSS files have 26 whitespace-separated numbers per row and no header: unit, cycle, "
    "3 operational settings, 21 sensors (e.g. NASA's train_FD001.txt)"
)


@dataclass(frozen=True, slots=True)
class Trajectories:
    """Engines' histories, rows sorted by unit then cycle: ``units``/``cycles`` (int),
    ``settings`` (n x 3) and ``sensors`` (n x 21), float64."""

    units: np.ndarray
    cycles: np.ndarray
    settings: np.ndarray
    sensors: np.ndarray

    def __len__(self) -> int:
        return len(self.units)

    def unit_ids(self) -> np.ndarray:
        return np.unique(self.units)

    def spans(self) -> list[tuple[int, int, int]]:
        """``(unit, first row, end row)`` for each unit, in order."""
        starts = np.flatnonzero(np.r_[True, self.units[1:] != self.units[:-1]])
        ends = np.r_[starts[1:], len(self.units)]
        return [(int(self.units[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]

    def rul_to_failure(self) -> np.ndarray:
        """Cycles left until each unit's last row: the true RUL of a run-to-failure file."""
        out = np.empty(len(self.units), dtype=np.int64)
        for _, s, e in self.spans():
            out[s:e] = self.cycles[e - 1] - self.cycles[s:e]
        return out

    def take(self, rows: np.ndarray) -> Trajectories:
        """The rows ``rows`` (a boolean mask or indices), still sorted."""
        return Trajectories(
            self.units[rows], self.cycles[rows], self.settings[rows], self.sensors[rows]
        )

    def of_units(self, units: np.ndarray) -> Trajectories:
        return self.take(np.isin(self.units, units))


def read_cmapss(source: str | Path | TextIO) -> Trajectories:
    """Read a C-MAPSS file (a path or an open text stream); ``InvalidInput`` says which line is
    wrong and what the format is."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file", hint=HINT)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: cannot read it as text ({exc})", hint=HINT) from None
        name = str(path)
    else:
        text, name = source.read(), "input"
    rows = []
    for number, line in enumerate(io.StringIO(text), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != COLUMNS:
            raise InvalidInput(
                f"{name}, line {number}: {len(fields)} columns, expected {COLUMNS}", hint=HINT
            )
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise InvalidInput(f"{name}, line {number}: not all numbers", hint=HINT) from None
        rows.append(values)
    if not rows:
        raise InvalidInput(f"{name}: no rows", hint=HINT)
    data = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(data).all():
        raise InvalidInput(f"{name}: NaN or infinite values", hint=HINT)
    units, cycles = data[:, 0], data[:, 1]
    if (units != np.round(units)).any() or (cycles != np.round(cycles)).any():
        raise InvalidInput(f"{name}: unit and cycle (columns 1-2) must be integers", hint=HINT)
    order = np.lexsort((cycles, units))
    data = data[order]
    units_i, cycles_i = data[:, 0].astype(np.int64), data[:, 1].astype(np.int64)
    same = units_i[1:] == units_i[:-1]
    if (same & (cycles_i[1:] == cycles_i[:-1])).any():
        raise InvalidInput(f"{name}: a unit has the same cycle twice", hint=HINT)
    return Trajectories(
        units_i,
        cycles_i,
        np.ascontiguousarray(data[:, 2 : 2 + SETTINGS]),
        np.ascontiguousarray(data[:, 2 + SETTINGS :]),
    )
