"""Forecasting stored series through the store port (in memory and DuckDB): the grid, gaps,
crossings, and clear errors for what cannot be forecast."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput, NotFound
from atoll.core.points import PointBatch, SeriesKey
from atoll.forecast import crossing, forecast_series, forecaster, plan_grid
from atoll.forecast.series import DAY
from atoll.store.duckdb import DuckDBStore
from atoll.store.memory import MemoryStore

MIN = 60_000_000
NOW = 1_767_225_600_000_000 + 3 * DAY + 30 * MIN + 17_000_000  # 3 days and a half hour in
KEY = SeriesKey("lab", "f1", "temperature")


@pytest.fixture(params=["memory", "duckdb"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else DuckDBStore(tmp_path / "s.duckdb")
    yield s
    s.close()


def _freezer(store, *, warming_from: int | None = None, gap: tuple[int, int] | None = None):
    """A freezer case at -20 °C with a daily swing, one reading a minute up to NOW; from
    ``warming_from`` on its compressor is dead and it warms 3 °C an hour."""
    ts = np.arange(NOW - 3 * DAY, NOW, MIN, dtype=np.int64)
    rng = np.random.default_rng(0)
    v = -20.0 + 0.5 * np.sin(2 * np.pi * (ts % DAY) / DAY) + rng.normal(0.0, 0.05, len(ts))
    if warming_from is not None:
        v = v + np.clip((ts - warming_from) / 3_600e6, 0.0, None) * 3.0
    keep = np.ones(len(ts), bool)
    if gap:
        keep &= (ts < gap[0]) | (ts >= gap[1])
    store.append(PointBatch.of_series(KEY, ts[keep], v[keep]))


def test_a_steady_freezer_is_forecast_steady_and_never_crosses(store):
    _freezer(store)
    sf = forecast_series(store, KEY, forecaster(), now_us=NOW, horizon_us=3_600_000_000)
    assert sf.step_us == 2 * MIN and len(sf.ts) == 30
    # Only complete buckets were read: the one under way at NOW is left out.
    assert sf.history_to + sf.step_us <= NOW and sf.ts[0] == sf.history_to + sf.step_us
    assert np.all(np.abs(sf.forecast.mean + 20.0) < 1.0)
    c = crossing(sf, -15.0, "above")
    assert c.ts is None and c.latest is None


def test_a_warming_freezer_crosses_about_when_it_will(store):
    # Dead since 40 minutes before NOW: -20 -> -18, crossing -15 about 1 h 40 min after NOW.
    _freezer(store, warming_from=NOW - 40 * MIN)
    sf = forecast_series(store, KEY, forecaster(), now_us=NOW, horizon_us=4 * 3_600_000_000)
    c = crossing(sf, -15.0, "above")
    assert c.ts is not None and c.earliest is not None
    assert c.earliest <= c.ts and (c.latest is None or c.ts <= c.latest)
    eta_min = (c.ts - NOW) / MIN
    assert 40 <= eta_min <= 200, eta_min
    # Below: never, since it is warming.
    assert crossing(sf, -25.0, "below").ts is None


def test_gaps_are_filled_but_a_sparse_history_is_refused(store):
    _freezer(store, gap=(NOW - 2 * DAY, NOW - 2 * DAY + 3 * 3_600_000_000))
    sf = forecast_series(store, KEY, forecaster(), now_us=NOW, horizon_us=3_600_000_000)
    assert np.isfinite(sf.forecast.mean).all()
    sparse = SeriesKey("lab", "f2", "temperature")
    ts = NOW - np.arange(0, 2 * DAY, 30 * MIN, dtype=np.int64)[::-1]
    store.append(PointBatch.of_series(sparse, ts, np.zeros(len(ts)) + np.arange(len(ts))))
    with pytest.raises(InvalidInput, match="too sparse"):
        forecast_series(store, sparse, forecaster(), now_us=NOW, horizon_us=3_600_000_000)


def test_what_cannot_be_forecast_is_a_clear_error(store):
    with pytest.raises(NotFound, match="no data"):
        forecast_series(store, KEY, forecaster(), now_us=NOW, horizon_us=3_600_000_000)
    young = SeriesKey("lab", "f3", "t")
    store.append(PointBatch.of_series(young, np.array([NOW - 5 * MIN]), np.array([1.0])))
    with pytest.raises(InvalidInput, match="needs 8"):
        forecast_series(store, young, forecaster(), now_us=NOW, horizon_us=3_600_000_000)
    _freezer(store)
    for horizon, step in ((0, None), (400 * DAY, None), (3_600_000_000, 1_000_000)):
        with pytest.raises(InvalidInput):
            forecast_series(store, KEY, forecaster(), now_us=NOW, horizon_us=horizon, step_us=step)


def test_the_grid_scales_with_the_horizon_and_the_history():
    g = plan_grid(7 * DAY, history_us=60 * DAY)
    assert g.lookback_us == 28 * DAY and g.step_us == 60 * MIN and g.seasons == (24, 168)
    assert g.horizon_steps == 168
    young = plan_grid(7 * DAY, history_us=DAY)  # one day of history: no season fits twice
    assert young.lookback_us == DAY and young.seasons == ()
    explicit = plan_grid(3_600_000_000, history_us=10 * DAY, step_us=5 * MIN)
    assert explicit.step_us == 5 * MIN and explicit.horizon_steps == 12
