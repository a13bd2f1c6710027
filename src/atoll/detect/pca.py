"""A machine's healthy baseline across its sensors, fitted on history: ``pca`` (T² and SPE).

Multivariate statistical process control, as plants have run it for decades: ``fit(history)``
says "the machine was healthy then". Each sensor is standardised by its history (median and
standard deviation), the standardised vector is smoothed by an EWMA over about ``smooth``
readings (a fault moves the mean; single noisy readings do not), and a PCA of the smoothed
vectors keeps the components that explain ``variance`` of the healthy variation. Two statistics
then judge each new reading:

* **T²**: how far the reading is along the directions the healthy machine varies in (a known
  relation pushed too far: all of load, current and flow too high);
* **SPE** (squared prediction error, Q): how far it is off them (a relation that broke: current
  up while load and flow stay put).

Each is divided by a threshold calibrated on the history itself: the first ``hold`` share fits
the baseline, the rest is judged online against it, and the threshold is ``margin`` times the
highest value seen there. The baseline is then refitted on all of the history, keeping the
thresholds. ``z = max(T²/thr_T, SPE/thr_Q)``; the score is ``z / (1 + z)`` (0.5 at threshold,
``default_threshold``), as for ``fitted``.

**Condition.** ``detect_many`` keeps a flag with hysteresis: it rises at ``z >= 1`` and clears
after ``clear_after`` readings in a row with ``z < clear``. The baseline never learns online:
it changes only by ``fit`` or by ``accept(values)``, an operator's "accept as new normal": those
readings set the baseline's level (a new set point, a recalibrated sensor), their spread is
pooled with the history's (weighted by counts), the thresholds stay, and the flag clears.

**Missing sensors.** A sensor with no reading (NaN) takes the value its peers imply under the
baseline (the least-squares fit of the components to the sensors that did report), so a gap
neither raises nor clears anything; a reading with no sensor at all is skipped.

**Spikes too.** The same two statistics of the reading itself (not smoothed) catch a single wild
reading that the smoothing would dilute. One reading is weaker evidence than a sustained shift,
so their thresholds are ``spike_margin`` (not ``margin``) times the highest value seen in
calibration. ``z`` is the largest of the four.

**Why it explains itself.** ``explain_one`` splits the statistic furthest past its threshold over
the sensors: for SPE each sensor's squared residual, for T² each sensor's part of the distance;
shares sum to 1.

**Without history.** An unfitted detector collects its first ``self_fit`` readings (scored 0) and
fits itself on them.

State: ``O(k²)`` floats for ``k`` sensors plus the self-fit buffer (``self_fit * k``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> load = 1 + 0.1 * np.sin(np.arange(3000) / 50)
>>> x = np.column_stack([load, 2 * load, load + 1]) + rng.normal(0, 0.01, (3000, 3))
>>> d = PCABaseline()
>>> d.fit(x[:2000])
>>> live = x[2000:].copy()
>>> live[500:700, 1] += 0.1            # the second sensor drifts away from the other two
>>> scores, flags = d.detect_many(live)
>>> bool(flags[:500].any()), bool(flags[520:700].all()), bool(flags[800:].any())
(False, True, False)
>>> top = max(d.explain_one(live[600]).items(), key=lambda kv: kv[1])
>>> top[0]
1
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numba import njit

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector

# Integer state slots (``ist``).
_FITTED, _ON, _CALM, _COMPONENTS, _HISTORY, _PENDING, _PRIMED, _COUNT = range(8)
_NI = 8
# Float state slots (``fst``).
_THR_T, _THR_Q, _CLEAR, _ALPHA, _THR_TE, _THR_QE = range(6)
_NF = 6
_ONLINE, _PEEK, _TRAIN = 0, 1, 2
#: The score at which the flag rises (``z == 1``).
RISE = 0.5


@njit(cache=True, nogil=True)
def _stats(d, basis, lam, r):
    """(T², SPE) of the deviation ``d`` from the baseline."""
    t2 = 0.0
    spe = 0.0
    for j in range(d.shape[0]):
        spe += d[j] * d[j]
    for c in range(r):
        p = 0.0
        for j in range(d.shape[0]):
            p += basis[j, c] * d[j]
        t2 += p * p / lam[c]
        spe -= p * p  # the basis is orthonormal: |d|² = |P'd|² + |residual|²
    return t2, max(spe, 0.0)


@njit(cache=True, nogil=True)
def _impute(d, seen, basis, r):
    """Fill the deviations of unseen sensors from the baseline's components, by alternating
    projection (the least-squares fit of the seen ones, without a matrix solve)."""
    k = d.shape[0]
    for j in range(k):
        if not seen[j]:
            d[j] = 0.0
    for _ in range(20):
        for j in range(k):
            if not seen[j]:
                v = 0.0
                for c in range(r):
                    p = 0.0
                    for i in range(k):
                        p += basis[i, c] * d[i]
                    v += basis[j, c] * p
                d[j] = v


@njit(cache=True, nogil=True)
def _run(xs, ist, fst, med, sd, mu, basis, lam, ewma, clear_after, mode, out_s, out_f, out_z):
    """Judge ``xs`` (readings × sensors) in order. ``_ONLINE``: smooth, score, decide.
    ``_PEEK``: the same for one reading, writing nothing. ``_TRAIN``: smooth and report the raw
    statistics (thresholds are not applied). ``out_z`` gets (T², SPE) of the smoothed reading
    and of the reading itself, each divided by its threshold (raw in ``_TRAIN``)."""
    k = med.shape[0]
    r = ist[_COMPONENTS]
    a = fst[_ALPHA]
    s = np.empty(k)
    d = np.empty(k)
    e = np.empty(k)
    seen = np.empty(k, np.bool_)
    on, calm, primed = ist[_ON], ist[_CALM], ist[_PRIMED]
    for t in range(xs.shape[0]):
        observed = 0
        for j in range(k):
            x = xs[t, j]
            seen[j] = math.isfinite(x)
            if seen[j]:
                z = (x - med[j]) / sd[j]
                s[j] = z if primed == 0 else (1.0 - a) * ewma[j] + a * z
                e[j] = z - mu[j]
                observed += 1
            else:
                s[j] = ewma[j]
                e[j] = 0.0
            d[j] = s[j] - mu[j]
        if observed == 0:  # nothing to judge: the condition stays as it was
            out_s[t] = 0.0
            out_f[t] = on == 1
            for c in range(4):
                out_z[t, c] = 0.0
            continue
        if observed < k:  # a missing sensor takes the value its peers imply
            _impute(d, seen, basis, r)
            _impute(e, seen, basis, r)
            for j in range(k):
                if not seen[j]:
                    s[j] = mu[j] + d[j]
        t2, spe = _stats(d, basis, lam, r)
        t2e, spee = _stats(e, basis, lam, r)
        zz = 0.0
        if mode == _TRAIN:
            out_z[t, 0], out_z[t, 1], out_z[t, 2], out_z[t, 3] = t2, spe, t2e, spee
        else:
            out_z[t, 0] = t2 / fst[_THR_T]
            out_z[t, 1] = spe / fst[_THR_Q]
            out_z[t, 2] = t2e / fst[_THR_TE]
            out_z[t, 3] = spee / fst[_THR_QE]
            zz = max(max(out_z[t, 0], out_z[t, 1]), max(out_z[t, 2], out_z[t, 3]))
        out_s[t] = zz / (1.0 + zz)
        if mode == _ONLINE or mode == _PEEK:
            if zz >= 1.0:
                on, calm = 1, 0
            elif on == 1:
                calm = calm + 1 if zz < fst[_CLEAR] else 0
                if calm >= clear_after:
                    on, calm = 0, 0
        out_f[t] = on == 1
        if mode != _PEEK:
            for j in range(k):
                ewma[j] = s[j]
            primed = 1
    if mode != _PEEK:
        ist[_ON], ist[_CALM], ist[_PRIMED] = on, calm, primed


@njit(cache=True, nogil=True)
def _ewma(xs, med, sd, ewma, primed, a, out):
    """The smoothing of ``_run`` alone, row by row into ``out``; returns ``primed``."""
    for t in range(xs.shape[0]):
        for j in range(med.shape[0]):
            x = xs[t, j]
            if math.isfinite(x):
                z = (x - med[j]) / sd[j]
                ewma[j] = z if primed == 0 else (1.0 - a) * ewma[j] + a * z
            out[t, j] = ewma[j]
        primed = 1
    return primed


class PCABaseline(StreamingDetector):
    """A healthy baseline over a machine's sensors (PCA T² and SPE on smoothed, standardised
    readings), fitted on history, with a condition flag. See the module's documentation."""

    kind: ClassVar[str] = "pca"
    version: ClassVar[int] = 1
    multivariate: ClassVar[bool] = True
    _state_arrays: ClassVar[tuple[str, ...]] = (
        "ist",
        "fst",
        "med",
        "sd",
        "mu",
        "cov",
        "basis",
        "lam",
        "ewma",
        "pending",
    )
    default_threshold: ClassVar[float] = RISE

    def __init__(
        self,
        smooth: float = 10.0,
        variance: float = 0.95,
        margin: float = 1.5,
        spike_margin: float = 3.0,
        hold: float = 0.5,
        clear: float = 0.7,
        clear_after: int = 10,
        self_fit: int = 512,
        n_features: int | None = None,
    ) -> None:
        if not (math.isfinite(smooth) and smooth >= 1.0):
            raise InvalidInput(f"smooth must be >= 1 (readings), got {smooth!r}")
        if not 0.0 < variance <= 1.0:
            raise InvalidInput(f"variance must be in (0, 1], got {variance!r}")
        for label, positive in (("margin", margin), ("spike_margin", spike_margin)):
            if not (math.isfinite(positive) and positive > 0.0):
                raise InvalidInput(f"{label} must be > 0, got {positive!r}")
        if not 0.0 < hold < 1.0:
            raise InvalidInput(f"hold must be in (0, 1), got {hold!r}")
        if not 0.0 < clear <= 1.0:
            raise InvalidInput(f"clear must be in (0, 1], got {clear!r}")
        for name, value, least in (("clear_after", clear_after, 1), ("self_fit", self_fit, 64)):
            if isinstance(value, bool) or int(value) != value or value < least:
                raise InvalidInput(f"{name} must be an integer >= {least}, got {value!r}")
        self.smooth, self.variance, self.margin, self.hold = (
            float(smooth),
            float(variance),
            float(margin),
            float(hold),
        )
        self.clear, self.clear_after, self.self_fit = float(clear), int(clear_after), int(self_fit)
        self.spike_margin = float(spike_margin)
        self.n_features: int | None = None
        self._shape(n_features)

    def _shape(self, k: int | None) -> None:
        self.n_features = k
        n = k or 0
        self.ist = np.zeros(_NI, dtype=np.int64)
        self.fst = np.array([1.0, 1.0, self.clear, 1.0 / self.smooth, 1.0, 1.0])
        self.med, self.sd, self.mu = np.zeros(n), np.ones(n), np.zeros(n)
        self.cov, self.basis = np.zeros((n, n)), np.zeros((n, n))
        self.lam, self.ewma = np.ones(n), np.zeros(n)
        self.pending = np.zeros((self.self_fit, n))

    def params(self) -> dict[str, Any]:
        return {
            "smooth": self.smooth,
            "variance": self.variance,
            "margin": self.margin,
            "spike_margin": self.spike_margin,
            "hold": self.hold,
            "clear": self.clear,
            "clear_after": self.clear_after,
            "self_fit": self.self_fit,
            "n_features": self.n_features,
        }

    def min_history(self) -> int:
        """Fewest readings ``fit`` fits on (fewer are kept until ``self_fit`` are there)."""
        return 64

    @property
    def fitted(self) -> bool:
        return bool(self.ist[_FITTED])

    @property
    def flagged(self) -> bool:
        return bool(self.ist[_ON])

    def _rows(self, values: Any) -> np.ndarray:
        xs = np.asarray(values, dtype=np.float64)
        xs = np.ascontiguousarray(xs.reshape(len(xs), -1) if xs.ndim != 2 else xs)
        if self.n_features is None and len(xs):
            self._shape(xs.shape[1])
        elif len(xs) and xs.shape[1] != self.n_features:
            raise InvalidInput(
                f"expected {self.n_features} values per reading, got {xs.shape[1]}",
                hint="send every sensor of the machine in each reading (NaN if missing)",
            )
        return xs

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """These readings are healthy: fit the baseline on them (replacing any before). Fewer
        than ``min_history()`` complete readings wait for ``self_fit`` readings in all."""
        xs = self._rows(values)
        if int(np.isfinite(xs).all(axis=1).sum()) >= self.min_history():
            self._fit(xs)
            return
        for row in xs:
            self._queue(row)

    def _queue(self, row: np.ndarray) -> None:
        i = int(self.ist[_PENDING])
        self.pending[i] = row
        self.ist[_PENDING] = i + 1
        if i + 1 == self.self_fit:
            self._fit(self.pending.copy())

    def _standardise(self, xs: np.ndarray) -> None:
        med = np.nanmedian(xs, axis=0)
        sd = np.nanstd(xs, axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        tiny = 1e-9 * (1.0 + np.abs(med))
        # A sensor that never moved in the history: any movement of about 0.1 % is news.
        sd = np.where(np.isfinite(sd) & (sd > tiny), sd, 1e-3 * (1.0 + np.abs(med)))
        self.med[:], self.sd[:] = med, sd

    def _smoothed(self, xs: np.ndarray) -> np.ndarray:
        """Smoothed standardised readings of ``xs``, continuing the EWMA."""
        out = np.empty(xs.shape)
        self.ist[_PRIMED] = _ewma(
            xs, self.med, self.sd, self.ewma, int(self.ist[_PRIMED]), float(self.fst[_ALPHA]), out
        )
        return out

    def _basis_from(self, mean: np.ndarray, cov: np.ndarray) -> None:
        k = len(mean)
        w, v = np.linalg.eigh(cov + 1e-12 * np.eye(k))
        w, v = np.maximum(w[::-1], 0.0), v[:, ::-1]
        total = float(w.sum())
        if total <= 0.0:
            r = 1
        else:
            r = int(np.searchsorted(np.cumsum(w) / total, self.variance - 1e-12) + 1)
        r = max(1, min(r, k - 1 if k > 1 else 1))
        floor = max(1e-9 * (w[0] if total > 0 else 1.0), 1e-12)
        self.mu[:], self.cov[:] = mean, cov
        self.basis[:] = v
        self.lam[:] = np.maximum(w, floor)
        self.ist[_COMPONENTS] = r if k > 1 else (1 if total > 0 else 0)

    def _fit(self, xs: np.ndarray) -> None:
        k = xs.shape[1]
        self._shape(k)
        complete = xs[np.isfinite(xs).all(axis=1)]
        self._standardise(xs)
        smoothed = self._smoothed(xs)
        ok = np.isfinite(xs).all(axis=1)
        split = max(int(len(xs) * self.hold), 2)
        first = smoothed[:split][ok[:split]]
        if len(first) < 2:
            first = smoothed[ok]
        self._basis_from(first.mean(axis=0), np.cov(first.T).reshape(k, k))
        # Calibrate: judge the rest as it would be judged online (the EWMA carries on).
        self.ist[_PRIMED] = 1
        self.ewma[:] = smoothed[split - 1]
        rest = xs[split:]
        stats = self._pass(rest, _TRAIN)[2]
        total_var = float(np.trace(self.cov)) or 1.0
        comps = max(1, int(self.ist[_COMPONENTS]))
        for col, (slot, least) in enumerate(
            (
                (_THR_T, 1e-6 * comps),
                (_THR_Q, 1e-6 * total_var),
                (_THR_TE, 1e-6 * comps),
                (_THR_QE, 1e-6 * total_var),
            )
        ):
            seen = float(stats[:, col].max()) if len(rest) else 0.0
            margin = self.margin if col < 2 else self.spike_margin
            self.fst[slot] = margin * max(seen, least, 1e-12)
        full = smoothed[ok]
        self._basis_from(full.mean(axis=0), np.cov(full.T).reshape(k, k))
        self.ewma[:] = smoothed[-1]
        self.ist[_ON] = self.ist[_CALM] = self.ist[_PENDING] = 0
        self.ist[_HISTORY] = self.ist[_COUNT] = len(complete)
        self.ist[_FITTED] = 1

    def accept(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """An operator's "accept as new normal": ``values`` set the level, their spread is pooled
        with the history's (weighted by counts), the thresholds stay, the flag clears."""
        xs = self._rows(values)
        if not self.fitted:
            self.fit(xs)
            return
        if not len(xs):
            return
        smoothed = self._smoothed(xs)[np.isfinite(xs).all(axis=1)]
        if len(smoothed) >= 2:
            # The accepted readings set the level; the spread of both stretches around their own
            # levels (not the step between them) is the machine's variation.
            n0, n1 = int(self.ist[_COUNT]), len(smoothed)
            c1 = np.cov(smoothed.T).reshape(len(self.mu), -1)
            self._basis_from(smoothed.mean(axis=0), (n0 * self.cov + n1 * c1) / (n0 + n1))
            self.ist[_COUNT] = n0 + n1
        self.ist[_ON] = self.ist[_CALM] = 0

    # -- judging -----------------------------------------------------------------------------
    def _pass(self, xs: np.ndarray, mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(xs)
        scores, flags, stats = np.empty(n), np.empty(n, dtype=np.bool_), np.empty((n, 4))
        _run(
            xs,
            self.ist,
            self.fst,
            self.med,
            self.sd,
            self.mu,
            self.basis,
            self.lam,
            self.ewma,
            self.clear_after,
            mode,
            scores,
            flags,
            stats,
        )
        return scores, flags, stats

    def detect_many(
        self, values: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score, decide and take in each reading in order: ``(scores, is_anomaly)``."""
        xs = self._rows(values)
        scores = np.zeros(len(xs))
        flags = np.zeros(len(xs), dtype=np.bool_)
        i = 0
        while i < len(xs) and not self.fitted:
            self._queue(xs[i])
            i += 1
        if i < len(xs):
            s, f, _ = self._pass(xs[i:], _ONLINE)
            scores[i:], flags[i:] = s, f
        return scores, flags

    def score_many(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        return self.detect_many(values, timestamps)[0]

    def decide_one(self, x: Any, ts: int | None = None) -> tuple[float, bool]:
        """The score and flag the reading would get, learning nothing."""
        xs = self._rows(np.atleast_1d(np.asarray(x, dtype=np.float64))[None, :])
        if not self.fitted:
            return 0.0, False
        s, f, _ = self._pass(xs, _PEEK)
        return float(s[0]), bool(f[0])

    def score_one(self, x: Any, ts: int | None = None) -> float:
        return self.decide_one(x, ts)[0]

    def learn_one(self, x: Any, ts: int | None = None) -> None:
        self.detect_many(np.atleast_1d(np.asarray(x, dtype=np.float64))[None, :])

    def explain_one(self, x: Any, ts: int | None = None) -> dict[int, float]:
        """Each sensor's share (summing to 1) of the statistic that is furthest past its
        threshold for reading ``x``, learning nothing; empty before the baseline is fitted."""
        row = np.atleast_1d(np.asarray(x, dtype=np.float64))
        self._rows(row[None, :])
        if not self.fitted:
            return {}
        _, _, z = self._pass(row[None, :], _PEEK)
        which = int(np.argmax(z[0]))
        a = float(self.fst[_ALPHA])
        std = (row - self.med) / self.sd
        if which < 2:  # a statistic of the smoothed reading
            dev = np.where(
                np.isfinite(std), (1.0 - a) * self.ewma + a * np.nan_to_num(std), self.ewma
            )
            d = dev - self.mu
        else:
            d = np.where(np.isfinite(std), std - self.mu, 0.0)
        r = int(self.ist[_COMPONENTS])
        p = self.basis[:, :r]
        scores = p.T @ d
        if which % 2:  # SPE: each sensor's squared residual
            parts = (d - p @ scores) ** 2
        else:  # T²: each sensor's part of the distance
            parts = np.abs(d * (p @ (scores / self.lam[:r])))
        total = float(parts.sum())
        if total <= 0.0:
            return {j: 1.0 / len(parts) for j in range(len(parts))}
        return {j: float(v / total) for j, v in enumerate(parts)}

    def describe(self) -> dict[str, Any]:
        """The baseline, for a model record: components kept, thresholds, history size."""
        if not self.fitted:
            return {"fitted": False, "pending": int(self.ist[_PENDING]), "self_fit": self.self_fit}
        return {
            "fitted": True,
            "history": int(self.ist[_HISTORY]),
            "sensors": self.n_features,
            "components": int(self.ist[_COMPONENTS]),
            "thresholds": {
                "t2": float(self.fst[_THR_T]),
                "spe": float(self.fst[_THR_Q]),
                "t2_reading": float(self.fst[_THR_TE]),
                "spe_reading": float(self.fst[_THR_QE]),
            },
            "center": self.med.tolist(),
            "scale": self.sd.tolist(),
            "flagged": self.flagged,
        }
