"""Telemetry queries: raw range, downsampled buckets, chart-ready min/max per pixel, latest values.

Timestamps in answers are epoch **milliseconds** (JavaScript-friendly numbers).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Viewer
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import InvalidInput
from atoll.core.points import SeriesKey
from atoll.core.time import parse_duration
from atoll.store.port import AGGREGATES

router = APIRouter(tags=["series"])
DAY_US = 86_400_000_000
MAX_RAW = 1_000_000
MAX_BUCKETS = 100_000


class SeriesInfo(BaseModel):
    metric: str
    unit: str | None = None
    last_ts: float | None = Field(None, description="epoch ms of the newest point")
    last_value: float | None = None


class SeriesData(BaseModel):
    device: str
    metric: str
    mode: Literal["raw", "chart", "buckets"]
    start: float = Field(description="epoch ms")
    end: float = Field(description="epoch ms")
    ts: list[float] = Field(description="epoch ms (raw, chart) or bucket starts (buckets)")
    value: list[float | None] | None = Field(None, description="raw and chart modes")
    bucket_ms: float | None = None
    aggregates: dict[str, list[float | None]] | None = Field(
        None, description="buckets mode: one list per aggregate"
    )


class LatestValue(BaseModel):
    device: str
    metric: str
    ts: float = Field(description="epoch ms")
    value: float


def _ms(us: np.ndarray) -> list[float]:
    return (np.asarray(us, dtype=np.int64) / 1000.0).tolist()


def _clean(v: np.ndarray) -> list[float | None]:
    # JSON has no NaN; a NaN aggregate (empty bucket) becomes null.
    arr = np.asarray(v, dtype=np.float64)
    if np.isfinite(arr).all():
        return arr.tolist()
    return [x if np.isfinite(x) else None for x in arr.tolist()]


@router.get(
    "/devices/{device}/series", response_model=list[SeriesInfo], summary="List a device's series"
)
def list_series(device: str, who: Viewer, ctx: Ctx):
    """Every metric that holds data, plus those its device type declares, with the latest point."""
    dev = ctx.registry.get_device(device, who.tenant)
    units: dict[str, str] = {}
    if dev.device_type:
        dt = ctx.registry.get_device_type(dev.project, dev.device_type)
        units = {m.name: m.unit for m in dt.metrics}
    latest = {k.metric: v for k, v in ctx.store.latest(dev.project, dev.id).items()}
    names = sorted(
        set(latest) | set(units) | {k.metric for k in ctx.store.series(dev.project, dev.id)}
    )
    out = []
    for name in names:
        ts_val = latest.get(name)
        out.append(
            SeriesInfo(
                metric=name,
                unit=units.get(name),
                last_ts=None if ts_val is None else ts_val[0] / 1000.0,
                last_value=None if ts_val is None else ts_val[1],
            )
        )
    return out


@router.get(
    "/devices/{device}/series/{metric}",
    response_model=SeriesData,
    response_model_exclude_none=True,
    summary="Query one series",
)
def query_series(
    who: Viewer,
    ctx: Ctx,
    device: str,
    metric: str,
    start: str | None = Query(None, description=f"default: end - 1 day; {TIME_HELP}"),
    end: str | None = Query(None, description=f"default: now; {TIME_HELP}"),
    mode: Literal["raw", "chart", "buckets"] = Query(
        "chart", description="raw points, chart (min/max per pixel) or buckets (aggregates)"
    ),
    width: int = Query(1000, ge=1, le=20000, description="chart mode: pixels (≈2 points each)"),
    bucket: str | None = Query(
        None, description="buckets mode: size, e.g. 1m, 1h, 1d (default: ~500 buckets)"
    ),
    aggs: str = Query(",".join(AGGREGATES), description="buckets mode: comma-separated aggregates"),
    limit: int = Query(100_000, ge=1, le=MAX_RAW, description="raw mode: most points returned"),
):
    dev = ctx.registry.get_device(device, who.tenant)
    now = time.time_ns() // 1000
    end_us = parse_time(end, now, default=now)
    start_us = parse_time(start, now, default=end_us - DAY_US)
    if start_us >= end_us:
        raise InvalidInput("start must be before end")
    key = SeriesKey(dev.project, dev.id, metric)
    base = {
        "device": dev.id,
        "metric": metric,
        "mode": mode,
        "start": start_us / 1000,
        "end": end_us / 1000,
    }
    if mode == "raw":
        s = ctx.store.query_raw(key, start_us, end_us, limit)
        return SeriesData(**base, ts=_ms(s.ts), value=_clean(s.value))
    if mode == "chart":
        s = ctx.store.query_chart(key, start_us, end_us, width)
        return SeriesData(**base, ts=_ms(s.ts), value=_clean(s.value))
    wanted = tuple(a.strip() for a in aggs.split(",") if a.strip())
    bad = [a for a in wanted if a not in AGGREGATES]
    if bad or not wanted:
        raise InvalidInput(
            f"unknown aggregate(s): {', '.join(bad) or '(none)'}",
            hint=f"choose from {', '.join(AGGREGATES)}",
        )
    size = (
        parse_duration(bucket, positive=True)
        if bucket
        else max(1_000_000, (end_us - start_us) // 500)
    )
    if (end_us - start_us) // size > MAX_BUCKETS:
        raise InvalidInput(
            f"{(end_us - start_us) // size} buckets requested; the limit is {MAX_BUCKETS}",
            hint="use a larger bucket or a shorter range",
        )
    b = ctx.store.query_buckets(key, start_us, end_us, size, wanted)
    return SeriesData(
        **base,
        ts=_ms(b.start),
        bucket_ms=size / 1000,
        aggregates={a: _clean(v) for a, v in b.columns.items()},
    )


@router.get(
    "/projects/{project}/latest",
    response_model=list[LatestValue],
    summary="Latest value of every series in a project",
)
def latest(who: Viewer, ctx: Ctx, project: str, device: str | None = None):
    ctx.registry.get_project(project, who.tenant)
    if device is not None:
        dev = ctx.registry.get_device(device, who.tenant)
        if dev.project != project:
            raise InvalidInput(f"device {device!r} is not in project {project!r}")
    rows = ctx.store.latest(project, device)
    return [
        LatestValue(device=k.device, metric=k.metric, ts=ts / 1000, value=v)
        for k, (ts, v) in sorted(rows.items())
    ]
