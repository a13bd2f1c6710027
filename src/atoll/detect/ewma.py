"""EWMA z-score: distance from an exponentially weighted
mean, in exponentially weighted standard deviations."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.stats import two_sided_tail_score

# st = [count, mean, var]


@njit(cache=True, nogil=True)
def _score(st, x, min_count):
    if st[0] < min_count or math.isnan(x):
        return 0.0
    std = max(math.sqrt(st[2]), 1e-9 * max(1.0, abs(st[1])))
    return two_sided_tail_score((x - st[1]) / std)


@njit(cache=True, nogil=True)
def _learn(st, x, alpha, clip, min_count):
    if math.isnan(x):
        return
    diff = x - st[1]
    if st[0] >= min_count and clip > 0.0 and st[2] > 1e-12 * (1.0 + st[1] * st[1]):
        # Huber-style: an outlier moves the model only as far as a reading ``clip`` sd out would.
        # (Not while the spread is ~0: a flat start would pin the model forever.)
        lim = clip * math.sqrt(st[2])
        diff = min(max(diff, -lim), lim)
    st[0] += 1
    # Plain running mean until there are 1/alpha readings: a fast, unbiased start.
    a = max(alpha, 1.0 / st[0])
    incr = a * diff
    st[1] += incr
    st[2] = (1.0 - a) * (st[2] + diff * incr)


@njit(cache=True, nogil=True)
def _replay(st, xs, alpha, clip, min_count, out):
    for i in range(xs.shape[0]):
        out[i] = _score(st, xs[i], min_count)
        _learn(st, xs[i], alpha, clip, min_count)


class EWMAZScore(StreamingDetector):
    """Tail score of the reading's z-score against EWMA mean and variance (``alpha`` per reading).

    ``clip > 0`` limits how far one reading moves the model (in sd); off by default because on
    NAB it slows adaptation to level shifts more than it helps (37.5 → 13.4 standard at 5 sd).

    >>> d = EWMAZScore(alpha=0.1, min_count=3)
    >>> for v in [10.0, 10.5, 9.5, 10.2, 9.8]:
    ...     d.learn_one(v)
    >>> round(d.score_one(10.0), 2), d.score_one(20.0) > 0.99
    (0.0, True)
    """

    kind = "ewma"
    _state_arrays = ("st",)
    default_threshold = 0.9999

    def __init__(self, alpha: float = 0.01, min_count: int = 30, clip: float = 0.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha, self.min_count, self.clip = float(alpha), int(min_count), float(clip)
        self.st = np.zeros(3)

    def params(self):
        return {"alpha": self.alpha, "min_count": self.min_count, "clip": self.clip}

    def learn_one(self, x, ts=None):
        _learn(self.st, as_scalar(x), self.alpha, self.clip, self.min_count)

    def score_one(self, x, ts=None):
        return float(_score(self.st, as_scalar(x), self.min_count))

    def score_many(self, values, timestamps=None):
        xs = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty(len(xs))
        _replay(self.st, xs, self.alpha, self.clip, self.min_count, out)
        return out
