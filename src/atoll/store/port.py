"""The ``SeriesStore`` port. Every adapter passes ``atoll.testing.store.check_store``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from atoll.core.points import PointBatch, SeriesKey

AGGREGATES = ("min", "max", "avg", "count", "first", "last")


@dataclass(frozen=True, slots=True)
class Series:
    """A raw or chart query answer: parallel arrays, sorted by time."""

    ts: np.ndarray  # int64 µs
    value: np.ndarray  # float64


@dataclass(frozen=True, slots=True)
class Buckets:
    """Downsampled answer: one row per non-empty bucket (``start`` is the bucket's start)."""

    start: np.ndarray  # int64 µs
    columns: dict[str, np.ndarray]  # aggregate name -> values


@dataclass(frozen=True, slots=True)
class StampSlot:
    """The microseconds a writer may give readings it stamps itself: those ``≡ slot (mod of)``.

    A point's identity is (series, timestamp), so two processes writing one store must never
    stamp a reading of one series with the same microsecond. Each takes its own residue:

    >>> s = StampSlot(3, 100)
    >>> s.align(1_700_000_000_000_001), s.align(1_700_000_000_000_003)
    (1700000000000003, 1700000000000003)
    """

    slot: int = 0
    of: int = 1

    def align(self, t: int) -> int:
        """The first microsecond at or after ``t`` that belongs to this slot."""
        return t + (self.slot - t) % self.of


#: A store with one writer process (in memory, DuckDB's file): every microsecond is its own.
ONE_WRITER = StampSlot(0, 1)


@dataclass(frozen=True, slots=True)
class ProjectUsage:
    """What one project holds in the store (``UsageReader.usage``)."""

    #: Points stored (after retention).
    points: int
    #: Points stamped at or after the ``since`` asked for (counted per whole minute: an adapter
    #: may include the rest of the minute holding ``since``); over a recent window, the ingest
    #: rate of devices sending live.
    recent: int
    #: The newest point's timestamp (µs), ``None`` when empty.
    last_ts: int | None


#: What one stored point costs at least (8-byte timestamp and value), for a size estimate.
POINT_BYTES = 16


@runtime_checkable
class UsageReader(Protocol):
    """A store that can say how much each project holds, for every project at once."""

    def usage(self, since: int) -> dict[str, ProjectUsage]:
        """Per project with data: points stored, points since ``since``, newest timestamp.
        One pass over the store's catalog, never a query per project."""


@runtime_checkable
class SeriesStore(Protocol):
    def append(self, batch: PointBatch) -> None:
        """Persist the batch. When this returns, the points survive a crash (kill -9)."""

    def query_raw(self, key: SeriesKey, start: int, end: int, limit: int | None = None) -> Series:
        """Points with ``start <= ts < end``, in time order."""

    def query_buckets(
        self, key: SeriesKey, start: int, end: int, bucket: int, aggs: tuple[str, ...] = AGGREGATES
    ) -> Buckets:
        """Aggregates per ``bucket`` µs, buckets aligned to the epoch."""

    def query_chart(self, key: SeriesKey, start: int, end: int, width: int) -> Series:
        """At most about ``2 * width`` points that draw like the raw data (min/max per pixel)."""

    def latest(self, project: str, device: str | None = None) -> dict[SeriesKey, tuple[int, float]]:
        """Last ``(ts, value)`` of every series of a project, or of one device."""

    def series(self, project: str, device: str | None = None) -> list[SeriesKey]:
        """Series that hold data."""

    def delete_before(self, project: str, ts: int) -> int:
        """Retention: drop a project's points older than ``ts``; returns how many went."""

    def stamp_slot(self) -> StampSlot:
        """This writer's share of the microseconds for server-stamped readings. A store that
        several processes write hands each its own slot while it is open; a single-writer
        store returns ``ONE_WRITER``. Cheap after the first call (ingest asks per message)."""

    def close(self) -> None: ...


@runtime_checkable
class RawCounts(Protocol):
    """A store that counts the points of many series at once (a capability, not every store's).

    The detection service asks it whether the series it meets for the first time have history
    enough to fit on: a new fleet's 40,000 series were 40,000 queries, each of which scans
    every recent point of the fleet."""

    def count_raw(
        self, keys: Sequence[SeriesKey], start: Sequence[int], end: Sequence[int]
    ) -> list[int]:
        """How many points ``keys[i]`` holds with ``start[i] <= ts < end[i]`` (0 for a series
        the store does not know), each series counted in one pass for all."""
