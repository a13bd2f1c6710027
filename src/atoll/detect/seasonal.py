"""Seasonal baseline: each reading is compared with
what is usual for its time slot (e.g. hour of day)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.stats import as_micros, two_sided_tail_score

# st = [count, global_mean, residual_var]
_NO_TS = -(2**62)


@njit(cache=True, nogil=True)
def _slot(st, ts, slot_us, n_slots):
    if ts == _NO_TS:  # no clock: one slot per reading, cycling with period n_slots
        return int(st[0]) % n_slots
    return int((ts // slot_us) % n_slots)


@njit(cache=True, nogil=True)
def _expected(st, means, counts, k, min_slot):
    return means[k] if counts[k] >= min_slot else st[1]


@njit(cache=True, nogil=True)
def _score(st, means, counts, x, ts, slot_us, n_slots, min_slot, min_count):
    if st[0] < min_count or math.isnan(x):
        return 0.0
    k = _slot(st, ts, slot_us, n_slots)
    resid = x - _expected(st, means, counts, k, min_slot)
    std = max(math.sqrt(st[2]), 1e-9 * max(1.0, abs(st[1])))
    return two_sided_tail_score(resid / std)


@njit(cache=True, nogil=True)
def _learn(st, means, counts, x, ts, slot_us, n_slots, min_slot, alpha, resid_alpha):
    if math.isnan(x):
        return
    k = _slot(st, ts, slot_us, n_slots)
    resid = x - _expected(st, means, counts, k, min_slot)
    st[0] += 1
    a = max(resid_alpha, 1.0 / st[0])
    st[1] += a * (x - st[1])
    st[2] += a * (resid * resid - st[2])
    counts[k] += 1
    b = max(alpha, 1.0 / counts[k])
    means[k] += b * (x - means[k])


@njit(cache=True, nogil=True)
def _replay(
    st, means, counts, xs, tss, slot_us, n_slots, min_slot, min_count, alpha, resid_alpha, out
):
    for i in range(xs.shape[0]):
        out[i] = _score(st, means, counts, xs[i], tss[i], slot_us, n_slots, min_slot, min_count)
        _learn(st, means, counts, xs[i], tss[i], slot_us, n_slots, min_slot, alpha, resid_alpha)


class SeasonalBaseline(StreamingDetector):
    """Residual against a per-slot EWMA mean (``slots`` slots of ``slot_seconds``), scaled by the
    EWMA residual spread. Defaults model the day in hours; without timestamps the period is
    ``slots`` readings.

    >>> d = SeasonalBaseline(slot_seconds=1, slots=2, min_count=4, min_slot=2)
    >>> for i in range(40):
    ...     d.learn_one(10.0 if i % 2 else 0.0, ts=i * 1_000_000)
    >>> d.score_one(10.0, ts=41 * 1_000_000) < 0.5 < d.score_one(0.0, ts=41 * 1_000_000)
    True
    """

    kind = "seasonal"
    _state_arrays = ("st", "means", "counts")
    default_threshold = 0.9999

    def __init__(
        self,
        slot_seconds: float = 3600.0,
        slots: int = 24,
        alpha: float = 0.1,
        resid_alpha: float = 0.01,
        min_slot: int = 3,
        min_count: int = 30,
    ) -> None:
        self.slot_seconds, self.slots = float(slot_seconds), int(slots)
        self.alpha, self.resid_alpha = float(alpha), float(resid_alpha)
        self.min_slot, self.min_count = int(min_slot), int(min_count)
        self._slot_us = max(1, int(self.slot_seconds * 1e6))
        self.st = np.zeros(3)
        self.means = np.zeros(self.slots)
        self.counts = np.zeros(self.slots)

    def params(self):
        return {
            "slot_seconds": self.slot_seconds,
            "slots": self.slots,
            "alpha": self.alpha,
            "resid_alpha": self.resid_alpha,
            "min_slot": self.min_slot,
            "min_count": self.min_count,
        }

    def _ts(self, ts):
        return _NO_TS if ts is None else int(ts)

    def learn_one(self, x, ts=None):
        _learn(
            self.st,
            self.means,
            self.counts,
            as_scalar(x),
            self._ts(ts),
            self._slot_us,
            self.slots,
            self.min_slot,
            self.alpha,
            self.resid_alpha,
        )

    def score_one(self, x, ts=None):
        return float(
            _score(
                self.st,
                self.means,
                self.counts,
                as_scalar(x),
                self._ts(ts),
                self._slot_us,
                self.slots,
                self.min_slot,
                self.min_count,
            )
        )

    def score_many(self, values, timestamps=None):
        xs = np.ascontiguousarray(values, dtype=np.float64)
        tss = as_micros(timestamps)
        if tss is None:
            tss = np.full(len(xs), _NO_TS, dtype=np.int64)
        out = np.empty(len(xs))
        _replay(
            self.st,
            self.means,
            self.counts,
            xs,
            np.ascontiguousarray(tss),
            self._slot_us,
            self.slots,
            self.min_slot,
            self.min_count,
            self.alpha,
            self.resid_alpha,
            out,
        )
        return out
