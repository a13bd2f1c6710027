"""Tail breaks: a reading far outside the recent 1 %..99 % band, measured in units of that band.

A range break (``extremes.py``) goes blind once one huge spike has stretched the range: a later
anomaly of half that size is inside the range forever. A tail break judges the reading against
quantiles of a fixed-size sample of recent readings instead, so an old spike drops out of the
sample and stops hiding new ones. The sample is a ring kept alongside a sorted copy, updated in
O(size) per stored reading, so memory is fixed and no sort runs per reading.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def tail_excess(x: float, ordered: np.ndarray, count: int, q: float) -> float:
    """How far ``x`` lies outside the ``[q, 1-q]``
    quantile band, in widths of that band (0 inside)."""
    n = min(count, ordered.shape[0])
    if n < 2:
        return 0.0
    lo = ordered[int(q * (n - 1))]
    hi = ordered[int((1.0 - q) * (n - 1))]
    if hi <= lo:
        return 0.0
    return max(x - hi, lo - x, 0.0) / (hi - lo)


@njit(cache=True, nogil=True)
def tail_push(x: float, ring: np.ndarray, ordered: np.ndarray, count: int) -> None:
    """Store ``x`` as sample number ``count``, evicting the oldest once the ring is full."""
    size = ring.shape[0]
    n = count
    if count >= size:
        old = ring[count % size]
        j = np.searchsorted(ordered, old)  # old is present: the ring and its sorted copy agree
        for k in range(j, size - 1):
            ordered[k] = ordered[k + 1]
        n = size - 1
    j = np.searchsorted(ordered[:n], x)
    for k in range(n, j, -1):
        ordered[k] = ordered[k - 1]
    ordered[j] = x
    ring[count % size] = x
