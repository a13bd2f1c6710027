"""Forecasters behind the port, all from Nixtla's ``statsforecast`` (imported on first use: it
takes seconds to load, and a platform that never forecasts should not pay for it).

- ``mstl``: MSTL decomposition into the given seasons (a day, a week) with an AutoETS model of
  the remainder's trend; without a season, AutoETS alone. It keeps the daily shape, but a trend
  that began minutes ago hardly moves it.
- ``autoets``: AutoETS without seasons (ETS cannot take a season of 96 steps at a useful cost).
- ``theta``: AutoTheta with the first season.
- ``combo`` (the default): the mean of ``mstl``, ``autoets`` and ``theta`` (path and interval
  ends), the kind of combination the M4 competition found hard to beat. It keeps most of the
  seasonal shape and still follows a fresh trend (a freezer warming since its compressor died),
  which time-to-threshold needs. Chosen on development seeds of the sector simulations
  (``atoll bench forecast``, docs/BENCHMARKS.md).
- ``auto``: per series, whichever of ``mstl``, ``autoets`` and ``theta`` forecast the last
  ``horizon`` steps of the history best (mean absolute error; at most a quarter of the history
  is held out), refitted on all of it. The series' own past chooses; nothing is fitted to labels.
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

KINDS = ("mstl", "autoets", "theta", "combo", "auto", "seasonal_naive")
#: What ``auto`` chooses from.
CANDIDATES = ("mstl", "autoets", "theta")
DEFAULT = "combo"


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
            parts = [
                StatsForecaster(k).forecast(y, horizon, seasons=seasons, level=level)
                for k in ("mstl", "autoets", "theta")
            ]
            return Forecast(
                np.mean([p.mean for p in parts], axis=0),
                np.mean([p.lo for p in parts], axis=0),
                np.mean([p.hi for p in parts], axis=0),
                level,
                "combo(" + ",".join(p.model for p in parts) + ")",
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
        held = min(horizon, len(y) // 4)
        best, best_err = CANDIDATES[0], np.inf
        if held >= 1 and len(y) - held >= self.min_history:
            past, future = y[:-held], y[-held:]
            for kind in CANDIDATES:
                f = StatsForecaster(kind).forecast(past, held, seasons=seasons, level=level)
                err = float(np.mean(np.abs(f.mean - future)))
                if err < best_err:
                    best, best_err = kind, err
        out = StatsForecaster(best).forecast(y, horizon, seasons=seasons, level=level)
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
