"""Series queries: raw points, charts, buckets and latest values (``Client``'s part)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param


@dataclass(frozen=True)
class SeriesInfo:
    metric: str
    unit: str | None = None
    last_ts: float | None = None
    last_value: float | None = None


@dataclass(frozen=True)
class Series:
    """Raw or chart answer. ``ts`` are epoch milliseconds."""

    device: str
    metric: str
    ts: list[float]
    value: list[float | None]

    def __len__(self) -> int:
        return len(self.ts)

    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(t / 1000, UTC) for t in self.ts]


@dataclass(frozen=True)
class Buckets:
    """Aggregates per bucket; ``ts`` are the bucket starts in epoch milliseconds."""

    device: str
    metric: str
    bucket_ms: float
    ts: list[float]
    aggregates: dict[str, list[float | None]]

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, aggregate: str) -> list[float | None]:
        return self.aggregates[aggregate]


@dataclass(frozen=True)
class Crossing:
    """When a forecast passes a threshold; times are epoch milliseconds (``None``: not within
    the horizon)."""

    threshold: float
    direction: str
    ts: float | None
    earliest: float | None
    latest: float | None
    in_s: float | None


@dataclass(frozen=True)
class Forecast:
    """A horizon forecast: ``mean`` with its ``level`` interval ``lo``..``hi`` at each ``ts``
    (epoch ms), the model that made it and, when a threshold was given, its ``crossing``."""

    device: str
    metric: str
    model: str
    code_version: str
    level: float
    step_ms: float
    history_start: float
    history_end: float
    history_buckets: int
    last_value: float
    ts: list[float]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    unit: str | None = None
    crossing: Crossing | None = None

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True)
class Latest:
    device: str
    metric: str
    ts: float
    value: float


class SeriesCalls(Http):
    def series(self, device: str) -> list[SeriesInfo]:
        return [build(SeriesInfo, s) for s in self._call("GET", f"/devices/{device}/series")]

    def _query(
        self, device: str, metric: str, mode: str, start: TimeLike, end: TimeLike, **params: Any
    ) -> Any:
        return self._call(
            "GET",
            f"/devices/{device}/series/{metric}",
            params={"mode": mode, "start": time_param(start), "end": time_param(end), **params},
        )

    def raw(
        self,
        device: str,
        metric: str,
        *,
        start: TimeLike = None,
        end: TimeLike = None,
        limit: int = 100_000,
    ) -> Series:
        """Points with ``start <= ts < end`` (default: the last day). Times: datetime, epoch ms,
        ISO-8601 or relative (``"-1h"``)."""
        d = self._query(device, metric, "raw", start, end, limit=limit)
        return Series(device, metric, d["ts"], d["value"])

    def chart(
        self,
        device: str,
        metric: str,
        *,
        start: TimeLike = None,
        end: TimeLike = None,
        width: int = 1000,
    ) -> Series:
        """At most about ``2 * width`` points that draw like the raw data."""
        d = self._query(device, metric, "chart", start, end, width=width)
        return Series(device, metric, d["ts"], d["value"])

    def buckets(
        self,
        device: str,
        metric: str,
        *,
        start: TimeLike = None,
        end: TimeLike = None,
        bucket: str | None = None,
        aggs: Iterable[str] = ("min", "max", "avg", "count", "first", "last"),
    ) -> Buckets:
        d = self._query(device, metric, "buckets", start, end, bucket=bucket, aggs=",".join(aggs))
        return Buckets(device, metric, d["bucket_ms"], d["ts"], d["aggregates"])

    def forecast(
        self,
        device: str,
        metric: str,
        *,
        horizon: str = "1h",
        level: float = 0.8,
        step: str | None = None,
        threshold: float | None = None,
        direction: str | None = None,
        model: str | None = None,
    ) -> Forecast:
        """Forecast ``horizon`` ahead (``"40m"``, ``"7d"``) with a ``level`` interval; with
        ``threshold``, also when it crosses it (``direction`` ``"above"``/``"below"``, default
        the side the series is not on now)."""
        d = self._call(
            "GET",
            f"/devices/{device}/series/{metric}/forecast",
            params={
                "horizon": horizon,
                "level": level,
                "step": step,
                "threshold": threshold,
                "direction": direction,
                "model": model,
            },
        )
        c = d.get("crossing")
        return build(Forecast, {**d, "crossing": build(Crossing, c) if c else None})

    def latest(self, project: str, device: str | None = None) -> list[Latest]:
        return [
            build(Latest, x)
            for x in self._call("GET", f"/projects/{project}/latest", params={"device": device})
        ]
