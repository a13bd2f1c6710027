"""Scoring forecasters by rolling origin: MASE against the seasonal-naive scale, and coverage.

**MASE** (Hyndman and Koehler, 2006; the M4 competition's measure): the forecast's mean absolute
error over the horizon divided by the in-sample mean absolute error of the seasonal-naive
forecast one season ahead (one step ahead without a season). Below 1 is better than what the
seasonal-naive method did in-sample; the seasonal-naive forecaster itself scores about 1 on a
series whose seasons repeat.

**Coverage**: the share of actual values inside the forecast's interval; an 80 % interval should
hold about 80 %.

>>> hist = np.tile([0.0, 1.0], 10)
>>> round(mase(hist, np.array([0.0, 1.0]), np.array([0.5, 0.5]), season=1), 3)
0.5
>>> mase(np.ones(10), np.ones(2), np.ones(2), season=1) is None
True
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from atoll.forecast.port import Forecaster


def mase(
    history: np.ndarray, actual: np.ndarray, predicted: np.ndarray, season: int
) -> float | None:
    """MASE of ``predicted`` against ``actual``; ``None`` when the in-sample scale is 0."""
    m = max(1, season)
    if len(history) <= m:
        return None
    scale = float(np.mean(np.abs(history[m:] - history[:-m])))
    if not scale > 1e-12:
        return None
    return float(np.mean(np.abs(actual - predicted)) / scale)


@dataclass(frozen=True, slots=True)
class Trial:
    """One forecast from one origin of one series."""

    forecaster: str
    model: str
    mase: float
    coverage: float
    seconds: float


def backtest(
    y: np.ndarray,
    origins: Iterable[int],
    *,
    lookback: int,
    horizon: int,
    seasons: tuple[int, ...],
    forecasters: Mapping[str, Forecaster],
    level: float = 0.8,
) -> list[Trial]:
    """Each forecaster forecasts ``horizon`` steps from each origin (an index into ``y``) with
    the ``lookback`` values before it; origins without enough data around them are skipped."""
    out: list[Trial] = []
    scale_season = seasons[0] if seasons else 1
    for o in origins:
        if o - lookback < 0 or o + horizon > len(y):
            continue
        hist, actual = y[o - lookback : o], y[o : o + horizon]
        if mase(hist, actual, actual, scale_season) is None:
            continue  # a flat history: nothing to scale errors by
        for name, f in forecasters.items():
            t0 = time.process_time()
            fc = f.forecast(hist, horizon, seasons=seasons, level=level)
            spent = time.process_time() - t0
            score = mase(hist, actual, fc.mean, scale_season)
            assert score is not None
            inside = float(np.mean((actual >= fc.lo) & (actual <= fc.hi)))
            out.append(Trial(name, fc.model, score, inside, spent))
    return out
