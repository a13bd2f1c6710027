import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.store import plan

MIN, HOUR, DAY = plan.MINUTE, plan.HOUR, 24 * plan.HOUR


def test_chart_uses_the_coarsest_tier_that_still_fills_the_width():
    assert plan.chart_tier(0, 365 * DAY, 1000) == HOUR  # 8.76 h per pixel
    assert plan.chart_tier(0, 7 * DAY, 1000) == MIN  # 10 min per pixel
    assert plan.chart_tier(0, DAY, 2000) is None  # 43 s per pixel: raw points
    assert plan.chart_tier(0, 1000 * HOUR, 1000) == HOUR  # exactly one hour per pixel


def test_buckets_use_a_tier_only_when_its_buckets_nest():
    assert plan.bucket_tier(DAY) == HOUR
    assert plan.bucket_tier(90 * MIN) == MIN
    assert plan.bucket_tier(10 * 1_000_000) is None
    assert plan.bucket_tier(HOUR + 1) is None


def test_inner_span_is_the_tier_aligned_middle():
    assert plan.inner_span(5 * MIN + 1, 9 * MIN - 1, MIN) == (6 * MIN, 8 * MIN)
    assert plan.inner_span(0, 10 * MIN, MIN) == (0, 10 * MIN)
    # No whole tier bucket inside: everything is an edge, read raw.
    assert plan.inner_span(5 * MIN + 1, 6 * MIN + 5, MIN) == (6 * MIN + 5, 6 * MIN + 5)
    assert plan.inner_span(0, 10, None) == (10, 10)


def test_pixel_extremes_keep_each_pixels_lowest_and_highest_point_in_time_order():
    ts = np.arange(10, dtype=np.int64)
    value = np.array([3.0, 1.0, 2.0, 2.0, 9.0, 0.0, 5.0, 5.0, 5.0, 4.0])
    got = plan.pixel_extremes(ts, value, 0, 5)
    assert got.ts.tolist() == [1, 4, 5, 6]  # pixel 0: min@1 max@4; pixel 1: min@5, max@6
    assert got.value.tolist() == [1.0, 9.0, 0.0, 5.0]


def test_clamps_and_checks():
    assert plan.check_range(-(2**63), 2**63 - 1) == (-plan.TS_LIMIT, plan.TS_LIMIT)
    assert plan.clamp_ts(2**63 - 1) == plan.TS_LIMIT
    with pytest.raises(InvalidInput):
        plan.check_range(0.5, 10)
    with pytest.raises(InvalidInput):
        plan.check_width(0)
    with pytest.raises(InvalidInput) as e:
        plan.check_aggs(("mean",))
    assert "avg" in e.value.hint
