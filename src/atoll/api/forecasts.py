"""Horizon forecasts of a stored series, with an interval and when it crosses a threshold.

``GET /devices/{device}/series/{metric}/forecast?horizon=1h`` forecasts the series from its own
history (``atoll.forecast.series`` chooses the look-back, step and seasons); with ``threshold``
it also says when the forecast passes it ("this freezer crosses -15 °C in about 40 min"). The
fit runs per request (a fraction of a second; the first in a process also loads the library).
Timestamps in answers are epoch **milliseconds**, like the series routes.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from atoll import __version__
from atoll.api.deps import Ctx, Viewer
from atoll.core.errors import InvalidInput
from atoll.core.points import SeriesKey
from atoll.core.time import parse_duration
from atoll.forecast import DEFAULT, KINDS, crossing, forecast_series, forecaster

router = APIRouter(tags=["series"])
Kind = Literal["mstl", "autoets", "theta", "combo", "auto", "seasonal_naive"]
assert set(Kind.__args__) == set(KINDS)  # type: ignore[attr-defined]


class CrossingOut(BaseModel):
    threshold: float
    direction: Literal["above", "below"]
    ts: float | None = Field(
        description="epoch ms when the forecast's mean path first reaches the threshold; "
        "null: not within the horizon"
    )
    earliest: float | None = Field(
        description="epoch ms when the interval's near end first reaches it (the soonest "
        "plausible crossing)"
    )
    latest: float | None = Field(
        description="epoch ms when the interval's far end reaches it (by then it almost surely "
        "has); null: not within the horizon"
    )
    in_s: float | None = Field(description="seconds from now to ``ts``")


class ForecastOut(BaseModel):
    device: str
    metric: str
    unit: str | None = None
    model: str = Field(description="the model that made it, e.g. mstl(96,672)+autoets")
    code_version: str
    level: float = Field(description="the interval's nominal coverage, e.g. 0.8")
    step_ms: float
    history_start: float = Field(description="epoch ms of the first bucket the forecast read")
    history_end: float = Field(description="epoch ms of the last complete bucket it read")
    history_buckets: int = Field(description="buckets with data in the history read")
    last_value: float = Field(description="the last bucket's mean")
    ts: list[float] = Field(description="epoch ms of each forecast step")
    mean: list[float]
    lo: list[float]
    hi: list[float]
    crossing: CrossingOut | None = None


@router.get(
    "/devices/{device}/series/{metric}/forecast",
    response_model=ForecastOut,
    summary="Forecast a series, and when it crosses a threshold",
)
def forecast(
    who: Viewer,
    ctx: Ctx,
    device: str,
    metric: str,
    horizon: str = Query("1h", description="how far ahead, e.g. 40m, 6h, 7d (at most 365d)"),
    level: float = Query(0.8, ge=0.5, le=0.99, description="the interval's coverage"),
    step: str | None = Query(
        None, description="grid step, e.g. 5m (default: chosen from the horizon)"
    ),
    threshold: float | None = Query(
        None, allow_inf_nan=False, description="say when the forecast crosses this value"
    ),
    direction: Literal["above", "below"] | None = Query(
        None,
        description="crossing going above or below the threshold (default: the side the "
        "series is not on now)",
    ),
    model: Kind = Query(DEFAULT, description="the forecaster"),
) -> ForecastOut:
    dev = ctx.registry.get_device(device, who.tenant)
    now = time.time_ns() // 1000
    horizon_us = parse_duration(horizon, positive=True)
    step_us = parse_duration(step, positive=True) if step else None
    if direction is not None and threshold is None:
        raise InvalidInput("direction needs a threshold", hint="add threshold=<value>")
    unit = None
    if dev.device_type:
        dt = ctx.registry.get_device_type(dev.project, dev.device_type)
        unit = next((m.unit for m in dt.metrics if m.name == metric), None) or None
    sf = forecast_series(
        ctx.store,
        SeriesKey(dev.project, dev.id, metric),
        forecaster(model),
        now_us=now,
        horizon_us=horizon_us,
        level=level,
        step_us=step_us,
    )
    f = sf.forecast
    cross = None
    if threshold is not None:
        way = direction or ("above" if sf.last_value < threshold else "below")
        c = crossing(sf, threshold, way)
        cross = CrossingOut(
            threshold=threshold,
            direction=way,
            ts=None if c.ts is None else c.ts / 1000,
            earliest=None if c.earliest is None else c.earliest / 1000,
            latest=None if c.latest is None else c.latest / 1000,
            in_s=None if c.ts is None else round((c.ts - now) / 1e6, 3),
        )
    return ForecastOut(
        device=dev.id,
        metric=metric,
        unit=unit,
        model=f.model,
        code_version=__version__,
        level=level,
        step_ms=sf.step_us / 1000,
        history_start=sf.history_from / 1000,
        history_end=sf.history_to / 1000,
        history_buckets=sf.rows,
        last_value=sf.last_value,
        ts=(sf.ts / 1000).tolist(),
        mean=f.mean.tolist(),
        lo=f.lo.tolist(),
        hi=f.hi.tolist(),
        crossing=cross,
    )
