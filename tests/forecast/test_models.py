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
    assert best.model == "auto:mstl(24)+autoets"  # 24 steps: not under a quarter of the season
    m_best, m_naive = mase(hist, future, best.mean, 24), mase(hist, future, naive.mean, 24)
    assert m_best is not None and m_naive is not None and m_best < 0.5 * m_naive
    # The interval holds most of what happened.
    assert np.mean((future >= best.lo) & (future <= best.hi)) >= 0.6


def test_auto_follows_a_fresh_trend_over_a_short_horizon():
    """A freezer at -20 °C with a daily swing for three days, warming 3 °C an hour for its last
    40 minutes: over the next hour the default carries the warming on, MSTL alone does not."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * 288)  # 5-minute steps
    y = -20.0 + 0.5 * np.sin(2 * np.pi * t / 288) + rng.normal(0.0, 0.05, len(t))
    y[-8:] += 0.25 * np.arange(1, 9)
    short = forecaster().forecast(y, 12, seasons=(288,))
    assert short.model == "auto:autoets" and short.mean[-1] > y[-1] + 1.5
    assert forecaster("mstl").forecast(y, 12, seasons=(288,)).mean[-1] < y[-1] + 1.0


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


def test_preload_imports_the_library_once_asked():
    import subprocess
    import sys

    code = (
        "import sys; from atoll.forecast.models import preload; "
        "assert 'statsforecast' not in sys.modules; preload(); "
        "assert 'statsforecast.models' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
