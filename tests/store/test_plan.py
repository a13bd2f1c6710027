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


def test_one_per_timestamp_keeps_the_last_arrival_of_each_series_and_time():
    rng = np.random.default_rng(1)
    sid = rng.integers(0, 4, 3000).astype(np.int32)
    ts = rng.integers(-500, 500, 3000).astype(np.int64)
    value = np.arange(3000, dtype=np.float64)  # arrival order
    got = plan.one_per_timestamp(sid, ts, value)
    want = {}
    for s, t, v in zip(sid.tolist(), ts.tolist(), value.tolist(), strict=True):
        want[(s, t)] = v
    assert list(zip(got[0].tolist(), got[1].tolist(), strict=True)) == sorted(want)
    assert got[2].tolist() == [want[k] for k in sorted(want)]
    # Sorted and unique already: the very same arrays come back (no copy on the fast path).
    again = plan.one_per_timestamp(*got)
    assert all(a is b for a, b in zip(again, got, strict=True))


def test_against_stored_matches_a_dict_of_stored_points():
    rng = np.random.default_rng(2)
    sid, ts, value = plan.one_per_timestamp(
        rng.integers(0, 3, 400).astype(np.int32),
        rng.integers(0, 300, 400).astype(np.int64),
        rng.integers(0, 3, 400).astype(np.float64),
    )
    stored = [
        (s, t, float(rng.integers(0, 3))) for s, t in zip(sid.tolist(), ts.tolist(), strict=True)
    ]
    stored = [p for p in stored if rng.random() < 0.7]
    stored += [p for p in stored[:20]]  # a few stored twice (before points had an identity)
    order = rng.permutation(len(stored))
    found = tuple(np.array([stored[i][c] for i in order]) for c in range(3))
    same, replaced = plan.against_stored(sid, ts, value, found)
    copies = {}
    for s, t, v in stored:
        copies.setdefault((s, t), []).append(v)
    for i, key in enumerate(zip(sid.tolist(), ts.tolist(), strict=True)):
        there = copies.get(key, [])
        assert same[i] == (there == [value[i]]), key
        assert replaced[i] == (bool(there) and there != [value[i]]), key
