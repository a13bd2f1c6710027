"""Variability bursts: how rough the stream is now, against how rough it usually is.

The naive persistence forecast ("the next reading equals this one") errs by ``|x_t - x_(t-1)|``.
The median of its last ``window`` errors is a robust measure of short-term roughness: one spike
barely moves it, while a stretch of new oscillation, noise or activity moves it a lot. A burst is
that median far above its own long-run level, in log units. The ensemble turns the log ratio into
Numenta's anomaly likelihood (``likelihood.py``), like its window-novelty scales, so it is judged
against the stream's own history of bursts.

The last ``window - 1`` errors are kept as a ring plus a sorted copy (``tails.tail_push``), and the
current error is merged in on the fly, so scoring a reading never changes the state.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def kth_with(ordered: np.ndarray, n: int, extra: float, k: int) -> float:
    """The ``k``-th smallest (0-based) of ``ordered[:n]`` (sorted) together with ``extra``."""
    j = 0
    placed = False
    value = extra
    for rank in range(min(k, n) + 1):
        if not placed and (j >= n or extra <= ordered[j]):
            value = extra
            placed = True
        else:
            value = ordered[j]
            j += 1
        if rank == k:
            break
    return value


@njit(cache=True, nogil=True)
def burst_ratio(roughness: float, usual: float, floor: float) -> float:
    """``max(0, ln((roughness + floor) / (usual + floor)))``: 0 unless rougher than usual.

    ``floor`` (> 0) keeps changes in negligible jitter, e.g. the quantisation of a flat stream,
    from counting as bursts.
    """
    return max(0.0, math.log((roughness + floor) / (usual + floor)))
