"""Range breaks: a reading that leaves the range of everything seen before is news.

On NAB this one signal alone scores about 57 (standard profile): most labelled anomalies are
new highs or lows of the value or of its short rolling mean. The score grows with how far the
range is broken, in units of the range, so one global threshold works across streams.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def range_break(x: float, lo: float, hi: float) -> float:
    """0 inside ``[lo, hi]``; ``0.5 + excess/range`` (capped at 1) outside it."""
    width = hi - lo
    if width <= 0.0:
        return 0.0
    if x > hi:
        return min(1.0, 0.5 + (x - hi) / width)
    if x < lo:
        return min(1.0, 0.5 + (lo - x) / width)
    return 0.0


@njit(cache=True, nogil=True)
def supported_break(mean: float, x: float, lo: float, hi: float) -> float:
    """Range break of a rolling ``mean`` that the reading ``x`` itself takes part in.

    A rolling mean also creeps to a new high when an old low reading leaves its window, while the
    newest reading sits well inside the range. That is no news, so the break counts only if ``x``
    lies beyond the same bound of ``[lo, hi]`` as the mean.
    """
    if (mean > hi and x >= hi) or (mean < lo and x <= lo):
        return range_break(mean, lo, hi)
    return 0.0
