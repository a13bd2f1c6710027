from __future__ import annotations

import numpy as np

from atoll.detect.gaussian import WindowedGaussian


def test_window_forgets_old_regime():
    d = WindowedGaussian(window=100, min_count=10)
    rng = np.random.default_rng(0)
    d.score_many(rng.normal(0, 1, 500))
    assert d.score_one(50.0) > 0.9999
    d.score_many(rng.normal(50, 1, 100))  # a full window of the new level
    assert d.score_one(50.0) < 0.99


def test_large_offsets_keep_precision():
    d = WindowedGaussian(window=200, min_count=10)
    rng = np.random.default_rng(1)
    d.score_many(1e9 + rng.normal(0, 1, 5000))
    assert d.score_one(1e9) < 0.9
    assert d.score_one(1e9 + 8) > 0.9999
