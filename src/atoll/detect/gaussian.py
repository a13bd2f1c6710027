"""Windowed Gaussian: how unusual is a reading given the mean and spread of the last ``window``?

The classic NAB baseline, with exact sliding sums instead of periodic re-fits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.stats import two_sided_tail_score

# st = [count, next_pos, sum, sum_sq, shift, since_recompute]
_N, _POS, _S1, _S2, _SHIFT, _SINCE = range(6)


@njit(cache=True, nogil=True)
def _score(buf, st, x, min_count):
    n = st[_N]
    if n < min_count or math.isnan(x):
        return 0.0
    mean = st[_S1] / n
    var = max(st[_S2] / n - mean * mean, 0.0)
    std = max(math.sqrt(var), 1e-9 * max(1.0, abs(mean + st[_SHIFT])))
    return two_sided_tail_score((x - st[_SHIFT] - mean) / std)


@njit(cache=True, nogil=True)
def _learn(buf, st, x):
    if math.isnan(x):
        return
    w = buf.shape[0]
    if st[_N] == 0:
        st[_SHIFT] = x  # sums of shifted values keep precision for large offsets
    v = x - st[_SHIFT]
    pos = int(st[_POS])
    if st[_N] == w:
        old = buf[pos]
        st[_S1] -= old
        st[_S2] -= old * old
    else:
        st[_N] += 1
    buf[pos] = v
    st[_S1] += v
    st[_S2] += v * v
    st[_POS] = (pos + 1) % w
    st[_SINCE] += 1
    if st[_SINCE] >= w:  # re-sum now and then so rounding cannot drift
        n = int(st[_N])
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            s1 += buf[i]
            s2 += buf[i] * buf[i]
        st[_S1] = s1
        st[_S2] = s2
        st[_SINCE] = 0


@njit(cache=True, nogil=True)
def _replay(buf, st, xs, min_count, out):
    for i in range(xs.shape[0]):
        out[i] = _score(buf, st, xs[i], min_count)
        _learn(buf, st, xs[i])


class WindowedGaussian(StreamingDetector):
    """Two-sided Gaussian tail score against a sliding window of the last ``window`` readings.

    >>> d = WindowedGaussian(window=50, min_count=5)
    >>> for v in [1.0, 2.0, 1.5, 1.2, 1.8, 1.4]:
    ...     d.learn_one(v)
    >>> d.score_one(1.5) < 0.5 < d.score_one(9.0)
    True
    """

    kind = "windowed_gaussian"
    _state_arrays = ("buf", "st")
    default_threshold = 0.9999

    def __init__(self, window: int = 1000, min_count: int = 30) -> None:
        self.window, self.min_count = int(window), int(min_count)
        self.buf = np.zeros(self.window)
        self.st = np.zeros(6)

    def params(self):
        return {"window": self.window, "min_count": self.min_count}

    def learn_one(self, x, ts=None):
        _learn(self.buf, self.st, as_scalar(x))

    def score_one(self, x, ts=None):
        return float(_score(self.buf, self.st, as_scalar(x), self.min_count))

    def score_many(self, values, timestamps=None):
        xs = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty(len(xs))
        _replay(self.buf, self.st, xs, self.min_count, out)
        return out
