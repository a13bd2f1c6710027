"""The NAB corpus: 58 labelled streams, their anomaly windows and the scoring profiles."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from atoll.core.errors import InvalidInput, NotFound

#: NAB's probationary period: ``min(floor(0.15 * n), 0.15 * 5000)`` records.
PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class Profile:
    """One NAB cost matrix (``config/profiles.json``)."""

    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class Stream:
    """One corpus file with its labels resolved to record indices."""

    relpath: str  # "<category>/<name>.csv", NAB's key
    timestamps: np.ndarray  # datetime64[us]
    values: np.ndarray  # float64
    windows: np.ndarray  # (k, 2) int64, inclusive [first, last] record index

    @property
    def category(self) -> str:
        return self.relpath.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.relpath.split("/", 1)[1].removesuffix(".csv")

    @property
    def probation(self) -> int:
        return probationary_length(len(self.values))

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Corpus:
    root: Path
    streams: dict[str, Stream]  # relpath -> stream, in sorted order
    profiles: dict[str, Profile]

    @cached_property
    def total_points(self) -> int:
        return sum(len(s) for s in self.streams.values())

    def __len__(self) -> int:
        return len(self.streams)


def probationary_length(n: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


def find_nab_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Locate the NAB data: ``explicit``, ``$ATOLL_NAB_DIR``, or ``<repo>/../shared/datasets/nab``
    (or ``shared/datasets/nab`` beside any directory above the repo)."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("ATOLL_NAB_DIR"):
        candidates.append(Path(os.environ["ATOLL_NAB_DIR"]))
    else:
        # <repo>/../shared/datasets/nab, also for a clone nested deeper under the same root.
        src_dir = Path(__file__).resolve().parents[3]  # <repo>/src
        candidates += [p / "shared" / "datasets" / "nab" for p in src_dir.parents]
    for c in candidates:
        if (c / "labels" / "combined_windows.json").is_file() and (c / "data").is_dir():
            return c
    raise NotFound(
        f"NAB corpus not found (looked in {', '.join(str(c) for c in candidates)})",
        hint="get the corpus with `git clone https://github.com/numenta/NAB` (its data/, labels/ "
        "and config/ are what is read), then pass --data NAB or set ATOLL_NAB_DIR=NAB; "
        "../shared/datasets/nab beside the repository is found without either",
    )


def read_series_csv(path: Path, value_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a NAB-style ``timestamp,<value_column>`` file."""
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or "timestamp" not in header or value_column not in header:
            raise InvalidInput(
                f"{path}: expected columns timestamp,{value_column}, got {header}",
                hint="NAB files have a header row 'timestamp,value' (data)"
                " or 'timestamp,anomaly_score' (results)",
            )
        ti, vi = header.index("timestamp"), header.index(value_column)
        ts, vs = [], []
        for row in rows:
            if row:
                ts.append(row[ti])
                vs.append(row[vi])
    return np.array(ts, dtype="datetime64[us]"), np.array(vs, dtype=np.float64)


def _window_indices(ts: np.ndarray, windows: list[list[str]]) -> np.ndarray:
    out = np.empty((len(windows), 2), dtype=np.int64)
    for k, (start, end) in enumerate(windows):
        s, e = (
            np.datetime64(start.replace(" ", "T"), "us"),
            np.datetime64(end.replace(" ", "T"), "us"),
        )
        # NAB compares each record's timestamp with the inclusive window [start, end].
        out[k] = np.searchsorted(ts, s, "left"), np.searchsorted(ts, e, "right") - 1
    return out


def load_profiles(root: Path) -> dict[str, Profile]:
    raw = json.loads((root / "config" / "profiles.json").read_text())
    return {
        name: Profile(
            name,
            float(p["CostMatrix"]["tpWeight"]),
            float(p["CostMatrix"]["fpWeight"]),
            float(p["CostMatrix"]["fnWeight"]),
        )
        for name, p in raw.items()
    }


def load_corpus(nab_dir: str | os.PathLike | None = None) -> Corpus:
    """Load all streams listed in ``labels/combined_windows.json``."""
    root = find_nab_dir(nab_dir)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    streams = {}
    for relpath in sorted(windows):
        ts, values = read_series_csv(root / "data" / relpath, "value")
        streams[relpath] = Stream(relpath, ts, values, _window_indices(ts, windows[relpath]))
    return Corpus(root, streams, load_profiles(root))
