from __future__ import annotations

import numpy as np

from atoll.detect.ewma import EWMAZScore
from atoll.detect.registry import restore
from atoll.detect.threshold import Thresholded


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
