from __future__ import annotations

import numpy as np

from atoll.detect.ewma import EWMAZScore
from atoll.detect.seasonal import SeasonalBaseline

HOUR = 3_600_000_000


def _daily(days):
    t = np.arange(days * 24)
    return 100 + 50 * np.sin(2 * np.pi * t / 24), t.astype(np.int64) * HOUR


def test_knows_what_is_usual_for_the_hour():
    values, ts = _daily(20)
    seasonal, flat = SeasonalBaseline(), EWMAZScore()
    seasonal.score_many(values, ts)
    flat.score_many(values, ts)
    # The daily peak is normal at its hour, but a peak value at the trough hour is not.
    peak_hour, trough_hour = ts[-24 + 6] + 24 * HOUR, ts[-24 + 18] + 24 * HOUR
    assert seasonal.score_one(150.0, int(peak_hour)) < 0.9
    assert seasonal.score_one(150.0, int(trough_hour)) > 0.9999
    assert flat.score_one(150.0, int(trough_hour)) < 0.9999  # a flat baseline cannot tell


def test_without_timestamps_period_is_in_readings():
    d = SeasonalBaseline(slots=4, min_count=8, min_slot=2)
    pattern = np.tile([0.0, 10.0, 20.0, 10.0], 50)
    d.score_many(pattern)
    assert d.score_one(0.0) < 0.5  # next slot in the cycle is the 0.0 one
    assert d.score_one(20.0) > 0.99
