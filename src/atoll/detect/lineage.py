"""The detection service's model log: the last ``keep`` model records of every series, in memory
and in the service's state snapshot (``atoll.core.lineage`` says what a record holds).

>>> from atoll.core.lineage import ModelRecord
>>> log = MemoryModelLog(keep=2)
>>> key = SeriesKey("p", "d", "temp")
>>> for v in (1, 2, 3):
...     log.add(ModelRecord(f"p/d/temp@{v}", "p", "d", "temp", v, "fitted", v, "scheduled"))
>>> [r.version for r in log.history(key)], log.current(key).version, log.next_version(key)
([2, 3], 3, 4)
>>> MemoryModelLog.load(log.dump()).history(key) == log.history(key)
True
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from atoll.core.lineage import ModelRecord
from atoll.core.points import SeriesKey


class MemoryModelLog:
    """A ``ModelLog`` that keeps the last ``keep`` records per series."""

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self._records: dict[SeriesKey, deque[ModelRecord]] = {}

    def add(self, record: ModelRecord) -> None:
        kept = self._records.get(record.key)
        if kept is None:
            kept = self._records[record.key] = deque(maxlen=self.keep)
        kept.append(record)

    def current(self, key: SeriesKey) -> ModelRecord | None:
        kept = self._records.get(key)
        return kept[-1] if kept else None

    def history(self, key: SeriesKey) -> list[ModelRecord]:
        return list(self._records.get(key, ()))

    def next_version(self, key: SeriesKey) -> int:
        """The version the series' next record gets (versions only ever increase)."""
        last = self.current(key)
        return 1 if last is None else last.version + 1

    def dump(self) -> list[ModelRecord]:
        """Every record kept, for the snapshot (msgpack encodes them as maps)."""
        return [r for kept in self._records.values() for r in kept]

    @classmethod
    def load(cls, raw: list[Any], keep: int = 16) -> MemoryModelLog:
        """From ``dump()``'s records as decoded from a snapshot (maps)."""
        log = cls(keep)
        for item in raw:
            log.add(item if isinstance(item, ModelRecord) else msgspec.convert(item, ModelRecord))
        return log
