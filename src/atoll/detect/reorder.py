"""A reorder buffer: late and reordered readings of a series within an allowed lateness are put
back in time order before they are judged, instead of being dropped as "older than the last one".

Each series' readings wait until either

* the series has seen a reading ``lateness`` seconds newer (event time: what is that much older
  than the newest reading seen is due), or
* they have waited ``lateness`` seconds, they and what is older (processing time: a series that
  stops reporting does not keep its last readings forever),

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
    newest: int
    #: ``(timestamps, values, when added)`` per message's readings.
    chunks: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)


class ReorderBuffer:
    def __init__(self, lateness: float) -> None:
        if lateness < 0:
            raise ValueError("lateness must be >= 0")
        self.lateness = float(lateness)
        self._lateness_us = int(lateness * 1_000_000)
        self._held: dict[SeriesKey, _Held] = {}

    def __len__(self) -> int:
        """Readings held."""
        return sum(len(c[0]) for h in self._held.values() for c in h.chunks)

    def add(self, units: list[Unit], now: float) -> None:
        """Hold these readings (``now``: ``time.monotonic()``)."""
        for key, choice, ts, values in units:
            if not len(ts):
                continue
            h = self._held.get(key)
            if h is None:
                h = self._held[key] = _Held(choice, int(ts.max()))
            elif h.choice is None:
                h.choice = choice
            h.chunks.append((ts, values, now))
            h.newest = max(h.newest, int(ts.max()))

    def due(self, now: float, everything: bool = False, waited: bool = True) -> list[Unit]:
        """The readings whose wait is over, per series in time order (oldest first): those at
        least ``lateness`` older than the series' newest, and (with ``waited``) those of any
        message held ``lateness`` seconds, with everything older than them. Without ``waited``
        only what newer readings made due (event time: the same readings whatever the clock,
        which is what a replay needs)."""
        out: list[Unit] = []
        for key in list(self._held):
            h = self._held[key]
            cut = h.newest - self._lateness_us
            if everything:
                cut = h.newest
            elif waited:
                for ts, _, added in h.chunks:
                    if now - added >= self.lateness:
                        cut = max(cut, int(ts.max()))
            parts_ts, parts_v, keep = [], [], []
            for ts, values, added in h.chunks:
                mask = ts <= cut
                if mask.all():
                    parts_ts.append(ts)
                    parts_v.append(values)
                    continue
                if mask.any():
                    parts_ts.append(ts[mask])
                    parts_v.append(values[mask])
                    ts, values = ts[~mask], values[~mask]
                keep.append((ts, values, added))
            if not parts_ts:
                continue
            ts = np.concatenate(parts_ts) if len(parts_ts) > 1 else parts_ts[0]
            values = np.concatenate(parts_v) if len(parts_v) > 1 else parts_v[0]
            if len(ts) > 1 and (np.diff(ts) < 0).any():
                order = np.argsort(ts, kind="stable")
                ts, values = ts[order], values[order]
            out.append((key, h.choice, ts, values))
            if keep:
                h.chunks = keep
            else:
                del self._held[key]
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
            ts = np.concatenate([c[0] for c in h.chunks])
            values = np.concatenate([c[1] for c in h.chunks])
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
