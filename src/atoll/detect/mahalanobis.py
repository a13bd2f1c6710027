"""Mahalanobis detector: a machine's sensors judged together, so a broken correlation is an anomaly
even when every sensor is inside its own usual range."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector
from atoll.detect.stats import chi2_cdf


@njit(cache=True, nogil=True)
def _distance2(mean, cov, x, ridge):
    k = mean.shape[0]
    r = np.empty(k)
    for i in range(k):
        r[i] = 0.0 if math.isnan(x[i]) else x[i] - mean[i]  # a missing sensor says nothing
    scale = 0.0
    for i in range(k):
        scale += cov[i, i]
    scale = max(scale / k, 1e-300)
    # Cholesky of cov + ridge, then d2 = |L^-1 r|^2; the ridge keeps collinear sensors invertible.
    L = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            s = cov[i, j] + (ridge * scale + 1e-12 if i == j else 0.0)
            for m in range(j):
                s -= L[i, m] * L[j, m]
            if i == j:
                L[i, i] = math.sqrt(max(s, 1e-300))
            else:
                L[i, j] = s / L[j, j]
    d2 = 0.0
    y = np.empty(k)
    for i in range(k):
        s = r[i]
        for m in range(i):
            s -= L[i, m] * y[m]
        y[i] = s / L[i, i]
        d2 += y[i] * y[i]
    return d2


@njit(cache=True, nogil=True)
def _score(st, mean, cov, x, ridge, min_count):
    if st[0] < min_count:
        return 0.0
    return chi2_cdf(_distance2(mean, cov, x, ridge), mean.shape[0])


@njit(cache=True, nogil=True)
def _learn(st, mean, cov, x, alpha, ridge, min_count):
    k = mean.shape[0]
    # Huber-style: an outlier moves the model only as far as a reading at the limit would, so one
    # anomaly does not blind the detector to the next.
    shrink = 1.0
    spread = 0.0
    level = 0.0
    for i in range(k):
        spread += cov[i, i]
        level += mean[i] * mean[i]
    # Not while the spread is ~0: a flat start would pin the model forever.
    if st[0] >= min_count and spread > 1e-12 * (1.0 + level):
        limit = max(25.0, 4.0 * k)
        d2 = _distance2(mean, cov, x, ridge)
        if d2 > limit:
            shrink = math.sqrt(limit / d2)
    st[0] += 1
    a = max(alpha, 1.0 / st[0])
    diff = np.empty(k)
    for i in range(k):
        diff[i] = 0.0 if math.isnan(x[i]) else (x[i] - mean[i]) * shrink
        mean[i] += a * diff[i]
    for i in range(k):
        for j in range(k):
            cov[i, j] = (1.0 - a) * (cov[i, j] + a * diff[i] * diff[j])


@njit(cache=True, nogil=True)
def _replay(st, mean, cov, xs, alpha, ridge, min_count, out):
    for t in range(xs.shape[0]):
        out[t] = _score(st, mean, cov, xs[t], ridge, min_count)
        _learn(st, mean, cov, xs[t], alpha, ridge, min_count)


class Mahalanobis(StreamingDetector):
    """Chi-square tail score of the Mahalanobis distance to EWMA mean and covariance.

    ``n_features`` is fixed by the first reading; memory is ``O(n_features²)``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> d = Mahalanobis(min_count=20)
    >>> for _ in range(300):
    ...     a = rng.normal()
    ...     d.learn_one(np.array([a, a + 0.05 * rng.normal()]))
    >>> d.score_one(np.array([1.0, 1.0])) < 0.9 < d.score_one(np.array([1.0, -1.0]))
    True
    """

    kind = "mahalanobis"
    multivariate = True
    _state_arrays = ("st", "mean", "cov")
    default_threshold = 0.9999

    def __init__(
        self,
        alpha: float = 0.01,
        ridge: float = 1e-3,
        min_count: int = 30,
        n_features: int | None = None,
    ) -> None:
        self.alpha, self.ridge, self.min_count = float(alpha), float(ridge), int(min_count)
        self.n_features = n_features
        self.st = np.zeros(1)
        k = n_features or 0
        self.mean, self.cov = np.zeros(k), np.zeros((k, k))

    def params(self):
        return {
            "alpha": self.alpha,
            "ridge": self.ridge,
            "min_count": self.min_count,
            "n_features": self.n_features,
        }

    def _vec(self, x) -> np.ndarray:
        v = np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel()
        if self.n_features is None:
            self.n_features = len(v)
            self.mean, self.cov = np.zeros(len(v)), np.zeros((len(v), len(v)))
        elif len(v) != self.n_features:
            raise InvalidInput(
                f"expected {self.n_features} values per reading, got {len(v)}",
                hint="send every sensor of the machine in each reading (NaN if missing)",
            )
        return v

    def learn_one(self, x, ts=None):
        _learn(self.st, self.mean, self.cov, self._vec(x), self.alpha, self.ridge, self.min_count)

    def score_one(self, x, ts=None):
        return float(_score(self.st, self.mean, self.cov, self._vec(x), self.ridge, self.min_count))

    def score_many(self, values, timestamps=None):
        xs = np.asarray(values, dtype=np.float64)
        xs = np.ascontiguousarray(xs.reshape(len(xs), -1))
        if len(xs):
            self._vec(xs[0])
        out = np.empty(len(xs))
        _replay(self.st, self.mean, self.cov, xs, self.alpha, self.ridge, self.min_count, out)
        return out
