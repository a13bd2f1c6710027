"""Every forecaster passes the port's conformance suite; the default beats seasonal naive on a
series with a trend, and a failing fit falls back to the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.forecast import KINDS, forecaster
from atoll.forecast.evaluate import mase
from atoll.forecast.models import StatsForecaster
from atoll.testing.forecast import check_forecaster


@pytest.mark.parametrize("kind", KINDS)
def test_conformance(kind):
    check_forecaster(forecaster(kind))


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(InvalidInput, match="unknown forecaster"):
        forecaster("prophet")


def test_the_default_follows_a_trend_that_seasonal_naive_misses():
    rng = np.random.default_rng(3)
    t = np.arange(24 * 14)
    y = 0.05 * t + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 0.2, len(t))
    hist, future = y[:-24], y[-24:]
    best = forecaster().forecast(hist, 24, seasons=(24,))
    naive = forecaster("seasonal_naive").forecast(hist, 24, seasons=(24,))
    assert best.model.startswith("combo(mstl(24)+autoets,")
    m_best, m_naive = mase(hist, future, best.mean, 24), mase(hist, future, naive.mean, 24)
    assert m_best is not None and m_naive is not None and m_best < 0.5 * m_naive
    # The interval holds most of what happened.
    assert np.mean((future >= best.lo) & (future <= best.hi)) >= 0.6


def test_a_fit_that_fails_falls_back_to_seasonal_naive(caplog):
    class Broken(StatsForecaster):
        def _model(self, seasons):
            def boom():
                raise FloatingPointError("singular matrix")

            return boom, "broken"

    y = np.tile([1.0, 2.0, 3.0, 4.0], 10)
    out = Broken("mstl").forecast(y, 4, seasons=(4,))
    assert out.model == "seasonal_naive(4)" and out.mean.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert "seasonal naive instead" in caplog.text
