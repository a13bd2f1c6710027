from __future__ import annotations

import numpy as np

from atoll.detect.ewma import EWMAZScore
from atoll.detect.registry import restore
from atoll.detect.threshold import Thresholded, decide_many, onsets


def test_decides_at_the_detector_default_or_given_threshold():
    inner = EWMAZScore(min_count=5)
    assert Thresholded(inner).threshold == inner.default_threshold
    d = Thresholded(EWMAZScore(min_count=5), threshold=0.999)
    values = np.r_[np.random.default_rng(0).normal(0, 1, 300), 40.0]
    scores, flags = d.detect_many(values)
    assert flags[-1] and flags.sum() <= 3
    np.testing.assert_array_equal(flags, scores >= 0.999)


def test_state_keeps_the_threshold_and_the_model():
    d = Thresholded(EWMAZScore(min_count=5), threshold=0.95)
    d.score_many(np.arange(100.0))
    back = restore(d.state())
    assert isinstance(back, Thresholded) and back.threshold == 0.95
    assert back.score_one(3.0) == d.score_one(3.0)
    assert back.predict_one(1e6)


def _condition_case():
    from atoll.detect.fitted import FittedDetector

    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(1).normal(0, 0.05, len(t))
    det = FittedDetector()
    det.fit(x[:3000])
    live = x[3000:].copy()
    live[300:500] += 0.8
    return det, live


def test_at_the_default_threshold_a_condition_detector_decides_itself():
    det, live = _condition_case()
    own = Thresholded(_copy(det))
    scores, flags = own.detect_many(live)
    np.testing.assert_array_equal((scores, flags), decide_many(_copy(det), live))
    # Hysteresis: the flag clears only after several readings below the threshold.
    assert flags[310:500].all() and (flags & (scores < own.threshold)).sum() >= 10
    assert onsets(flags).sum() == 1
    # A threshold of one's own is "score >= threshold", without hysteresis.
    plain = Thresholded(_copy(det), threshold=0.6)
    s2, f2 = plain.detect_many(live)
    np.testing.assert_array_equal(s2, scores)
    np.testing.assert_array_equal(f2, scores >= 0.6)


def test_detect_one_and_predict_one_follow_the_condition():
    det, live = _condition_case()
    one = Thresholded(_copy(det))
    batch = Thresholded(_copy(det)).detect_many(live)[1]
    looked, stepped = [], []
    for v in live:
        looked.append(one.predict_one(v))
        stepped.append(one.detect_one(v)[1])
    np.testing.assert_array_equal(looked, batch)
    np.testing.assert_array_equal(stepped, batch)


def _copy(det):
    """A copy of a fitted detector, through its state."""
    return restore(det.state())
