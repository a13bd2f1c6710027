"""Compiled statistics shared by detectors: tail scores and the chi-square distribution."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT2 = math.sqrt(2.0)


_KNEE = 4.0
_AT_KNEE = math.erf(_KNEE / _SQRT2)


@njit(cache=True, nogil=True)
def two_sided_tail_score(z: float) -> float:
    """``1 - P(|Z| >= |z|)`` for a standard normal up to ``|z| = 4``, then still rising towards 1.

    Past the knee the exact value rounds to 1.0 in float64, which would make a 5-sigma and a
    50-sigma reading tie; ranking them is what a threshold sweep needs.
    """
    a = abs(z)
    if a <= _KNEE:
        return math.erf(a / _SQRT2)
    return _AT_KNEE + (1.0 - _AT_KNEE) * (1.0 - _KNEE / a)


@njit(cache=True, nogil=True)
def _gamma_p(a: float, x: float) -> float:
    """Regularised lower incomplete gamma ``P(a, x)``
    (series below ``a + 1``, else a continued fraction)."""
    if x <= 0.0:
        return 0.0
    lg = math.lgamma(a)
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(500):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, total * math.exp(-x + a * math.log(x) - lg))
    # Lentz's continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return max(0.0, 1.0 - math.exp(-x + a * math.log(x) - lg) * h)


@njit(cache=True, nogil=True)
def chi2_cdf(x: float, dof: int) -> float:
    return _gamma_p(0.5 * dof, 0.5 * x)


def as_micros(timestamps) -> np.ndarray | None:
    """Timestamps as int64 µs since the epoch (accepts datetime64 or integer µs)."""
    if timestamps is None:
        return None
    ts = np.asarray(timestamps)
    if np.issubdtype(ts.dtype, np.datetime64):
        return ts.astype("datetime64[us]").astype(np.int64)
    return ts.astype(np.int64)
