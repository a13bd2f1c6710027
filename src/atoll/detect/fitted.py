"""Fit a model of normal on known-normal history, then watch the condition online: ``fitted``.

``fit(values, timestamps)`` says "these readings are normal". The detector then judges every
new reading against that learned normal with three novelty signals, each divided by a threshold
calibrated on the history itself, so that 1 means "at threshold":

* **shape** (``nn``): distance of the last ``window`` readings, averaged into ``segments``
  blocks, to the nearest window of normal. The windows of normal are kept as an epsilon-net: a
  bank of at most ``max_bank`` float32 prototypes, none within ``eps`` of another.
* **dynamics** (``ar``): mean of the last ``smooth`` absolute residuals of a ridge AR(``lags``)
  one-step forecast fitted on the history.
* **range** (``band``): how far the reading lies outside the range of normal.

``z`` is the largest of the three; the anomaly score is ``z / (1 + z)``: monotone in ``z`` (the
most abnormal reading ranks first), in [0, 1) like every Atoll score, and 0.5
(``default_threshold``) exactly where ``z`` reaches its threshold.

**Condition, not onset.** ``is_anomaly`` (``detect_many``) is a flag with hysteresis: it rises
when the score reaches 0.5 and clears after ``clear_after`` consecutive readings with
``z < clear``. It stays up for the whole episode. Its rising edges are the alarms
(``atoll.detect.threshold.onsets``).

**What is learned online.** The range and the bank of shapes grow with readings judged normal
(flag down), never with a flagged state. Drift rule: a state flagged for ``accept_after`` times
as many readings as the history had joins the range and the bank from then on (the forecaster
is not refitted: a new *level* of a series whose forecast does not follow levels stays flagged
until an operator accepts it). ``accept(values)`` is that operator's "accept as new normal": the
readings join the range and the bank, and the forecast's level (its intercept) is refitted on
them.

**Calibration, without labels.** The first ``hold`` share of the history is the reference, the
rest is scored online against it, learning as it goes, as at run time. Each signal's threshold is
``margin`` times the highest value it reached there, but at least ``floor`` times the scale
(``max(history range, span)``; ``span`` is the sensor's declared span, 0 when unknown). Long
histories (more than ``4 * pilot`` readings) first calibrate on their last ``pilot`` readings to
set the bank's resolution, so fitting stays linear in the history's length.

**Gaps.** A reading more than ``gap`` times the history's typical interval after the previous
one starts a new segment: the window and the AR lags are not built across it. ``restart()`` does
the same explicitly.

**Without history.** A detector that was never fitted (or given fewer than ``min_history()``
readings) learns the first ``self_fit`` readings as normal (scored 0) and fits itself on them.

State is a few fixed-size arrays (the bank is 128 KiB at the default cap; 139 KiB in all),
scoring is one compiled loop, strictly online: a reading is judged on the history and the readings
before it only. Non-finite readings score 0, keep the flag as it was and are not learned.

>>> import numpy as np
>>> t = np.arange(6000)
>>> normal = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, len(t))
>>> d = FittedDetector()
>>> d.fit(normal[:4000])
>>> live = normal[4000:].copy()
>>> live[1000:1100] = 0.0                  # the machine stops for 100 readings
>>> scores, flags = d.detect_many(live)
>>> bool(flags[:1000].any()), bool(flags[1010:1100].all()), bool(flags[1200:].any())
(False, True, False)
>>> int(np.argmax(scores)) in range(1000, 1200), d.describe()["signals"]
(True, ['nn', 'ar', 'band'])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numba import njit

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.port import Explained

# Integer state slots (``ist``).
(
    _POS,  # next write position in the ring
    _SEG,  # readings in the current segment (saturates)
    _NRES,  # residuals in the current segment (saturates)
    _NWIN,  # windows in the current segment
    _BANK,  # prototypes in the bank
    _ON,  # the condition flag
    _CALM,  # consecutive calm readings while flagged
    _RUN,  # consecutive flagged readings
    _ACCEPT,  # drift rule: readings flagged in a row before the state is learned (0: never)
    _NN,  # the shape signal is on
    _CLEAR_N,  # hysteresis: calm readings that clear the flag
    _LAST_TS,  # timestamp of the last finite reading (µs)
    _HAS_LAST,  # _LAST_TS is set
    _STEP,  # typical interval between readings (µs; 0: unknown)
    _FITTED,  # a model of normal exists
    _PENDING,  # readings waiting in the self-fit buffer
    _PENDING_TS,  # every pending reading came with a timestamp
    _HISTORY,  # readings the model was fitted on
    _COARSER,  # times the bank was coarsened to stay within its cap
    _BANK_FIT,  # prototypes right after fitting
) = range(20)
_NI = 20
# Float state slots (``fst``).
(
    _CENTER,
    _UNIT,
    _LO,
    _HI,
    _THR_NN,
    _THR_AR,
    _THR_BAND,
    _EPS,
    _RSUM,
    _CLEAR,
    _STOP,
    _GAP,
) = range(12)
_NF = 12
# Kernel modes.
_PEEK, _ONLINE, _TRAIN = 0, 1, 2
#: The score at which the flag rises (``z == 1``).
RISE = 0.5
#: The signals, in ``out_z``'s order (``explain_one``, ``detect_explained``).
_SIGNALS: tuple[str, ...] = ("nn", "ar", "band")


@njit(cache=True, nogil=True, fastmath=True)
def _nearest(q, bank, count, stop2):
    """Squared distance from ``q`` to the nearest of the first ``count`` prototypes, scanned in
    blocks of 64; the scan ends after a block that found one within ``sqrt(stop2)`` (so a result
    at or below ``stop2`` is an upper bound, one above it exact)."""
    best = np.inf
    p = q.shape[0]
    for b0 in range(0, count, 64):
        for i in range(b0, min(count, b0 + 64)):
            acc = np.float32(0.0)
            for j in range(p):
                diff = bank[i, j] - q[j]
                acc += diff * diff
            if acc < best:
                best = acc
        if best <= stop2:
            break
    return best


@njit(cache=True, nogil=True)
def _renet(bank, ist, eps):
    """Keep a prototype only if none kept before lies within ``eps`` (greedy, in bank order)."""
    old = bank[: ist[_BANK]].copy()
    ist[_BANK] = 0
    eps2 = eps * eps
    for i in range(old.shape[0]):
        if ist[_BANK] == 0 or _nearest(old[i], bank, ist[_BANK], eps2) > eps2:
            bank[ist[_BANK]] = old[i]
            ist[_BANK] += 1


@njit(cache=True, nogil=True)
def _coarsen(bank, ist, fst):
    """Past half its cap the bank is re-netted at 1.5 x the resolution: its scan stays short."""
    while ist[_BANK] > bank.shape[0] // 2:
        fst[_EPS] *= 1.5
        _renet(bank, ist, fst[_EPS])
        ist[_COARSER] += 1


@njit(cache=True, nogil=True)
def _run(xs, tss, has_ts, ist, fst, ring, res, arw, bank, pq, pok, mode, out_s, out_f, out_z):
    """Judge ``xs`` in order. ``_ONLINE``: score, decide, learn. ``_PEEK``: score and decide one
    reading, write nothing. ``_TRAIN``: calibration (no flag, everything learned). ``out_z`` gets
    the three signals (raw values in ``_TRAIN``, where the thresholds are 1) and the AR
    one-step forecast (standardised; NaN until the segment has ``lags`` readings)."""
    w, p = pq.shape[0], pq.shape[1]
    lags, k, size = arw.shape[0] - 1, res.shape[0], ring.shape[0]
    per = w // p
    root_p = math.sqrt(p)
    q = np.empty(p, np.float32)
    eps2 = fst[_EPS] * fst[_EPS]
    train = mode == _TRAIN
    stop2 = eps2 if train else max(eps2, (fst[_STOP] * fst[_THR_NN]) ** 2)
    for t in range(xs.shape[0]):
        x = xs[t]
        if not math.isfinite(x):
            out_s[t] = 0.0
            out_f[t] = ist[_ON] == 1
            out_z[t, 0] = 0.0
            out_z[t, 1] = 0.0
            out_z[t, 2] = 0.0
            out_z[t, 3] = np.nan
            continue
        ts = tss[t]
        gap = (
            has_ts
            and ist[_HAS_LAST] == 1
            and ist[_STEP] > 0
            and ts - ist[_LAST_TS] > fst[_GAP] * ist[_STEP]
        )
        seg = 0 if gap else ist[_SEG]
        nres = 0 if gap else ist[_NRES]
        nwin = 0 if gap else ist[_NWIN]
        rsum = 0.0 if gap else fst[_RSUM]
        v = (x - fst[_CENTER]) / fst[_UNIT]
        pos = ist[_POS]
        n = seg + 1
        lo, hi = fst[_LO], fst[_HI]
        z_band = max(0.0, v - hi, lo - v) / fst[_THR_BAND]

        # Dynamics: the AR residual, smoothed over the last k readings of the segment.
        resid = 0.0
        z_ar = 0.0
        pred = np.nan
        if n > lags:
            pred = arw[lags]
            for lag in range(1, lags + 1):
                pred += arw[lag - 1] * ring[(pos - lag) % size]
            resid = abs(v - pred)
            rsum += resid - (res[nres % k] if nres >= k else 0.0)
            if nres + 1 >= k:
                z_ar = rsum / k / fst[_THR_AR]

        # Shape: the PAA window ending here against the bank.
        d2 = 0.0
        z_nn = 0.0
        window = n >= w and ist[_NN] == 1
        if window:
            for s in range(p):
                acc = 0.0
                for u in range(per):
                    age = w - 1 - (s * per + u)  # 0 is this reading
                    acc += v if age == 0 else ring[(pos - age) % size]
                q[s] = acc / per / root_p
            d2 = _nearest(q, bank, ist[_BANK], stop2) if ist[_BANK] > 0 else np.inf
            z_nn = math.sqrt(d2) / fst[_THR_NN]

        z = max(z_nn, z_ar, z_band)
        score = z / (1.0 + z) if math.isfinite(z) else 1.0
        on, calm = ist[_ON], ist[_CALM]
        if train:
            on, calm = 0, 0
        elif score >= RISE:
            on, calm = 1, 0
        elif on == 1:
            calm = calm + 1 if z < fst[_CLEAR] else 0
            if calm >= ist[_CLEAR_N]:
                on, calm = 0, 0
        run = ist[_RUN] + 1 if on == 1 else 0
        out_s[t] = score
        out_f[t] = on == 1
        out_z[t, 0] = z_nn
        out_z[t, 1] = z_ar
        out_z[t, 2] = z_band
        out_z[t, 3] = pred
        if mode == _PEEK:
            continue

        # Learn: the context always, the normal only from readings judged normal.
        normal = train or on == 0 or (ist[_ACCEPT] > 0 and run >= ist[_ACCEPT])
        ist[_ON] = on
        ist[_CALM] = calm
        ist[_RUN] = run
        if has_ts:
            ist[_LAST_TS] = ts
            ist[_HAS_LAST] = 1
        if normal:
            fst[_LO] = min(lo, v)
            fst[_HI] = max(hi, v)
        if n > lags:
            res[nres % k] = resid
            nres += 1
        fst[_RSUM] = rsum
        if window:
            # A window joins the bank w readings late (no trivial self-match), and only if no
            # prototype is within eps by then.
            slot = nwin % w
            if nwin >= w and pok[slot]:
                old = pq[slot]
                if _nearest(old, bank, ist[_BANK], eps2) > eps2 and ist[_BANK] < bank.shape[0]:
                    bank[ist[_BANK]] = old
                    ist[_BANK] += 1
                    _coarsen(bank, ist, fst)
                    eps2 = fst[_EPS] * fst[_EPS]
                    stop2 = eps2 if train else max(eps2, stop2)
            pq[slot] = q
            pok[slot] = normal and d2 > stop2  # a near-duplicate of the bank adds nothing
            nwin += 1
        ring[pos] = v
        ist[_POS] = (pos + 1) % size
        ist[_SEG] = n
        ist[_NRES] = nres
        ist[_NWIN] = nwin


@njit(cache=True, nogil=True)
def _ar_gram(z, lags, gram, rhs):
    """Accumulate the normal equations of a one-step AR(``lags``) with intercept over every
    window of ``z`` free of non-finite values; returns how many windows."""
    rows = 0
    row = np.empty(lags + 1)
    bad = 0  # non-finite values among z[t - lags .. t]
    for t in range(z.shape[0]):
        if not math.isfinite(z[t]):
            bad += 1
        if t > lags and not math.isfinite(z[t - lags - 1]):
            bad -= 1
        if t < lags or bad > 0:
            continue
        for lag in range(1, lags + 1):
            row[lag - 1] = z[t - lag]
        row[lags] = 1.0
        y = z[t]
        for a in range(lags + 1):
            rhs[a] += row[a] * y
            for b in range(a, lags + 1):
                gram[a, b] += row[a] * row[b]
        rows += 1
    for a in range(lags + 1):
        for b in range(a):
            gram[a, b] = gram[b, a]
    return rows


def _ridge_ar(z: np.ndarray, lags: int, ridge: float) -> np.ndarray:
    """Ridge one-step AR(``lags``) with intercept on the finite stretches of ``z``: ``lags``
    coefficients (lag 1 first) then the intercept."""
    gram = np.zeros((lags + 1, lags + 1))
    rhs = np.zeros(lags + 1)
    rows = max(_ar_gram(np.ascontiguousarray(z, dtype=np.float64), lags, gram, rhs), 1)
    var = max(float(np.trace(gram[:lags, :lags])) / lags / rows, 1e-12)
    gram[np.arange(lags), np.arange(lags)] += ridge * rows * var
    gram[lags, lags] += 1e-9 * rows
    return np.linalg.solve(gram, rhs)


def _typical_step(ts: np.ndarray) -> int:
    """Median interval between consecutive timestamps (µs), 0 if there is none."""
    steps = np.diff(ts)
    steps = steps[steps > 0]
    return int(np.median(steps)) if len(steps) else 0


class FittedDetector(StreamingDetector):
    """A model of normal fitted on history (shape, dynamics, range), scored online, with a
    condition flag. See the module's documentation for the model and its parameters."""

    kind: ClassVar[str] = "fitted"
    version: ClassVar[int] = 1
    _state_arrays: ClassVar[tuple[str, ...]] = (
        "ist",
        "fst",
        "ring",
        "res",
        "arw",
        "bank",
        "pq",
        "pok",
        "pending",
        "pending_ts",
    )
    default_threshold: ClassVar[float] = RISE

    def __init__(
        self,
        window: int = 64,
        segments: int = 8,
        lags: int = 30,
        smooth: int = 10,
        margin: float = 1.5,
        floor: float = 0.05,
        span: float = 0.0,
        hold: float = 0.5,
        ridge: float = 0.01,
        resolution: float = 0.25,
        max_bank: int = 4096,
        stop: float = 0.5,
        clear: float = 0.7,
        clear_after: int = 10,
        accept_after: float = 1.0,
        gap: float = 10.0,
        pilot: int = 20_000,
        self_fit: int = 512,
    ) -> None:
        for name, value, least in (
            ("segments", segments, 1),
            ("lags", lags, 1),
            ("smooth", smooth, 1),
            ("max_bank", max_bank, 2),
            ("clear_after", clear_after, 1),
            ("pilot", pilot, 1),
        ):
            _check_int(name, value, least)
        _check_int("window", window, segments)
        if window % segments:
            raise InvalidInput(f"window {window} must be a multiple of segments={segments}")
        for label, positive in (("margin", margin), ("floor", floor), ("resolution", resolution)):
            if not (math.isfinite(positive) and positive > 0.0):
                raise InvalidInput(f"{label} must be > 0, got {positive!r}")
        if not (math.isfinite(span) and span >= 0.0):
            raise InvalidInput(f"span must be >= 0 (0: unknown), got {span!r}")
        if not 0.0 < hold < 1.0:
            raise InvalidInput(f"hold must be in (0, 1), got {hold!r}")
        if not (ridge >= 0.0 and 0.0 < stop <= 1.0 and 0.0 < clear <= 1.0):
            raise InvalidInput(
                f"need ridge >= 0, stop in (0, 1], clear in (0, 1]; got {ridge!r}, {stop!r}, "
                f"{clear!r}"
            )
        if not (accept_after >= 0.0 and gap > 1.0):
            raise InvalidInput(f"need accept_after >= 0 and gap > 1, got {accept_after!r}, {gap!r}")
        self.window, self.segments, self.lags, self.smooth = (
            int(window),
            int(segments),
            int(lags),
            int(smooth),
        )
        self.margin, self.floor, self.span, self.hold = (
            float(margin),
            float(floor),
            float(span),
            float(hold),
        )
        self.ridge, self.resolution, self.max_bank = float(ridge), float(resolution), int(max_bank)
        self.stop, self.clear, self.clear_after = float(stop), float(clear), int(clear_after)
        self.accept_after, self.gap = float(accept_after), float(gap)
        self.pilot = int(pilot)
        _check_int("self_fit", self_fit, self.min_history())
        self.self_fit = int(self_fit)
        self._reset()
        self.pending = np.zeros(self.self_fit)
        self.pending_ts = np.zeros(self.self_fit, dtype=np.int64)

    def _reset(self) -> None:
        """An empty model (not fitted)."""
        self.ist = np.zeros(_NI, dtype=np.int64)
        self.ist[_CLEAR_N] = self.clear_after
        self.fst = np.zeros(_NF)
        self.fst[_UNIT] = 1.0
        self.fst[_THR_NN] = self.fst[_THR_AR] = self.fst[_THR_BAND] = 1.0
        self.fst[_CLEAR], self.fst[_STOP], self.fst[_GAP] = self.clear, self.stop, self.gap
        self.ring = np.zeros(max(self.window, self.lags + 1))
        self.res = np.zeros(self.smooth)
        self.arw = np.zeros(self.lags + 1)
        self.bank = np.zeros((self.max_bank, self.segments), dtype=np.float32)
        self.pq = np.zeros((self.window, self.segments), dtype=np.float32)
        self.pok = np.zeros(self.window, dtype=np.bool_)

    def params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "segments": self.segments,
            "lags": self.lags,
            "smooth": self.smooth,
            "margin": self.margin,
            "floor": self.floor,
            "span": self.span,
            "hold": self.hold,
            "ridge": self.ridge,
            "resolution": self.resolution,
            "max_bank": self.max_bank,
            "stop": self.stop,
            "clear": self.clear,
            "clear_after": self.clear_after,
            "accept_after": self.accept_after,
            "gap": self.gap,
            "pilot": self.pilot,
            "self_fit": self.self_fit,
        }

    def min_history(self) -> int:
        """Fewest finite readings ``fit`` fits on (fewer wait for ``self_fit`` readings)."""
        return 4 * max(self.window, self.lags + 1)

    @property
    def fitted(self) -> bool:
        return bool(self.ist[_FITTED])

    @property
    def flagged(self) -> bool:
        """The condition after the last reading learned."""
        return bool(self.ist[_ON])

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """These readings are normal: fit the model of normal on them (replacing any before).

        Fewer than ``min_history()`` finite readings are not enough to fit on: a fitted model
        learns them as normal; otherwise they are kept, and the detector fits itself once it has
        ``self_fit`` readings (these and the next ones)."""
        x, ts = self._as_series(values, timestamps)
        finite = np.flatnonzero(np.isfinite(x))
        if len(finite) >= self.min_history():
            self._fit(x, ts)
            return
        for i in finite:
            if self.fitted:  # too few to refit: learned as normal
                self._adopt(x[i:], None if ts is None else ts[i:])
                return
            self._queue(float(x[i]), None if ts is None else int(ts[i]))

    def _queue(self, x: float, ts: int | None) -> None:
        """One reading into the self-fit buffer; fit when it is full."""
        i = int(self.ist[_PENDING])
        if i == 0:
            self.ist[_PENDING_TS] = 1
        self.pending[i] = x
        self.pending_ts[i] = 0 if ts is None else ts
        if ts is None:
            self.ist[_PENDING_TS] = 0
        self.ist[_PENDING] = i + 1
        if i + 1 == self.self_fit:
            with_ts = bool(self.ist[_PENDING_TS])
            self._fit(self.pending.copy(), self.pending_ts.copy() if with_ts else None)

    def _fit(self, x: np.ndarray, ts: np.ndarray | None) -> None:
        self._reset()
        self.pending[:] = 0.0
        self.pending_ts[:] = 0
        ist, fst = self.ist, self.fst
        finite = np.isfinite(x)
        h = x[finite]
        center = float(np.median(h))
        scale = max(float(h.max() - h.min()), self.span)
        unit = scale if scale > 0 else max(abs(center), 1.0)
        floor = self.floor * (scale / unit if scale > 0 else 1.0)
        fst[_CENTER], fst[_UNIT] = center, unit
        z = (x - center) / unit
        size = self.ring.shape[0]
        split = min(len(x), max(int(len(x) * self.hold), size + self.smooth + 8))
        ref = z[:split][np.isfinite(z[:split])]
        if not len(ref):
            ref = z[finite]
        fst[_LO], fst[_HI] = float(ref.min()), float(ref.max())
        fst[_EPS] = self.resolution * floor
        ist[_NN] = 1
        ist[_STEP] = _typical_step(ts[finite]) if ts is not None else 0
        if len(x) > 4 * self.pilot:
            pilot = FittedDetector(**self.params())
            pilot._fit(x[-self.pilot :], None if ts is None else ts[-self.pilot :])
            fst[_EPS] = max(fst[_EPS], float(pilot.fst[_EPS] * pilot.fst[_UNIT] / unit))
        self.arw[:] = _ridge_ar(z[:split], self.lags, self.ridge)
        self._pass(x[:split], None if ts is None else ts[:split], _TRAIN)
        _, _, signals = self._pass(x[split:], None if ts is None else ts[split:], _TRAIN)
        cal = np.zeros(3)
        for i in range(3):
            col = signals[:, i]
            col = col[np.isfinite(col)]
            cal[i] = float(col.max()) if len(col) else 0.0
        thr = self.margin * np.maximum(cal, floor)
        self.arw[:] = _ridge_ar(z, self.lags, self.ridge)
        fst[_THR_NN], fst[_THR_AR], fst[_THR_BAND] = thr
        fst[_EPS] = max(self.resolution * thr[0], fst[_EPS])
        _renet(self.bank, ist, fst[_EPS])
        _coarsen(self.bank, ist, fst)
        if ist[_BANK] == 0:
            ist[_NN] = 0  # too short for a single window: judged on dynamics and range alone
        ist[_ON] = ist[_CALM] = ist[_RUN] = 0
        ist[_HISTORY] = len(h)
        ist[_ACCEPT] = int(self.accept_after * len(h))
        ist[_BANK_FIT] = ist[_BANK]
        ist[_COARSER] = 0
        ist[_FITTED] = 1

    def restart(self) -> None:
        """A gap in the data: the next reading starts a new segment (nothing learned is lost)."""
        self.ist[_SEG] = self.ist[_NRES] = self.ist[_NWIN] = 0
        self.fst[_RSUM] = 0.0

    def accept(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """An operator's "accept as new normal": learn ``values`` as normal and clear the flag."""
        if not self.fitted:
            self.fit(values, timestamps)
            return
        self._adopt(*self._as_series(values, timestamps))

    def _adopt(self, x: np.ndarray, ts: np.ndarray | None) -> None:
        """``x`` is normal: refit the forecast's intercept on it, then learn it like history."""
        lags = self.lags
        z = (x - self.fst[_CENTER]) / self.fst[_UNIT]
        if len(z) > 2 * lags:
            win = np.lib.stride_tricks.sliding_window_view(z, lags + 1)
            level = win[:, lags] - win[:, lags - 1 :: -1] @ self.arw[:lags]
            level = level[np.isfinite(level)]
            if len(level) > lags:
                self.arw[lags] = float(level.mean())
        self._pass(x, ts, _TRAIN)

    # -- judging -----------------------------------------------------------------------------
    def _as_series(
        self, values: np.ndarray, timestamps: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise InvalidInput(
                f"FittedDetector takes a 1-D series, got shape {x.shape}",
                hint="for several sensors use atoll.detect.for_features(n)",
            )
        if timestamps is None:
            return x, None
        ts = np.ascontiguousarray(timestamps, dtype=np.int64)
        if ts.shape != x.shape:
            raise InvalidInput(f"{len(ts)} timestamps for {len(x)} readings")
        return x, ts

    def _pass(
        self, x: np.ndarray, ts: np.ndarray | None, mode: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(x)
        scores, flags, signals = np.empty(n), np.empty(n, dtype=np.bool_), np.empty((n, 4))
        has_ts = ts is not None
        stamps = ts if ts is not None else np.zeros(n, dtype=np.int64)
        _run(
            x,
            stamps,
            has_ts,
            self.ist,
            self.fst,
            self.ring,
            self.res,
            self.arw,
            self.bank,
            self.pq,
            self.pok,
            mode,
            scores,
            flags,
            signals,
        )
        return scores, flags, signals

    def detect_many(
        self, values: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score, decide and learn each reading in order: ``(scores, is_anomaly)``."""
        x, ts = self._as_series(values, timestamps)
        scores = np.zeros(len(x))
        flags = np.zeros(len(x), dtype=np.bool_)
        i = 0
        while i < len(x) and not self.fitted:
            if math.isfinite(x[i]):
                self._queue(float(x[i]), None if ts is None else int(ts[i]))
            i += 1
        if i < len(x):
            s, f, _ = self._pass(x[i:], None if ts is None else ts[i:], _ONLINE)
            scores[i:], flags[i:] = s, f
        return scores, flags

    def score_many(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        return self.detect_many(values, timestamps)[0]

    def detect_explained(
        self, values: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, Explained | None]:
        """``detect_many`` plus why: per reading the expected value (the AR one-step forecast),
        the band of normal (the range of normal widened by the range signal's threshold: a
        reading outside it is flagged on range alone) and the three signals ``nn``, ``ar``,
        ``band`` (1 = at threshold) as contributions. ``None`` while not fitted."""
        x, ts = self._as_series(values, timestamps)
        if not self.fitted:
            scores, flags = self.detect_many(x, ts)
            return scores, flags, None
        scores, flags, z = self._pass(x, ts, _ONLINE)
        return scores, flags, self._explained(z)

    def _explained(self, z: np.ndarray) -> Explained:
        fst = self.fst
        center, unit = float(fst[_CENTER]), float(fst[_UNIT])
        lo = center + (fst[_LO] - fst[_THR_BAND]) * unit
        hi = center + (fst[_HI] + fst[_THR_BAND]) * unit

        def expected() -> np.ndarray:
            out = np.empty((len(z), 1, 3))
            out[:, 0, 0] = center + z[:, 3] * unit
            out[:, 0, 1], out[:, 0, 2] = lo, hi
            return out

        # The signals are >= 0 (inf only for a window with no bank to compare with).
        return Explained(_SIGNALS, z[:, :3], expected)

    def decide_one(self, x: Any, ts: int | None = None) -> tuple[float, bool]:
        """The score and flag the reading would get, learning nothing."""
        if not self.fitted:
            return 0.0, False
        s, f, _ = self._peek(x, ts)
        return float(s[0]), bool(f[0])

    def _peek(self, x: Any, ts: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        one = np.array([as_scalar(x)])
        return self._pass(one, None if ts is None else np.array([ts], dtype=np.int64), _PEEK)

    def score_one(self, x: Any, ts: int | None = None) -> float:
        return self.decide_one(x, ts)[0]

    def learn_one(self, x: Any, ts: int | None = None) -> None:
        self.detect_many(np.array([as_scalar(x)]), None if ts is None else np.array([ts]))

    def explain_one(self, x: Any, ts: int | None = None) -> dict[str, float]:
        """The three signals for a reading (1 = at threshold), learning nothing."""
        if not self.fitted:
            return {"nn": 0.0, "ar": 0.0, "band": 0.0}
        z = self._peek(x, ts)[2][0]
        return {"nn": float(z[0]), "ar": float(z[1]), "band": float(z[2])}

    def describe(self) -> dict[str, Any]:
        """The model chosen for this series, in the data's units: what to record and show."""
        ist, fst = self.ist, self.fst
        if not self.fitted:
            return {"fitted": False, "pending": int(ist[_PENDING]), "self_fit": self.self_fit}
        unit = float(fst[_UNIT])
        return {
            "fitted": True,
            "history": int(ist[_HISTORY]),
            "signals": (["nn"] if ist[_NN] else []) + ["ar", "band"],
            "window": self.window,
            "thresholds": {
                "nn": float(fst[_THR_NN]) * unit,
                "ar": float(fst[_THR_AR]) * unit,
                "band": float(fst[_THR_BAND]) * unit,
            },
            "normal_range": [
                float(fst[_CENTER] + fst[_LO] * unit),
                float(fst[_CENTER] + fst[_HI] * unit),
            ],
            "bank": int(ist[_BANK]),
            "bank_after_fit": int(ist[_BANK_FIT]),
            "bank_cap": self.max_bank,
            "coarsened": int(ist[_COARSER]),
            "resolution": float(fst[_EPS]) * unit,
            "typical_interval_us": int(ist[_STEP]),
            "accept_after": int(ist[_ACCEPT]),
            "flagged": self.flagged,
        }


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")
