"""Forecasting a stored series: choose a grid, read it from the store, forecast, find crossings.

**The grid.** A forecast looks back ``clamp(48 × horizon, 2 days, 28 days)`` (less when the series
is younger) and reads the store's bucket means on an even step: the smallest of ``STEPS`` that
keeps the horizon within ``MAX_HORIZON_STEPS`` steps and the history within
``MAX_HISTORY_STEPS``. Only complete buckets are read (the one under way is left out); empty
buckets inside the history are filled by linear interpolation, and a history with more than half
of its buckets empty is refused. A day (and a week, with four weeks of history) is offered to the
forecaster as a season when two full seasons fit in the history.

**Crossings.** ``crossing`` answers "when does it pass X": the first forecast step whose mean is at
or beyond the threshold, and the band around it: ``earliest`` where the interval's near end
first reaches it, ``latest`` where its far end does (``None`` when that does not happen within the
horizon).

>>> plan_grid(3_600_000_000, history_us=30 * 86_400_000_000).step_us // 60_000_000
2
>>> plan_grid(86_400_000_000, history_us=30 * 86_400_000_000).seasons
(48, 336)
>>> fill_gaps(np.array([0, 2, 3]), np.array([1.0, 3.0, 4.0]))
array([1., 2., 3., 4.])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from atoll.core.errors import InvalidInput, NotFound
from atoll.core.points import SeriesKey
from atoll.forecast.port import Forecast, Forecaster
from atoll.store.port import SeriesStore

_MIN = 60_000_000
_HOUR = 60 * _MIN
DAY = 24 * _HOUR
WEEK = 7 * DAY
#: Grid steps a forecast may use (µs).
STEPS = (
    _MIN,
    2 * _MIN,
    5 * _MIN,
    10 * _MIN,
    15 * _MIN,
    30 * _MIN,
    _HOUR,
    2 * _HOUR,
    6 * _HOUR,
    DAY,
)
MAX_HORIZON_STEPS = 200
MAX_HISTORY_STEPS = 2016
MIN_LOOKBACK, MAX_LOOKBACK = 2 * DAY, 28 * DAY
#: Longest horizon asked for: a year.
MAX_HORIZON = 365 * DAY

Direction = Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class Grid:
    step_us: int
    lookback_us: int
    seasons: tuple[int, ...]
    horizon_steps: int


def plan_grid(horizon_us: int, history_us: int, step_us: int | None = None) -> Grid:
    """The grid for a ``horizon_us`` forecast of a series with ``history_us`` of history."""
    if not 0 < horizon_us <= MAX_HORIZON:
        raise InvalidInput("a forecast's horizon must be more than 0 and at most a year")
    lookback = min(max(48 * horizon_us, MIN_LOOKBACK), MAX_LOOKBACK, max(history_us, 0))
    if step_us is None:
        least = max(horizon_us / MAX_HORIZON_STEPS, lookback / MAX_HISTORY_STEPS)
        step_us = next((s for s in STEPS if s >= least), STEPS[-1])
    elif step_us < _MIN:
        raise InvalidInput("a forecast's step must be at least 1 minute")
    elif horizon_us / step_us > 5 * MAX_HORIZON_STEPS or lookback / step_us > 5 * MAX_HISTORY_STEPS:
        raise InvalidInput(
            "this step gives too many points",
            hint=f"at most {5 * MAX_HORIZON_STEPS} ahead and {5 * MAX_HISTORY_STEPS} back; "
            "use a larger step or leave it out",
        )
    seasons = tuple(
        p // step_us
        for p in (DAY, WEEK)
        if p % step_us == 0 and p // step_us >= 2
        if lookback >= (2 if p == DAY else 4) * p
    )
    return Grid(step_us, lookback, seasons, max(1, -(-horizon_us // step_us)))


def fill_gaps(index: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Values on the grid ``0 … index[-1]`` from those at ``index``, gaps linearly interpolated."""
    grid = np.arange(int(index[-1]) + 1)
    return np.interp(grid, index, value)


@dataclass(frozen=True, slots=True)
class Crossing:
    threshold: float
    direction: Direction
    #: When the mean path first reaches the threshold (µs), ``None``: not within the horizon.
    ts: int | None
    earliest: int | None
    latest: int | None


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    key: SeriesKey
    #: The forecast's step times (µs): the bucket starts after the last complete one.
    ts: np.ndarray
    forecast: Forecast
    step_us: int
    #: The history read: its first and last bucket start and how many buckets held data.
    history_from: int
    history_to: int
    rows: int
    last_value: float


def _first(hit: np.ndarray, ts: np.ndarray) -> int | None:
    i = np.flatnonzero(hit)
    return int(ts[i[0]]) if len(i) else None


def crossing(sf: SeriesForecast, threshold: float, direction: Direction) -> Crossing:
    """When the forecast passes ``threshold`` going ``direction`` (see the module's doc)."""
    f = sf.forecast
    if direction == "above":
        near, mean, far = f.hi >= threshold, f.mean >= threshold, f.lo >= threshold
    else:
        near, mean, far = f.lo <= threshold, f.mean <= threshold, f.hi <= threshold
    return Crossing(
        threshold, direction, _first(mean, sf.ts), _first(near, sf.ts), _first(far, sf.ts)
    )


def forecast_series(
    store: SeriesStore,
    key: SeriesKey,
    forecaster: Forecaster,
    *,
    now_us: int,
    horizon_us: int,
    level: float = 0.8,
    step_us: int | None = None,
) -> SeriesForecast:
    """Forecast ``key`` ``horizon_us`` ahead of its last complete bucket before ``now_us``."""
    probe = store.query_buckets(key, now_us - MAX_LOOKBACK, now_us, _HOUR, ("count",))
    if not len(probe.start):
        raise NotFound(f"no data for {key.metric} of {key.device} in the last 28 days")
    grid = plan_grid(horizon_us, now_us - int(probe.start[0]), step_us)
    end = now_us // grid.step_us * grid.step_us
    start = (end - grid.lookback_us) // grid.step_us * grid.step_us
    b = store.query_buckets(key, start, end, grid.step_us, ("avg",))
    avg = np.asarray(b.columns["avg"], dtype=np.float64)
    ok = np.isfinite(avg)
    starts, avg = np.asarray(b.start, dtype=np.int64)[ok], avg[ok]
    if len(starts) < forecaster.min_history:
        raise InvalidInput(
            f"{key.metric} of {key.device} has {len(starts)} complete "
            f"{grid.step_us // _MIN}-minute buckets of data; a forecast needs "
            f"{forecaster.min_history}",
            hint="wait for more data or ask for a shorter horizon",
        )
    index = (starts - starts[0]) // grid.step_us
    if len(starts) * 2 < index[-1] + 1:
        raise InvalidInput(
            f"{key.metric} of {key.device} has data in only {len(starts)} of "
            f"{int(index[-1]) + 1} buckets since its first: too sparse to forecast",
            hint="ask for a longer step",
        )
    y = fill_gaps(index, avg)
    f = forecaster.forecast(y, grid.horizon_steps, seasons=grid.seasons, level=level)
    last = int(starts[-1])
    ts = last + grid.step_us * np.arange(1, grid.horizon_steps + 1, dtype=np.int64)
    return SeriesForecast(
        key, ts, f, grid.step_us, int(starts[0]), last, len(starts), float(avg[-1])
    )
