"""A reorder buffer: late and reordered readings of a series within an allowed lateness are put
back in time order before they are judged, instead of being dropped as "older than the last one".

Each series' readings wait until either

* the series has seen a reading ``lateness`` seconds newer (event time: what is that much older
  than the newest reading seen is due), or
* they have waited ``lateness`` seconds (processing time: a series that stops reporting does not
  keep its last readings forever),

and then leave sorted by timestamp. A reading arriving after newer ones have left is still late
(the detection service skips it and counts it in ``skipped_late``). ``lateness`` 0: no buffer.

The buffer is part of a partition's state: ``rows``/``restore`` put it into a checkpoint, so
readings acknowledged while buffered survive a hand-over or a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atoll.core.points import SeriesKey

#: ``(key, choice, timestamps, values)``, as the detection service's units.
Unit = tuple[SeriesKey, Any, np.ndarray, np.ndarray]


@dataclass
class _Held:
    choice: Any
    since: float
    newest: int
    ts: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)


class ReorderBuffer:
    def __init__(self, lateness: float) -> None:
        if lateness < 0:
            raise ValueError("lateness must be >= 0")
        self.lateness = float(lateness)
        self._lateness_us = int(lateness * 1_000_000)
        self._held: dict[SeriesKey, _Held] = {}

    def __len__(self) -> int:
        """Readings held."""
        return sum(sum(len(t) for t in h.ts) for h in self._held.values())

    def add(self, units: list[Unit], now: float) -> None:
        """Hold these readings (``now``: ``time.monotonic()``)."""
        for key, choice, ts, values in units:
            if not len(ts):
                continue
            h = self._held.get(key)
            if h is None:
                h = self._held[key] = _Held(choice, now, int(ts.max()))
            elif h.choice is None:
                h.choice = choice
            h.ts.append(ts)
            h.values.append(values)
            h.newest = max(h.newest, int(ts.max()))

    def due(self, now: float, everything: bool = False, waited: bool = True) -> list[Unit]:
        """The readings whose wait is over, per series in time order (oldest first). Without
        ``waited`` only what newer readings made due (event time: the same readings whatever
        the clock, which is what a replay needs)."""
        out: list[Unit] = []
        for key in list(self._held):
            h = self._held[key]
            ts = np.concatenate(h.ts) if len(h.ts) > 1 else h.ts[0]
            values = np.concatenate(h.values) if len(h.values) > 1 else h.values[0]
            if len(h.ts) > 1 or (len(ts) > 1 and (np.diff(ts) < 0).any()):
                order = np.argsort(ts, kind="stable")
                ts, values = ts[order], values[order]
            if everything or (waited and now - h.since >= self.lateness):
                n = len(ts)
            else:
                n = int(np.searchsorted(ts, h.newest - self._lateness_us, side="right"))
            if n == 0:
                h.ts, h.values = [ts], [values]
                continue
            out.append((key, h.choice, ts[:n], values[:n]))
            if n == len(ts):
                del self._held[key]
            else:
                h.ts, h.values, h.since = [ts[n:]], [values[n:]], now
        return out

    def forget(self, keep: Any = None) -> None:
        """Drop the held readings (of series for which ``keep(key)`` is false, or all)."""
        if keep is None:
            self._held.clear()
        else:
            for key in [k for k in self._held if not keep(k)]:
                del self._held[key]

    def rows(self) -> list[list[Any]]:
        """The held readings as plain lists (for a checkpoint); ``choice`` is kept as given."""
        out = []
        for key, h in self._held.items():
            ts = np.concatenate(h.ts)
            values = np.concatenate(h.values)
            out.append(
                [key.project, key.device, key.metric, h.choice, ts.tolist(), values.tolist()]
            )
        return out

    def restore(self, rows: list[list[Any]], now: float) -> None:
        for project, device, metric, choice, ts, values in rows:
            self.add(
                [
                    (
                        SeriesKey(project, device, metric),
                        choice,
                        np.asarray(ts, dtype=np.int64),
                        np.asarray(values, dtype=np.float64),
                    )
                ],
                now,
            )
