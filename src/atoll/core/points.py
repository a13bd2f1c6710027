"""Columnar telemetry batches: the unit that moves from ingest to store and bus.

Timestamps are integer microseconds since the Unix epoch (UTC) everywhere inside Atoll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike


class SeriesKey(NamedTuple):
    """Identity of one time series. Device ids are globally unique."""

    project: str
    device: str
    metric: str


@dataclass(frozen=True, slots=True)
class PointBatch:
    """Points of one or more series, stored column-wise.

    ``key_index[i]`` says which of ``keys`` point ``i`` belongs to.
    """

    keys: tuple[SeriesKey, ...]
    key_index: np.ndarray  # int32
    ts: np.ndarray  # int64, µs since epoch
    value: np.ndarray  # float64

    def __post_init__(self) -> None:
        n = len(self.ts)
        if len(self.value) != n or len(self.key_index) != n:
            raise ValueError("PointBatch columns must have equal length")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def of_series(cls, key: SeriesKey, ts: ArrayLike, value: ArrayLike) -> PointBatch:
        ts = np.asarray(ts, dtype=np.int64)
        return cls(
            (key,), np.zeros(len(ts), dtype=np.int32), ts, np.asarray(value, dtype=np.float64)
        )

    @classmethod
    def concat(cls, batches: list[PointBatch]) -> PointBatch:
        """Merge batches, de-duplicating their keys."""
        if len(batches) == 1:
            return batches[0]
        keys: dict[SeriesKey, int] = {}
        idx_parts = []
        for b in batches:
            lut = np.array([keys.setdefault(k, len(keys)) for k in b.keys], dtype=np.int32)
            idx_parts.append(lut[b.key_index] if len(b) else np.empty(0, np.int32))
        return cls(
            tuple(keys),
            np.concatenate(idx_parts) if idx_parts else np.empty(0, np.int32),
            np.concatenate([b.ts for b in batches]) if batches else np.empty(0, np.int64),
            np.concatenate([b.value for b in batches]) if batches else np.empty(0, np.float64),
        )

    def split(self) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
        """Per-series (ts, value) arrays, each sorted by time."""
        out = {}
        for i, key in enumerate(self.keys):
            m = self.key_index == i
            ts, v = self.ts[m], self.value[m]
            order = np.argsort(ts, kind="stable")
            out[key] = (ts[order], v[order])
        return out
