"""Forecasters behind the port, all from Nixtla's ``statsforecast`` (imported on first use: it
takes seconds to load, and a platform that never forecasts should not pay for it).

- ``auto`` (the default): ``autoets`` when the horizon is under a quarter of the shortest season
  (or there is no season), ``mstl`` otherwise. Over a short horizon where the series is now, and
  a trend that began minutes ago (a freezer warming since its compressor died), matter most;
  over a long one, extrapolating a trend hurts and the daily shape matters most. Chosen on
  development seed 0 of the sector simulations (``atoll bench forecast``, docs/BENCHMARKS.md):
  mean MASE at 1 h, AutoETS 0.87 against MSTL 0.89 and seasonal naive 0.99; at 1 day, AutoETS
  2.51 against MSTL 0.85.
- ``mstl``: MSTL decomposition into the given seasons (a day, a week) with an AutoETS model of
  the remainder's trend; without a season, AutoETS alone.
- ``autoets``: AutoETS without seasons (ETS cannot take a season of 96 steps at a useful cost).
- ``theta``: AutoTheta with the first season.
- ``combo``: the mean of ``mstl``, ``autoets`` and ``theta`` (path and interval ends), the kind
  of combination the M4 competition found hard to beat.
- ``seasonal_naive``: the value one season ago (``naive``, the last value, without a season);
  the baseline the others must beat.

>>> import numpy as np
>>> y = np.tile([1.0, 2.0, 3.0, 4.0], 6)
>>> f = forecaster("seasonal_naive").forecast(y, 3, seasons=(4,))
>>> f.mean.tolist(), f.model
([1.0, 2.0, 3.0], 'seasonal_naive(4)')
>>> forecaster("prophet")
Traceback (most recent call last):
...
atoll.core.errors.InvalidInput: unknown forecaster 'prophet'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.forecast.port import Forecast, Forecaster

log = logging.getLogger(__name__)

KINDS = ("auto", "mstl", "autoets", "theta", "combo", "seasonal_naive")
#: What ``combo`` averages.
COMBO = ("mstl", "autoets", "theta")
DEFAULT = "auto"


def _constant(y: np.ndarray, horizon: int, level: float) -> Forecast:
    v = np.full(horizon, float(y[-1]))
    return Forecast(v, v.copy(), v.copy(), level, "constant")


def _check(y: np.ndarray, horizon: int, level: float, least: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all():
        raise InvalidInput("a forecast needs a 1-D history of finite values")
    if len(y) < least:
        raise InvalidInput(f"a forecast needs at least {least} values of history, got {len(y)}")
    if horizon < 1:
        raise InvalidInput(f"horizon must be at least one step, got {horizon}")
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"level must be between 0 and 1, got {level}")
    return y


def preload() -> None:
    """Import the forecasting library now (the platform does it on a background thread)."""
    import statsforecast.models  # noqa: F401, PLC0415


def auto_kind(horizon: int, seasons: tuple[int, ...]) -> str:
    """What ``auto`` forecasts with: ``autoets`` under a quarter of the shortest season."""
    return "autoets" if not seasons or 4 * horizon < min(seasons) else "mstl"


def combine(parts: list[Forecast]) -> Forecast:
    """The ``combo`` forecast of its parts' forecasts (one horizon and level)."""
    return Forecast(
        np.mean([p.mean for p in parts], axis=0),
        np.mean([p.lo for p in parts], axis=0),
        np.mean([p.hi for p in parts], axis=0),
        parts[0].level,
        "combo(" + ",".join(p.model for p in parts) + ")",
    )


@dataclass(frozen=True, slots=True)
class StatsForecaster:
    """One ``statsforecast`` model family; ``kind`` is one of ``KINDS``."""

    kind: str = DEFAULT

    @property
    def name(self) -> str:
        return self.kind

    @property
    def min_history(self) -> int:
        return 2 if self.kind == "seasonal_naive" else 8

    def forecast(
        self, y: np.ndarray, horizon: int, *, seasons: tuple[int, ...] = (), level: float = 0.8
    ) -> Forecast:
        y = _check(y, horizon, level, self.min_history)
        seasons = tuple(s for s in seasons if s >= 2 and len(y) >= 2 * s)
        if np.ptp(y) == 0.0:
            return _constant(y, horizon, level)
        if self.kind == "auto":
            return self._auto(y, horizon, seasons, level)
        if self.kind == "combo":
            return combine(
                [
                    StatsForecaster(k).forecast(y, horizon, seasons=seasons, level=level)
                    for k in COMBO
                ]
            )
        model, label = self._model(seasons)
        pct: float = round(level * 100, 6)
        if pct == int(pct):
            pct = int(pct)  # statsforecast names the columns after the level as given
        try:
            out = model().fit(y).predict(h=horizon, level=[pct])
        except Exception as e:  # a numerical failure of one fit: fall back to the baseline
            if self.kind == "seasonal_naive":
                raise
            log.warning("forecast: %s failed (%s); seasonal naive instead", label, e)
            return StatsForecaster("seasonal_naive").forecast(
                y, horizon, seasons=seasons, level=level
            )
        key = str(pct)
        mean = np.asarray(out["mean"], dtype=np.float64)
        lo = np.asarray(out[f"lo-{key}"], dtype=np.float64)
        hi = np.asarray(out[f"hi-{key}"], dtype=np.float64)
        if not (np.isfinite(mean).all() and np.isfinite(lo).all() and np.isfinite(hi).all()):
            if self.kind == "seasonal_naive":
                raise InvalidInput("the forecast came out not finite")
            log.warning("forecast: %s gave non-finite values; seasonal naive instead", label)
            return StatsForecaster("seasonal_naive").forecast(
                y, horizon, seasons=seasons, level=level
            )
        return Forecast(mean, np.minimum(lo, mean), np.maximum(hi, mean), level, label)

    def _auto(
        self, y: np.ndarray, horizon: int, seasons: tuple[int, ...], level: float
    ) -> Forecast:
        kind = auto_kind(horizon, seasons)
        out = StatsForecaster(kind).forecast(y, horizon, seasons=seasons, level=level)
        return Forecast(out.mean, out.lo, out.hi, level, f"auto:{out.model}")

    def _model(self, seasons: tuple[int, ...]) -> tuple[Callable[[], Any], str]:
        from statsforecast.models import (  # noqa: PLC0415 (seconds to import; see above)
            MSTL,
            AutoETS,
            AutoTheta,
            Naive,
            SeasonalNaive,
        )

        if self.kind == "seasonal_naive":
            if seasons:
                return (lambda: SeasonalNaive(season_length=seasons[0])), (
                    f"seasonal_naive({seasons[0]})"
                )
            return Naive, "naive"
        if self.kind == "theta":
            m = seasons[0] if seasons else 1
            return (lambda: AutoTheta(season_length=m)), f"theta({m})"
        if self.kind == "mstl" and seasons:
            spec = ",".join(map(str, seasons))
            return (
                lambda: MSTL(season_length=list(seasons), trend_forecaster=AutoETS(model="ZZN"))
            ), f"mstl({spec})+autoets"
        if self.kind in ("mstl", "autoets"):
            return (lambda: AutoETS(model="ZZN")), "autoets"
        raise InvalidInput(f"unknown forecaster {self.kind!r}", hint=f"one of {', '.join(KINDS)}")


def forecaster(kind: str = DEFAULT) -> Forecaster:
    """The forecaster called ``kind`` (one of ``KINDS``)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown forecaster {kind!r}", hint=f"one of {', '.join(KINDS)}")
    return StatsForecaster(kind)
