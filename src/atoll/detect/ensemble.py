"""Atoll's default detector: range breaks + window novelty likelihood, with alarm suppression.

Three signals are fused by ``max``, then repeated alarms are muted for a while:

1. **Range breaks** (``extremes.py``) of the reading and of its rolling mean.
2. **Window novelty**: distance from the latest ``knn_window`` readings (standardised by slow
   EWMA statistics) to the nearest of the last ``bank_size`` windows (``knn.py``), turned into an
   anomaly likelihood (``likelihood.py``) and mapped so that ``likelihood == lik_gate`` gives 0.5.
   After such an alarm the novelty signal is muted for ``lik_quiet`` readings.
3. **Suppression**: after any output at or above ``alarm``, the next ``quiet`` outputs are 0.
   NAB (and an operator) charges for every repeated alarm, and one alarm per event is enough.

Everything is one compiled step over fixed-size arrays, so memory per series is constant
(``nbytes()``, about 27 KB) and replay runs at several hundred thousand readings/s per core.
Timestamps are not used. Non-finite readings score 0 and are not learned.

>>> import numpy as np
>>> d = EnsembleDetector()
>>> rng = np.random.default_rng(0)
>>> calm = d.score_many(10 + rng.normal(0, 1, 2000))
>>> bool((calm[300:] >= d.default_threshold).mean() < 0.01), d.score_one(60.0) >= d.default_threshold
(True, True)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numba import njit

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.extremes import range_break
from atoll.detect.knn import nearest_distance
from atoll.detect.likelihood import log_tail_score

# Float state slots.
_N, _LO, _HI, _MLO, _MHI, _EM, _EV, _LM, _LV, _BANKN, _LAST_LIK, _LAST_ALARM = range(12)
_NSTATE = 12
# Parameter slots (see EnsembleDetector.__init__ for meaning).
(_P_WARM, _P_MEANW, _P_KNNW, _P_BANK, _P_KALPHA, _P_LSHORT, _P_LALPHA, _P_LWARM, _P_GATE,
 _P_LQUIET, _P_ALARM, _P_QUIET) = range(12)


@njit(cache=True)
def _step(x, st, vals, raws, bank, window, p, commit):
    """Score reading ``x``; if ``commit``, also learn it. Reads state before writing any of it."""
    if not math.isfinite(x):
        return 0.0
    i = int(st[_N])
    nvals = vals.shape[0]
    nraws = raws.shape[0]
    meanw = int(p[_P_MEANW])
    knnw = int(p[_P_KNNW])
    warm = p[_P_WARM]

    # 1. Range breaks of the reading and of its rolling mean (ranges exclude the reading).
    s = x
    cnt = 1
    for k in range(1, min(i + 1, meanw)):
        s += vals[(i - k) % nvals]
        cnt += 1
    rmean = s / cnt
    brk = 0.0
    if i >= warm:
        brk = max(range_break(x, st[_LO], st[_HI]), range_break(rmean, st[_MLO], st[_MHI]))

    # 2. Window novelty against the bank, standardised by slow EWMA stats that include x.
    a = max(p[_P_KALPHA], 1.0 / (i + 1))
    d = x - st[_EM]
    em = st[_EM] + a * d
    ev = (1.0 - a) * (st[_EV] + a * d * d)
    lo = min(st[_LO], x) if i > 0 else x
    hi = max(st[_HI], x) if i > 0 else x
    raw = 0.0
    have_window = i >= knnw
    if have_window:
        sc = math.sqrt(ev) + 1e-3 * (hi - lo) + 1e-9
        for k in range(knnw):
            v = x if k == knnw - 1 else vals[(i - (knnw - 1 - k)) % nvals]
            window[k] = (v - em) / sc
        nbank = int(st[_BANKN])
        if nbank >= 10:
            raw = nearest_distance(bank, min(nbank, bank.shape[0]), window)

    # Likelihood of the short mean of raw novelty against its long-run distribution.
    lshort = int(p[_P_LSHORT])
    rs = raw
    rc = 1
    for k in range(1, min(i + 1, lshort)):
        rs += raws[(i - k) % nraws]
        rc += 1
    smean = rs / rc
    lik = 0.0
    if i >= p[_P_LWARM]:
        lik = log_tail_score(smean, st[_LM], st[_LV])
    nov = min(1.0, 0.5 * lik / p[_P_GATE])
    muted_nov = i - st[_LAST_LIK] <= p[_P_LQUIET]
    if muted_nov:
        nov = 0.0

    # 3. Fuse and suppress repeats.
    out = max(brk, nov)
    muted = i - st[_LAST_ALARM] <= p[_P_QUIET]
    if muted:
        out = 0.0

    if commit:
        if not muted_nov and nov >= 0.5:
            st[_LAST_LIK] = i
        if not muted and out >= p[_P_ALARM]:
            st[_LAST_ALARM] = i
        st[_LO] = lo
        st[_HI] = hi
        st[_MLO] = min(st[_MLO], rmean) if i > 0 else rmean
        st[_MHI] = max(st[_MHI], rmean) if i > 0 else rmean
        st[_EM] = em
        st[_EV] = ev
        la = max(p[_P_LALPHA], 1.0 / (i + 1))
        dl = smean - st[_LM]
        st[_LM] += la * dl
        st[_LV] = (1.0 - la) * (st[_LV] + la * dl * dl)
        vals[i % nvals] = x
        raws[i % nraws] = raw
        if have_window:
            nbank = int(st[_BANKN])
            bank[nbank % bank.shape[0], :] = window
            st[_BANKN] = nbank + 1
        st[_N] = i + 1
    return out


@njit(cache=True)
def _replay(xs, st, vals, raws, bank, window, p, out):
    for i in range(xs.shape[0]):
        out[i] = _step(xs[i], st, vals, raws, bank, window, p, True)


class EnsembleDetector(StreamingDetector):
    """Range breaks + kNN window-novelty likelihood, max-fused, with repeat-alarm suppression.

    Parameters are global (the same for every stream); the defaults were tuned on NAB as a whole
    (see docs/DETECTION.md).
    """

    kind: ClassVar[str] = "ensemble"
    version: ClassVar[int] = 1
    _state_arrays: ClassVar[tuple[str, ...]] = ("st", "vals", "raws", "bank")
    default_threshold: ClassVar[float] = 0.52

    def __init__(
        self,
        warmup: int = 150,
        mean_window: int = 20,
        knn_window: int = 8,
        bank_size: int = 400,
        knn_alpha: float = 0.001,
        lik_short: int = 10,
        lik_alpha: float = 0.002,
        lik_warmup: int = 100,
        lik_gate: float = 0.4,
        lik_quiet: int = 200,
        alarm: float = 0.52,
        quiet: int = 30,
    ) -> None:
        ints = {"warmup": warmup, "mean_window": mean_window, "knn_window": knn_window,
                "bank_size": bank_size, "lik_short": lik_short, "lik_warmup": lik_warmup,
                "lik_quiet": lik_quiet, "quiet": quiet}
        for name, value in ints.items():
            if int(value) != value or value < (0 if name in ("warmup", "lik_warmup", "lik_quiet", "quiet") else 1):
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
        for name, value in {"knn_alpha": knn_alpha, "lik_alpha": lik_alpha}.items():
            if not 0.0 < value <= 1.0:
                raise InvalidInput(f"{name} must be in (0, 1], got {value!r}")
        if not 0.0 < lik_gate <= 1.0 or not 0.0 < alarm <= 1.0:
            raise InvalidInput("lik_gate and alarm must be in (0, 1]")
        self.warmup, self.mean_window, self.knn_window = int(warmup), int(mean_window), int(knn_window)
        self.bank_size, self.knn_alpha = int(bank_size), float(knn_alpha)
        self.lik_short, self.lik_alpha, self.lik_warmup = int(lik_short), float(lik_alpha), int(lik_warmup)
        self.lik_gate, self.lik_quiet = float(lik_gate), int(lik_quiet)
        self.alarm, self.quiet = float(alarm), int(quiet)
        self._p = np.array([self.warmup, self.mean_window, self.knn_window, self.bank_size,
                            self.knn_alpha, self.lik_short, self.lik_alpha, self.lik_warmup,
                            self.lik_gate, self.lik_quiet, self.alarm, self.quiet], dtype=np.float64)
        self.st = np.zeros(_NSTATE)
        self.st[_LAST_LIK] = self.st[_LAST_ALARM] = -1e18
        self.vals = np.zeros(max(self.mean_window, self.knn_window))
        self.raws = np.zeros(self.lik_short)
        self.bank = np.zeros((self.bank_size, self.knn_window))
        self._window = np.zeros(self.knn_window)

    def params(self):
        return {"warmup": self.warmup, "mean_window": self.mean_window,
                "knn_window": self.knn_window, "bank_size": self.bank_size,
                "knn_alpha": self.knn_alpha, "lik_short": self.lik_short,
                "lik_alpha": self.lik_alpha, "lik_warmup": self.lik_warmup,
                "lik_gate": self.lik_gate, "lik_quiet": self.lik_quiet,
                "alarm": self.alarm, "quiet": self.quiet}

    def _run(self, x: float, commit: bool) -> float:
        return float(_step(x, self.st, self.vals, self.raws, self.bank, self._window, self._p, commit))

    def score_one(self, x, ts=None):
        return self._run(as_scalar(x), False)

    def learn_one(self, x, ts=None):
        self._run(as_scalar(x), True)

    def score_many(self, values, timestamps=None):
        xs = np.ascontiguousarray(values, dtype=np.float64)
        if xs.ndim != 1:
            raise InvalidInput(f"EnsembleDetector takes a 1-D series, got shape {xs.shape}",
                               hint="score each sensor with its own detector, or use a multivariate one")
        out = np.empty(xs.shape[0])
        _replay(xs, self.st, self.vals, self.raws, self.bank, self._window, self._p, out)
        return out

