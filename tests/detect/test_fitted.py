"""The fitted model of normal: condition semantics, what it learns, gaps, self-fit, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.fitted import RISE, FittedDetector
from atoll.detect.registry import restore
from atoll.detect.threshold import onsets

MINUTE = 60_000_000


def _machine(n: int, seed: int = 0) -> np.ndarray:
    """A 50-reading cycle with noise."""
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(0, 0.05, n)


def _fitted(n: int = 3000, **params) -> FittedDetector:
    d = FittedDetector(**params)
    d.fit(_machine(n))
    return d


def test_the_flag_stays_up_for_the_whole_fault_and_clears_after_it():
    d = _fitted()
    live = _machine(3000, seed=1)
    live[1000:1400] += 0.8  # an offset for 400 readings
    scores, flags = d.detect_many(live)
    assert not flags[:1000].any()
    assert flags[1010:1400].all()
    assert not flags[1500:].any()
    assert onsets(flags).sum() == 1
    # The flag rises exactly where the score reaches the threshold; it clears with hysteresis.
    first = int(np.flatnonzero(flags)[0])
    assert scores[first] >= RISE > scores[:first].max()
    assert np.all(flags[scores >= RISE])


def test_scores_rank_the_worst_reading_first():
    d = _fitted()
    live = _machine(2000, seed=2)
    live[500] += 2.0
    live[1500] += 6.0
    scores = d.score_many(live)
    assert np.argmax(scores) == 1500 and scores[1500] > scores[500] > RISE
    assert scores.max() < 1.0  # monotone, not saturated


def test_a_flagged_state_is_not_learned_until_the_drift_rule_accepts_it():
    d = _fitted(2000, accept_after=0.5)  # accepted after 1,000 flagged readings
    live = _machine(3000, seed=3)
    live[500:] *= 1.5  # a lasting change: a wider swing
    _, flags = d.detect_many(live)
    assert flags[510:1500].all()  # not absorbed while it is being watched
    assert not flags[1700:].any()  # then learned as the new normal
    frozen = _fitted(2000, accept_after=0)  # never
    assert frozen.detect_many(live)[1][510:].all()


def test_accept_as_new_normal():
    d = _fitted()
    shifted = _machine(1000, seed=4) + 0.8
    probe = FittedDetector.from_state(d.state())
    assert probe.detect_many(shifted)[1].any()
    d.accept(shifted)
    assert not d.detect_many(_machine(500, seed=5) + 0.8)[1].any()


def test_a_gap_in_timestamps_starts_a_new_segment_like_restart():
    history = _machine(3000)
    live = _machine(600, seed=6)
    ts_h = np.arange(3000, dtype=np.int64) * MINUTE
    gapped = FittedDetector()
    gapped.fit(history, ts_h)
    assert gapped.describe()["typical_interval_us"] == MINUTE
    after_gap = ts_h[-1] + 86_400_000_000 + np.arange(600, dtype=np.int64) * MINUTE
    explicit = FittedDetector.from_state(gapped.state())
    explicit.restart()
    a = gapped.score_many(live, after_gap)
    b = explicit.score_many(live, ts_h[-1] + MINUTE + np.arange(600, dtype=np.int64) * MINUTE)
    np.testing.assert_array_equal(a, b)
    # Without the gap the context runs on across the junction: other scores at its start.
    joined = FittedDetector()
    joined.fit(history, ts_h)
    c = joined.score_many(live, ts_h[-1] + MINUTE + np.arange(600, dtype=np.int64) * MINUTE)
    assert not np.array_equal(a[:64], c[:64])


def test_without_history_it_fits_itself_on_the_first_readings():
    d = FittedDetector(self_fit=600)
    live = _machine(2000, seed=7)
    live[1500] += 5.0
    scores, flags = d.detect_many(live)
    assert not scores[:600].any() and not flags[:600].any()
    assert d.fitted and d.describe()["history"] == 600
    assert flags[1500] and not flags[700:1490].any()


def test_too_short_a_history_waits_for_more_readings():
    d = FittedDetector(self_fit=600)
    assert d.min_history() == 256
    d.fit(_machine(100))
    assert not d.fitted and d.describe()["pending"] == 100
    d.score_many(_machine(500, seed=8))
    assert d.fitted and d.describe()["history"] == 600
    # A fitted model learns a short batch of known-normal readings instead of refitting.
    before = d.describe()["history"]
    d.fit(_machine(50, seed=9))
    assert d.describe()["history"] == before


def test_the_bank_stays_within_its_cap():
    rng = np.random.default_rng(10)
    d = FittedDetector(max_bank=256, resolution=0.01)
    d.fit(rng.normal(size=5000))
    info = d.describe()
    assert info["bank_after_fit"] <= 128 and info["bank"] <= 128
    d.score_many(rng.normal(size=20000))
    info = d.describe()
    assert info["bank"] <= 128 and info["bank_cap"] == 256
    nbytes = d.nbytes()
    d.score_many(rng.normal(size=20000) * 3)
    assert d.nbytes() == nbytes


def test_a_declared_span_is_a_dead_band():
    flat = 5.0 + np.random.default_rng(11).normal(0, 0.001, 2000)
    live = flat[:500].copy()
    live[300:] += 0.02  # 2 % of a 0-1 sensor's span
    plain = FittedDetector()
    plain.fit(flat)
    declared = FittedDetector(span=1.0)
    declared.fit(flat)
    assert plain.detect_many(live)[1][300:].all()
    assert not declared.detect_many(live)[1].any()


def test_missing_readings_keep_the_condition():
    d = _fitted()
    live = _machine(300, seed=12)
    live[100:200] += 1.0
    live[150:160] = np.nan
    scores, flags = d.detect_many(live)
    assert flags[110:200].all() and not scores[150:160].any()


def test_state_round_trips_through_the_registry():
    d = _fitted()
    d.score_many(_machine(500, seed=13))
    back = restore(d.state())
    assert isinstance(back, FittedDetector) and back.describe() == d.describe()
    live = _machine(500, seed=14)
    np.testing.assert_array_equal(back.score_many(live), d.score_many(live))


def test_explain_and_describe():
    d = _fitted()
    assert d.explain_one(0.0)["band"] == 0.0
    assert d.explain_one(5.0)["band"] > 1.0
    info = d.describe()
    assert info["signals"] == ["nn", "ar", "band"] and info["history"] == 3000
    lo, hi = info["normal_range"]
    assert lo < -0.9 and hi > 0.9
    assert FittedDetector().describe() == {"fitted": False, "pending": 0, "self_fit": 512}


@pytest.mark.parametrize(
    "params",
    [
        {"window": 60, "segments": 8},
        {"margin": 0},
        {"hold": 1.0},
        {"span": -1.0},
        {"self_fit": 100},
        {"gap": 1.0},
    ],
)
def test_bad_parameters(params):
    with pytest.raises(InvalidInput):
        FittedDetector(**params)


def test_one_series_only():
    with pytest.raises(InvalidInput, match="1-D"):
        FittedDetector().fit(np.zeros((300, 2)))


def test_the_forecaster_is_fitted_on_the_finite_stretches():
    from atoll.detect.fitted import _ridge_ar

    rng = np.random.default_rng(15)
    z = np.zeros(20000)
    for t in range(1, len(z)):
        z[t] = 0.8 * z[t - 1] + 0.5 + rng.normal(0, 0.1)
    holed = z.copy()
    holed[5000:5100] = np.nan
    for series in (z, holed):
        coef = _ridge_ar(series, 3, 0.0)
        assert coef[0] == pytest.approx(0.8, abs=0.02) and abs(coef[1]) < 0.03
        assert coef[3] == pytest.approx(0.5, abs=0.05)
