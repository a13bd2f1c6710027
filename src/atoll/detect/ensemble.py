"""Atoll's default detector: range breaks + multi-scale window novelty + variability bursts.

Signals are fused by ``max``, then repeated alarms are muted for a while:

1. **Range breaks** (``extremes.py``) of the reading and of its rolling mean: a new high or low.
   A break of the rolling mean counts only if the reading itself lies beyond the same bound.
2. **Tail breaks** (``tails.py``): a reading more than ``tail_margin`` band widths outside the
   ``tail_q``..``1 - tail_q`` quantile band of a sample of recent readings (``tail_size`` readings,
   one every ``tail_stride``). Unlike the range, the sample forgets an old spike, so a later,
   smaller anomaly is seen again. Muted for ``tail_quiet`` readings after it fires.
3. **Window novelty** at several time scales (``scales``). For each scale, the last ``window``
   readings are averaged into ``blocks`` blocks, divided by the range seen so far, and compared
   with a ring of ``bank`` past windows stored every ``stride`` readings (``knn.py``). The
   nearest-neighbour distance becomes an anomaly likelihood (``likelihood.py``), mapped so that
   ``likelihood == gate`` gives 0.5. A scale speaks only after ``lik_warmup`` real novelty
   values (no start-up alarms), and after an alarm it is muted for ``lik_quiet`` readings.
4. **Variability bursts** (``bursts.py``): the median of the last ``burst_window`` persistence
   errors ``|x_t - x_(t-1)|`` against its own long-run level (log ratio, floored at
   ``burst_floor`` of the range), through the same likelihood, mute and warm-up as a novelty
   scale, with ``burst_gate`` as its gate and a longer memory: ``burst_alpha`` is the EWMA rate of
   both the long-run level and the likelihood statistics. It finds a stream that starts to
   oscillate or chatter inside its usual range. ``burst_window=0`` switches it off.
5. **Suppression**: after any output at or above ``alarm``, the next ``quiet`` outputs are 0.
   NAB (and an operator) charges for every repeated alarm, and one alarm per event is enough.

Everything is one compiled step over fixed-size arrays, so memory per series is constant
(``nbytes()``: about 76 KB with the defaults: the float32 window banks and the tail sample) and
replay runs at several hundred thousand readings/s per core. Timestamps are not used.
Non-finite readings score 0 and are not learned.

>>> import numpy as np
>>> d = EnsembleDetector()
>>> rng = np.random.default_rng(0)
>>> calm = d.score_many(10 + rng.normal(0, 1, 2000))
>>> quiet = bool((calm[300:] >= d.default_threshold).mean() < 0.01)
>>> quiet, d.score_one(60.0) >= d.default_threshold
(True, True)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numba import njit

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector, as_scalar
from atoll.detect.bursts import burst_ratio, kth_with
from atoll.detect.extremes import range_break, supported_break
from atoll.detect.knn import nearest_distance
from atoll.detect.likelihood import log_tail_score
from atoll.detect.tails import tail_excess, tail_push

# Scalar state slots.
_N, _LO, _HI, _MLO, _MHI, _LAST_ALARM, _T_COUNT, _T_LAST, _B_USUAL, _B_SEEN = range(10)
_NSTATE = 10
# Per-channel likelihood state columns (one row per novelty scale, then one for bursts).
_C_COUNT, _C_LM, _C_LV, _C_LAST, _C_VALID = range(5)
# Per-scale parameter columns: window, stride, bank offset, bank size, gate.
_S_WIN, _S_STRIDE, _S_OFF, _S_BANK, _S_GATE = range(5)
# Global parameter slots.
(
    _P_WARM,
    _P_MEANW,
    _P_LSHORT,
    _P_LALPHA,
    _P_LWARM,
    _P_LQUIET,
    _P_ALARM,
    _P_QUIET,
    _P_TSTRIDE,
    _P_TQ,
    _P_TMARGIN,
    _P_TGAIN,
    _P_TQUIET,
    _P_BGATE,
    _P_BFLOOR,
    _P_BALPHA,
) = range(16)


@njit(cache=True, nogil=True)
def _likelihood(row, raw, valid, speak, gate, alpha, i, cst, raws, p, commit):
    """Numenta's anomaly likelihood of channel ``row``'s raw value, gated, muted after an alarm."""
    lshort = int(p[_P_LSHORT])
    rs = raw
    rc = 1
    for k in range(1, min(i + 1, lshort)):
        rs += raws[row, (i - k) % lshort]
        rc += 1
    smean = rs / rc
    nov = 0.0
    # Until a channel has produced lik_warmup real values its statistics still carry the zero
    # prior of the start, so it stays silent (no start-up alarms).
    if speak and cst[row, _C_VALID] >= p[_P_LWARM]:
        nov = min(1.0, 0.5 * log_tail_score(smean, cst[row, _C_LM], cst[row, _C_LV]) / gate)
    muted = i - cst[row, _C_LAST] <= p[_P_LQUIET]
    if muted:
        nov = 0.0
    if commit:
        if not muted and nov >= 0.5:
            cst[row, _C_LAST] = i
        la = max(alpha, 1.0 / (i + 1))
        dl = smean - cst[row, _C_LM]
        cst[row, _C_LM] += la * dl
        cst[row, _C_LV] = (1.0 - la) * (cst[row, _C_LV] + la * dl * dl)
        raws[row, i % lshort] = raw
        if valid:
            cst[row, _C_VALID] += 1
    return nov


@njit(cache=True, nogil=True)
def _step(x, st, cst, vals, raws, bank, tring, tsort, bring, bsort, window, p, sp, commit):
    """Score reading ``x``; if ``commit``, also learn it. Reads all state before writing any."""
    if not math.isfinite(x):
        return 0.0
    i = int(st[_N])
    nvals = vals.shape[0]
    nscales = sp.shape[0]
    nblocks = bank.shape[1]

    # 1. Range breaks of the reading and of its rolling mean (ranges exclude the reading).
    meanw = int(p[_P_MEANW])
    s = x
    cnt = 1
    for k in range(1, min(i + 1, meanw)):
        s += vals[(i - k) % nvals]
        cnt += 1
    rmean = s / cnt
    out = 0.0
    if i >= p[_P_WARM]:
        out = max(range_break(x, st[_LO], st[_HI]), supported_break(rmean, x, st[_MLO], st[_MHI]))
    lo = min(st[_LO], x) if i > 0 else x
    hi = max(st[_HI], x) if i > 0 else x
    width = hi - lo if hi > lo else 1.0

    # 2. Tail breaks against the quantile band of a sample of recent readings.
    tcount = int(st[_T_COUNT])
    tmuted = i - st[_T_LAST] <= p[_P_TQUIET]
    tail = 0.0
    if i >= p[_P_WARM] and tring.shape[0] > 0:
        excess = tail_excess(x, tsort, tcount, p[_P_TQ])
        if excess > p[_P_TMARGIN]:
            tail = min(1.0, 0.5 + p[_P_TGAIN] * (excess - p[_P_TMARGIN]))
    if not tmuted:
        out = max(out, tail)
    if commit:
        if not tmuted and tail >= 0.5:
            st[_T_LAST] = i
        if tring.shape[0] > 0 and i % int(p[_P_TSTRIDE]) == 0:
            tail_push(x, tring, tsort, tcount)
            st[_T_COUNT] = tcount + 1

    # 3. Window novelty per scale -> likelihood -> gated score.
    for c in range(nscales):
        win = int(sp[c, _S_WIN])
        raw = 0.0
        valid = False
        if i >= win:
            per = win // nblocks
            for b in range(nblocks):
                acc = 0.0
                for k in range(per):
                    age = win - 1 - (b * per + k)  # 0 is x itself
                    acc += x if age == 0 else vals[(i - age) % nvals]
                window[c, b] = acc / per / width
            count = int(cst[c, _C_COUNT])
            if count >= 10:
                valid = True
                off = int(sp[c, _S_OFF])
                size = int(sp[c, _S_BANK])
                raw = nearest_distance(bank[off : off + size], min(count, size), window[c])
        out = max(
            out,
            _likelihood(c, raw, valid, True, sp[c, _S_GATE], p[_P_LALPHA], i, cst, raws, p, commit),
        )
        if commit and i >= win and i % int(sp[c, _S_STRIDE]) == 0:
            count = int(cst[c, _C_COUNT])
            bank[int(sp[c, _S_OFF]) + count % int(sp[c, _S_BANK]), :] = window[c]
            cst[c, _C_COUNT] = count + 1

    # 4. Variability bursts: median persistence error of the last readings against its usual level.
    stored = bring.shape[0]  # the last burst_window - 1 errors; the current one is merged in
    if stored > 0:
        err = abs(x - vals[(i - 1) % nvals]) if i > 0 else 0.0
        raw = 0.0
        valid = False
        full = i > stored
        rough = 0.0
        if full:
            rough = kth_with(bsort, stored, err, stored // 2)
            if st[_B_SEEN] > 0:
                valid = True
                raw = burst_ratio(
                    rough,
                    st[_B_USUAL],
                    p[_P_BFLOOR] * (st[_HI] - st[_LO] if st[_HI] > st[_LO] else 1.0),
                )
        out = max(
            out,
            _likelihood(
                nscales,
                raw,
                valid,
                i >= p[_P_WARM],
                p[_P_BGATE],
                p[_P_BALPHA],
                i,
                cst,
                raws,
                p,
                commit,
            ),
        )
        if commit:
            if full:
                seen = st[_B_SEEN] + 1.0
                st[_B_USUAL] += max(p[_P_BALPHA], 1.0 / seen) * (rough - st[_B_USUAL])
                st[_B_SEEN] = seen
            if i > 0:
                tail_push(err, bring, bsort, i - 1)

    # 5. Suppress repeats.
    muted = i - st[_LAST_ALARM] <= p[_P_QUIET]
    if muted:
        out = 0.0
    if commit:
        if not muted and out >= p[_P_ALARM]:
            st[_LAST_ALARM] = i
        st[_LO] = lo
        st[_HI] = hi
        st[_MLO] = min(st[_MLO], rmean) if i > 0 else rmean
        st[_MHI] = max(st[_MHI], rmean) if i > 0 else rmean
        vals[i % nvals] = x
        st[_N] = i + 1
    return out


@njit(cache=True, nogil=True)
def _replay(xs, st, cst, vals, raws, bank, tring, tsort, bring, bsort, window, p, sp, commit, out):
    # The one compiled entry point for batch and single readings alike, so both round the same way.
    for i in range(xs.shape[0]):
        out[i] = _step(
            xs[i], st, cst, vals, raws, bank, tring, tsort, bring, bsort, window, p, sp, commit
        )


#: (window, stride, bank, gate) per novelty scale; tuned on NAB (docs/DETECTION.md).
DEFAULT_SCALES = ((192, 8, 800, 0.35), (64, 4, 1000, 0.8))


class EnsembleDetector(StreamingDetector):
    """Range and tail breaks + multi-scale kNN window novelty + variability bursts, max-fused,
    repeats suppressed.

    Parameters are global (the same for every stream); the defaults were tuned on NAB as a whole
    (see docs/DETECTION.md).
    """

    kind: ClassVar[str] = "ensemble"
    version: ClassVar[int] = 5
    _state_arrays: ClassVar[tuple[str, ...]] = (
        "st",
        "cst",
        "vals",
        "raws",
        "bank",
        "tring",
        "tsort",
        "bring",
        "bsort",
    )
    default_threshold: ClassVar[float] = 0.52

    def __init__(
        self,
        scales=DEFAULT_SCALES,
        blocks: int = 8,
        warmup: int = 150,
        mean_window: int = 15,
        lik_short: int = 10,
        lik_alpha: float = 0.002,
        lik_warmup: int = 50,
        lik_quiet: int = 300,
        alarm: float = 0.52,
        quiet: int = 30,
        tail_size: int = 1024,
        tail_stride: int = 8,
        tail_q: float = 0.01,
        tail_margin: float = 4.0,
        tail_gain: float = 0.05,
        tail_quiet: int = 600,
        burst_window: int = 28,
        burst_gate: float = 0.6,
        burst_floor: float = 0.01,
        burst_alpha: float = 0.001,
    ) -> None:
        scales = tuple(tuple(s) for s in scales)
        _check_int("blocks", blocks, 1)
        for name, value in (
            ("warmup", warmup),
            ("lik_warmup", lik_warmup),
            ("lik_quiet", lik_quiet),
            ("quiet", quiet),
            ("tail_size", tail_size),
            ("tail_quiet", tail_quiet),
        ):
            _check_int(name, value, 0)
        _check_int("mean_window", mean_window, 1)
        _check_int("lik_short", lik_short, 1)
        if not 0.0 < lik_alpha <= 1.0:
            raise InvalidInput(f"lik_alpha must be in (0, 1], got {lik_alpha!r}")
        _check_int("tail_stride", tail_stride, 1)
        if not 0.0 < tail_q < 0.5:
            raise InvalidInput(f"tail_q must be in (0, 0.5), got {tail_q!r}")
        if not (tail_margin >= 0.0 and tail_gain > 0.0):
            raise InvalidInput(
                f"tail_margin must be >= 0 and tail_gain > 0, got {tail_margin!r}, {tail_gain!r}"
            )
        if not 0.0 < alarm <= 1.0:
            raise InvalidInput(f"alarm must be in (0, 1], got {alarm!r}")
        _check_int("burst_window", burst_window, 0)
        if burst_window == 1:
            raise InvalidInput("burst_window must be 0 (off) or at least 2, got 1")
        if not (0.0 < burst_gate <= 1.0 and burst_floor > 0.0):
            raise InvalidInput(
                "burst_gate must be in (0, 1] and burst_floor > 0,"
                f" got {burst_gate!r}, {burst_floor!r}"
            )
        if not 0.0 < burst_alpha <= 1.0:
            raise InvalidInput(f"burst_alpha must be in (0, 1], got {burst_alpha!r}")
        for scale in scales:
            if len(scale) != 4:
                raise InvalidInput(f"each scale is (window, stride, bank, gate), got {scale!r}")
            win, stride, size, gate = scale
            _check_int("scale window", win, blocks)
            _check_int("scale stride", stride, 1)
            _check_int("scale bank", size, 1)
            if not 0.0 < gate <= 1.0:
                raise InvalidInput(f"scale gate must be in (0, 1], got {gate!r}")
            if win % blocks:
                raise InvalidInput(f"scale window {win} must be a multiple of blocks={blocks}")
        self.scales = tuple((int(w), int(s), int(b), float(g)) for w, s, b, g in scales)
        self.blocks, self.warmup, self.mean_window = int(blocks), int(warmup), int(mean_window)
        self.lik_short, self.lik_alpha, self.lik_warmup = (
            int(lik_short),
            float(lik_alpha),
            int(lik_warmup),
        )
        self.lik_quiet, self.alarm, self.quiet = int(lik_quiet), float(alarm), int(quiet)
        self.tail_size, self.tail_stride, self.tail_q = (
            int(tail_size),
            int(tail_stride),
            float(tail_q),
        )
        self.tail_margin, self.tail_gain = float(tail_margin), float(tail_gain)
        self.tail_quiet = int(tail_quiet)
        self.burst_window, self.burst_gate = int(burst_window), float(burst_gate)
        self.burst_floor, self.burst_alpha = float(burst_floor), float(burst_alpha)

        self._p = np.array(
            [
                self.warmup,
                self.mean_window,
                self.lik_short,
                self.lik_alpha,
                self.lik_warmup,
                self.lik_quiet,
                self.alarm,
                self.quiet,
                self.tail_stride,
                self.tail_q,
                self.tail_margin,
                self.tail_gain,
                self.tail_quiet,
                self.burst_gate,
                self.burst_floor,
                self.burst_alpha,
            ],
            dtype=np.float64,
        )
        offsets = np.cumsum([0] + [b for _, _, b, _ in self.scales])
        self._sp = np.array(
            [[w, s, offsets[k], b, g] for k, (w, s, b, g) in enumerate(self.scales)],
            dtype=np.float64,
        ).reshape(len(self.scales), 5)
        nscales = len(self.scales)
        self.st = np.zeros(_NSTATE)
        self.st[_LAST_ALARM] = -1e18
        self.st[_T_LAST] = -1e18
        self.cst = np.zeros((nscales + 1, 5))  # the last row is the burst channel
        self.cst[:, _C_LAST] = -1e18
        longest = max([self.mean_window] + [w for w, _, _, _ in self.scales])
        self.vals = np.zeros(longest)
        self.raws = np.zeros((nscales + 1, self.lik_short))
        # float32 halves memory and doubles scan speed; NAB scores are unchanged.
        self.bank = np.zeros((int(offsets[-1]), self.blocks), dtype=np.float32)
        self.tring = np.zeros(self.tail_size)
        self.tsort = np.zeros(self.tail_size)
        self.bring = np.zeros(max(0, self.burst_window - 1))
        self.bsort = np.zeros(max(0, self.burst_window - 1))
        self._window = np.zeros((nscales, self.blocks))
        self._one = np.zeros(1)
        self._out = np.zeros(1)

    def params(self):
        return {
            "scales": [list(s) for s in self.scales],
            "blocks": self.blocks,
            "warmup": self.warmup,
            "mean_window": self.mean_window,
            "lik_short": self.lik_short,
            "lik_alpha": self.lik_alpha,
            "lik_warmup": self.lik_warmup,
            "lik_quiet": self.lik_quiet,
            "alarm": self.alarm,
            "quiet": self.quiet,
            "tail_size": self.tail_size,
            "tail_stride": self.tail_stride,
            "tail_q": self.tail_q,
            "tail_margin": self.tail_margin,
            "tail_gain": self.tail_gain,
            "tail_quiet": self.tail_quiet,
            "burst_window": self.burst_window,
            "burst_gate": self.burst_gate,
            "burst_floor": self.burst_floor,
            "burst_alpha": self.burst_alpha,
        }

    def _run(self, x: float, commit: bool) -> float:
        self._one[0] = x
        _replay(
            self._one,
            self.st,
            self.cst,
            self.vals,
            self.raws,
            self.bank,
            self.tring,
            self.tsort,
            self.bring,
            self.bsort,
            self._window,
            self._p,
            self._sp,
            commit,
            self._out,
        )
        return float(self._out[0])

    def score_one(self, x, ts=None):
        return self._run(as_scalar(x), False)

    def learn_one(self, x, ts=None):
        self._run(as_scalar(x), True)

    def score_many(self, values, timestamps=None):
        xs = np.ascontiguousarray(values, dtype=np.float64)
        if xs.ndim != 1:
            raise InvalidInput(
                f"EnsembleDetector takes a 1-D series, got shape {xs.shape}",
                hint="for several sensors use atoll.detect.for_features(n)",
            )
        out = np.empty(xs.shape[0])
        _replay(
            xs,
            self.st,
            self.cst,
            self.vals,
            self.raws,
            self.bank,
            self.tring,
            self.tsort,
            self.bring,
            self.bsort,
            self._window,
            self._p,
            self._sp,
            True,
            out,
        )
        return out


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")
