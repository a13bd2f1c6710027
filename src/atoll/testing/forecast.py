"""The conformance suite of the ``Forecaster`` port: ``check_forecaster(f)`` holds for every
adapter (``tests/forecast/test_models.py`` runs it over all of them)."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.forecast.port import Forecast, Forecaster


def _seasonal(n: int, season: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 20.0 + 5.0 * np.sin(2 * np.pi * t / season) + rng.normal(0.0, 0.3, n)


def check_forecaster(f: Forecaster) -> None:
    assert isinstance(f, Forecaster)
    assert f.name and f.min_history >= 1
    season = 24
    y = _seasonal(10 * season, season)
    out = f.forecast(y, 12, seasons=(season,), level=0.8)
    assert isinstance(out, Forecast) and out.horizon == 12 and out.level == 0.8 and out.model
    for a in (out.mean, out.lo, out.hi):
        assert a.shape == (12,) and a.dtype == np.float64 and np.isfinite(a).all()
    assert (out.lo <= out.mean).all() and (out.mean <= out.hi).all()
    # It stays with the series (a stationary one: within its range), whether or not it models
    # the season (how well it does that is ``atoll bench forecast``'s question).
    assert y.min() - 1.0 <= out.mean.min() and out.mean.max() <= y.max() + 1.0, out.mean
    # A wider level gives a wider interval.
    wide = f.forecast(y, 12, seasons=(season,), level=0.95)
    assert (wide.hi - wide.lo).sum() >= (out.hi - out.lo).sum() - 1e-9
    # The same input gives the same answer.
    again = f.forecast(y, 12, seasons=(season,), level=0.8)
    np.testing.assert_allclose(again.mean, out.mean)
    # Without seasons, and with a season longer than half the history (which it must drop).
    for seasons in ((), (len(y),)):
        plain = f.forecast(y, 5, seasons=seasons)
        assert plain.horizon == 5 and np.isfinite(plain.mean).all()
    # A flat series is forecast flat, not as an error.
    flat = f.forecast(np.full(50, 3.5), 4, seasons=(10,))
    np.testing.assert_allclose(flat.mean, 3.5)
    # Bad input is a clear error.
    for bad, horizon, level in (
        (np.array([1.0, np.nan] * 20), 3, 0.8),
        (y[: max(0, f.min_history - 1)], 3, 0.8),
        (y, 0, 0.8),
        (y, 3, 1.0),
        (np.ones((4, 4)), 3, 0.8),
    ):
        with pytest.raises(InvalidInput):
            f.forecast(bad, horizon, level=level)
