"""Anomaly likelihood (Numenta's HTM post-processing, Ahmad et al. 2017), in log form.

A raw novelty score is noisy and its scale differs per stream. The likelihood compares the mean
of the last few raw scores with the long-run distribution of that mean and reports how far into
the Gaussian tail it lies: ``-log10(tail) / 10``, so 0.5 means a 1-in-100,000 event.
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, nogil=True)
def log_tail_score(short_mean: float, mean: float, var: float) -> float:
    """``min(1, -log10(P(Z > z)) / 10)`` for ``z = (short_mean - mean) / std``; 0 below the mean."""
    sd = max(math.sqrt(var) + 1e-6 * abs(mean), 1e-12)
    z = (short_mean - mean) / sd
    if z <= 0.0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return min(1.0, -math.log10(max(tail, 1e-300)) / 10.0)
