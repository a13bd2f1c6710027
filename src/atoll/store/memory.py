"""In-memory ``SeriesStore``: the reference adapter. Everything is computed from raw points."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from atoll.core.points import PointBatch, SeriesKey
from atoll.store import plan
from atoll.store.port import AGGREGATES, ONE_WRITER, Buckets, ProjectUsage, Series, StampSlot


class MemoryStore:
    """Keeps each series as sorted numpy arrays. Not durable; for tests and demos.

    >>> s = MemoryStore()
    >>> s.append(PointBatch.of_series(SeriesKey("p", "d", "t"), [2, 1], [20.0, 10.0]))
    >>> s.append(PointBatch.of_series(SeriesKey("p", "d", "t"), [2], [25.0]))  # replaces ts 2
    >>> s.query_raw(SeriesKey("p", "d", "t"), 0, 10).value.tolist()
    [10.0, 25.0]
    """

    def __init__(self) -> None:
        self._data: dict[SeriesKey, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def append(self, batch: PointBatch) -> None:
        plan.check_batch(batch)
        if not len(batch):
            return
        index: dict[SeriesKey, int] = {}
        lut = np.array(
            [index.setdefault(SeriesKey(*k), len(index)) for k in batch.keys], dtype=np.int32
        )
        keys = list(index)
        sid, ts, value = plan.one_per_timestamp(lut[batch.key_index], batch.ts, batch.value)
        ids, starts = plan.series_runs(sid)
        ends = np.r_[starts[1:], len(sid)]
        with self._lock:
            for i, lo, hi in zip(ids.tolist(), starts.tolist(), ends.tolist(), strict=True):
                key, new_ts, new_value = keys[i], ts[lo:hi], value[lo:hi]
                old = self._data.get(key)
                if old is None:
                    self._data[key] = (new_ts.copy(), new_value.copy())
                elif new_ts[0] > old[0][-1]:  # the usual case: all newer than what is stored
                    self._data[key] = (
                        np.concatenate([old[0], new_ts]),
                        np.concatenate([old[1], new_value]),
                    )
                else:
                    # (series, ts) is a point's identity: the new value replaces the stored one.
                    kept = ~np.isin(old[0], new_ts)
                    merged_ts = np.concatenate([old[0][kept], new_ts])
                    order = np.argsort(merged_ts, kind="stable")
                    merged_value = np.concatenate([old[1][kept], new_value])
                    self._data[key] = (merged_ts[order], merged_value[order])

    def _slice(self, key: SeriesKey, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = plan.check_range(start, end)
        found = self._data.get(SeriesKey(*key))
        if found is None or start >= end:
            return plan.EMPTY_SERIES.ts, plan.EMPTY_SERIES.value
        ts, value = found
        lo, hi = np.searchsorted(ts, [start, end], side="left")
        return ts[lo:hi], value[lo:hi]

    def count_raw(
        self, keys: Sequence[SeriesKey], start: Sequence[int], end: Sequence[int]
    ) -> list[int]:
        return [len(self._slice(k, a, z)[0]) for k, a, z in zip(keys, start, end, strict=True)]

    def query_raw(self, key: SeriesKey, start: int, end: int, limit: int | None = None) -> Series:
        ts, value = self._slice(key, start, end)
        if limit is not None:
            ts, value = ts[: max(0, limit)], value[: max(0, limit)]
        return Series(ts.copy(), value.copy())

    def query_buckets(
        self, key: SeriesKey, start: int, end: int, bucket: int, aggs: tuple[str, ...] = AGGREGATES
    ) -> Buckets:
        aggs = plan.check_aggs(aggs)
        plan.check_bucket(bucket)
        ts, value = self._slice(key, start, end)
        return plan.buckets_of_points(ts, value, bucket, aggs)

    def query_chart(self, key: SeriesKey, start: int, end: int, width: int) -> Series:
        plan.check_width(width)
        ts, value = self._slice(key, start, end)
        if not len(ts):
            return plan.EMPTY_SERIES
        return plan.pixel_extremes(ts, value, start, plan.pixel_us(start, end, width))

    def latest(self, project: str, device: str | None = None) -> dict[SeriesKey, tuple[int, float]]:
        with self._lock:
            items = list(self._data.items())
        return {
            k: (int(ts[-1]), float(v[-1]))
            for k, (ts, v) in items
            if k.project == project and (device is None or k.device == device) and len(ts)
        }

    def series(self, project: str, device: str | None = None) -> list[SeriesKey]:
        return sorted(self.latest(project, device))

    def delete_before(self, project: str, ts: int) -> int:
        ts = plan.clamp_ts(ts)
        gone = 0
        with self._lock:
            for key, (t, v) in list(self._data.items()):
                if key.project != project:
                    continue
                cut = int(np.searchsorted(t, ts, side="left"))
                gone += cut
                if cut == len(t):
                    del self._data[key]
                elif cut:
                    self._data[key] = (t[cut:], v[cut:])
        return gone

    def usage(self, since: int) -> dict[str, ProjectUsage]:
        with self._lock:
            items = list(self._data.items())
        out: dict[str, ProjectUsage] = {}
        for key, (ts, _) in items:
            if not len(ts):
                continue
            u = out.get(key.project)
            recent = len(ts) - int(np.searchsorted(ts, since, side="left"))
            last = int(ts[-1])
            out[key.project] = ProjectUsage(
                (u.points if u else 0) + len(ts),
                (u.recent if u else 0) + recent,
                max(last, u.last_ts or last) if u else last,
            )
        return out

    def stamp_slot(self) -> StampSlot:
        return ONE_WRITER  # in-process

    def close(self) -> None:
        pass
