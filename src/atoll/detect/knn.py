"""Nearest-neighbour novelty of the latest window of readings (in the spirit of NAB's KNN-CAD).

The bank is a fixed ring of past windows, so memory and time per reading are bounded.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, nogil=True)
def nearest_distance(bank: np.ndarray, count: int, window: np.ndarray) -> float:
    """RMS distance from ``window`` to the closest of the first ``count`` rows of ``bank``.

    A full scan without early abandoning: on noisy streams the early-exit branch mispredicts so
    often that the plain loop, which the compiler vectorises, is several times faster.
    """
    width = window.shape[0]
    best = np.inf
    for j in range(count):
        d = 0.0
        for k in range(width):
            t = bank[j, k] - window[k]
            d += t * t
        best = min(best, d)
    return math.sqrt(best / width)
