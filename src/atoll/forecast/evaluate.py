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

from atoll.forecast.models import COMBO, auto_kind, combine
from atoll.forecast.port import Forecast, Forecaster


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
    the ``lookback`` values before it; origins without enough data around them are skipped.
    ``combo`` and ``auto`` are made from their parts' forecasts when those are compared too
    (the same numbers as fitting them again; their CPU time is their parts')."""
    out: list[Trial] = []
    scale_season = seasons[0] if seasons else 1
    for o in origins:
        if o - lookback < 0 or o + horizon > len(y):
            continue
        hist, actual = y[o - lookback : o], y[o : o + horizon]
        if mase(hist, actual, actual, scale_season) is None:
            continue  # a flat history: nothing to scale errors by
        made: dict[str, tuple[Forecast, float]] = {}
        for name, f in forecasters.items():
            if name == "combo" and all(k in forecasters for k in COMBO):
                continue  # made from its parts below, as the forecaster itself does
            if name == "auto" and {"autoets", "mstl"} <= forecasters.keys():
                continue  # the same: it is one of the two
            t0 = time.process_time()
            fc = f.forecast(hist, horizon, seasons=seasons, level=level)
            made[name] = fc, time.process_time() - t0
        if "combo" in forecasters and "combo" not in made:
            made["combo"] = (
                combine([made[k][0] for k in COMBO]),
                sum(made[k][1] for k in COMBO),
            )
        if "auto" in forecasters and "auto" not in made:
            fc, spent = made[auto_kind(horizon, seasons)]
            made["auto"] = Forecast(fc.mean, fc.lo, fc.hi, fc.level, f"auto:{fc.model}"), spent
        for name in forecasters:
            fc, spent = made[name]
            score = mase(hist, actual, fc.mean, scale_season)
            assert score is not None
            inside = float(np.mean((actual >= fc.lo) & (actual <= fc.hi)))
            out.append(Trial(name, fc.model, score, inside, spent))
    return out
