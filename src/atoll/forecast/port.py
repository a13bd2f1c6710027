"""The ``Forecaster`` port: one verb, ``forecast``, over an evenly spaced history.

A forecaster gets the history of one series on an even grid (``y``, oldest first, no gaps: the
caller fills them), the seasons it may use (in steps: 96 is a day of 15-minute steps) and a
horizon in steps; it answers a :class:`Forecast`: the mean path and a central interval at
``level`` (0.8 is the 10th to the 90th percentile). Adapters: ``atoll.forecast.models``. Every
adapter passes ``atoll.testing.forecast.check_forecaster``.

>>> f = Forecast(np.array([1.0, 2.0]), np.array([0.5, 1.0]), np.array([1.5, 3.0]), 0.8, "x")
>>> f.horizon, f.level
(2, 0.8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Forecast:
    """A horizon of ``len(mean)`` steps after the last observed one."""

    mean: np.ndarray  # float64
    lo: np.ndarray  # float64, lower end of the ``level`` interval
    hi: np.ndarray  # float64, upper end
    level: float
    #: Which model produced it (``mstl(96)+autoets``, ``seasonal_naive(96)``...).
    model: str

    @property
    def horizon(self) -> int:
        return len(self.mean)


@runtime_checkable
class Forecaster(Protocol):
    @property
    def name(self) -> str:
        """The adapter's name, as ``atoll bench forecast`` and model records give it."""

    def forecast(
        self, y: np.ndarray, horizon: int, *, seasons: tuple[int, ...] = (), level: float = 0.8
    ) -> Forecast:
        """Forecast ``horizon`` steps after ``y`` (finite, evenly spaced, oldest first).

        ``seasons`` are the season lengths in steps the caller found worth modelling (each
        with at least two full seasons of history); an adapter may use fewer. Raises
        ``InvalidInput`` when ``y`` is too short for it (fewer than ``min_history`` values).
        """

    @property
    def min_history(self) -> int:
        """The fewest values it forecasts from."""
