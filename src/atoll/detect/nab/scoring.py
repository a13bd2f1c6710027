"""NAB's scoring rules, vectorised over the whole corpus.

Per record, NAB's sweeper assigns a weight that does not depend on the threshold:

* inside a window (inclusive ``[first, last]`` record),
  ``sigma(-(last - i + 1) / width) / sigma(-1)`` times ``A_TP``, so the window's first record
  earns exactly ``A_TP``;
* outside every window, ``sigma(|i - prev_last| / (prev_width - 1))`` times ``A_FP``, or ``-A_FP``
  before the first window (``sigma(d) = -1`` past ``d = 3``);
* in the probationary period, nothing.

At a threshold ``t`` the records scoring ``>= t`` are detections. A window is worth its best
(earliest) detection, or ``-A_FN`` without one; false positives add up. Because the corpus score
only changes where ``t`` crosses one of the detector's own score values, :func:`optimise` evaluates
*every* distinct value in one sorted pass, which is exact (NAB's own optimiser is a coarse-to-fine
search that can miss the best threshold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.detect.nab.corpus import Corpus, Profile

_PROBATION, _FP, _WINDOW = 0, 1, 2


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's ``2 / (1 + e^(5y)) - 1``, pinned to -1 past ``y = 3``."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, val)


_MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class Layout:
    """Threshold-independent facts about every record
    of the corpus, concatenated in corpus order."""

    relpaths: tuple[str, ...]
    offsets: np.ndarray  # len(streams) + 1
    kind: np.ndarray  # int8: _PROBATION, _FP, _WINDOW
    window: np.ndarray  # int64 global window id, -1 outside windows
    tp_unit: np.ndarray  # window records: TP weight for A_TP = 1
    fp_unit: np.ndarray  # FP records: FP weight for A_FP = 1 (in [-1, 0])
    n_windows: int
    window_best: np.ndarray  # per window: best tp_unit outside probation (the perfect detector)


def layout(corpus: Corpus) -> Layout:
    """Precompute per-record weights once per corpus (cached on the corpus)."""
    cached = corpus.__dict__.get("_nab_layout")
    if cached is not None:
        return cached
    kinds, wins, tps, fps, offsets = [], [], [], [], [0]
    n_windows = 0
    for stream in corpus.streams.values():
        n = len(stream)
        idx = np.arange(n)
        kind = np.full(n, _FP, dtype=np.int8)
        win = np.full(n, -1, dtype=np.int64)
        tp = np.zeros(n)
        fp = np.full(n, -1.0)  # before the first window
        prev_last: int | None = None  # last record of the previous window
        prev_width = 0  # and its width (read only once prev_last is set)
        for first, last in stream.windows:
            width = last - first + 1
            if prev_last is not None:
                seg = idx[prev_last + 1 : first]
                fp[seg] = scaled_sigmoid(np.abs(prev_last - seg) / (prev_width - 1.0))
            sl = slice(first, last + 1)
            kind[sl] = _WINDOW
            win[sl] = n_windows
            tp[sl] = scaled_sigmoid(-(last - idx[sl] + 1) / float(width)) / _MAX_TP
            n_windows += 1
            prev_last, prev_width = last, width
        if prev_last is not None:
            seg = idx[prev_last + 1 :]
            fp[seg] = scaled_sigmoid(np.abs(prev_last - seg) / (prev_width - 1.0))
        kind[: stream.probation] = _PROBATION
        win[: stream.probation] = -1
        kinds.append(kind)
        wins.append(win)
        tps.append(tp)
        fps.append(fp)
        offsets.append(offsets[-1] + n)
    kind = np.concatenate(kinds)
    window = np.concatenate(wins)
    tp_unit = np.where(kind == _WINDOW, np.concatenate(tps), 0.0)
    fp_unit = np.where(kind == _FP, np.concatenate(fps), 0.0)
    best = np.full(n_windows, -np.inf)
    np.maximum.at(best, window[window >= 0], tp_unit[window >= 0])
    out = Layout(
        tuple(corpus.streams), np.array(offsets), kind, window, tp_unit, fp_unit, n_windows, best
    )
    corpus.__dict__["_nab_layout"] = out  # Corpus is frozen; the cache is not part of its value
    return out


def _concat_scores(corpus: Corpus, lay: Layout, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    missing = [p for p in lay.relpaths if p not in scores]
    if missing:
        raise InvalidInput(
            f"no scores for {len(missing)} corpus streams, e.g. {missing[0]}",
            hint="score every stream listed in labels/combined_windows.json",
        )
    parts = []
    for p in lay.relpaths:
        s = np.asarray(scores[p], dtype=np.float64)
        if len(s) != len(corpus.streams[p]):
            raise InvalidInput(
                f"{p}: {len(s)} scores for {len(corpus.streams[p])} records",
                hint="give exactly one anomaly score per record",
            )
        parts.append(s)
    return np.concatenate(parts)


def null_score(lay: Layout, profile: Profile) -> float:
    return -profile.fn * lay.n_windows


def perfect_score(lay: Layout, profile: Profile) -> float:
    """Detections at the first scorable record of every window and nowhere else."""
    return float(
        profile.tp * np.sum(lay.window_best[np.isfinite(lay.window_best)])
        - profile.fn * np.sum(~np.isfinite(lay.window_best))
    )


def normalise(raw: float, lay: Layout, profile: Profile) -> float:
    lo, hi = null_score(lay, profile), perfect_score(lay, profile)
    return 100.0 * (raw - lo) / (hi - lo)


def raw_score_at_threshold(
    corpus: Corpus, scores: Mapping[str, np.ndarray], profile: Profile, threshold: float
) -> float:
    """NAB's raw (un-normalised) corpus score when
    records scoring ``>= threshold`` are detections."""
    lay = layout(corpus)
    s = _concat_scores(corpus, lay, scores)
    det = s >= threshold
    fp = profile.fp * float(np.sum(lay.fp_unit[det & (lay.kind == _FP)]))
    best = np.full(lay.n_windows, -np.inf)
    hit = det & (lay.kind == _WINDOW)
    np.maximum.at(best, lay.window[hit], lay.tp_unit[hit])
    windows = np.where(np.isfinite(best), profile.tp * best, -profile.fn)
    return fp + float(windows.sum())


def score_at_threshold(
    corpus: Corpus, scores: Mapping[str, np.ndarray], profile: Profile | str, threshold: float
) -> float:
    """Normalised NAB score (null = 0, perfect = 100) at one threshold."""
    profile = _profile(corpus, profile)
    raw = raw_score_at_threshold(corpus, scores, profile, threshold)
    return normalise(raw, layout(corpus), profile)


def sweep(
    corpus: Corpus, scores: Mapping[str, np.ndarray], profile: Profile | str
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct score value (descending thresholds).

    Returns ``(thresholds, raw_scores)``; ``raw_scores[k]`` counts records ``>= thresholds[k]``.
    """
    profile = _profile(corpus, profile)
    lay = layout(corpus)
    s = _concat_scores(corpus, lay, scores)
    if np.isnan(s).any():
        raise InvalidInput("anomaly scores contain NaN", hint="emit a number for every record")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    kind, win = lay.kind[order], lay.window[order]
    delta = np.where(kind == _FP, profile.fp * lay.fp_unit[order], 0.0)

    # Each window is worth its best detection so far as the threshold falls: a running max per
    # window, made segmented by offsetting each window's values above every earlier window's.
    in_win = np.flatnonzero(kind == _WINDOW)
    if len(in_win):
        w = win[in_win]
        by_window = np.argsort(w, kind="stable")  # keeps descending-score order within a window
        pos, w = in_win[by_window], w[by_window]
        tp = profile.tp * lay.tp_unit[order][pos]
        span = 4.0 * (profile.tp + profile.fn) + 1.0
        run = np.maximum.accumulate(tp + w * span) - w * span
        prev = np.empty_like(run)
        prev[1:] = run[:-1]
        first = np.ones(len(w), dtype=bool)
        first[1:] = w[1:] != w[:-1]
        prev[first] = -profile.fn
        np.add.at(delta, pos, run - prev)

    total = null_score(lay, profile) + np.cumsum(delta)
    last_of_value = np.ones(len(s_sorted), dtype=bool)
    last_of_value[:-1] = s_sorted[:-1] != s_sorted[1:]
    return s_sorted[last_of_value], total[last_of_value]


def optimise(
    corpus: Corpus, scores: Mapping[str, np.ndarray], profile: Profile | str
) -> tuple[float, float]:
    """The threshold that maximises the corpus score, and that normalised score.

    Ties go to the highest threshold (fewest detections). If no threshold beats never
    detecting, the answer is a threshold above every score, worth the null score (0).
    """
    profile = _profile(corpus, profile)
    lay = layout(corpus)
    thresholds, raw = sweep(corpus, scores, profile)
    k = int(np.argmax(raw)) if len(raw) else -1
    if k < 0 or raw[k] <= null_score(lay, profile):
        above = float(np.nextafter(thresholds[0], np.inf)) if len(thresholds) else 1.0
        return above, 0.0
    return float(thresholds[k]), normalise(float(raw[k]), lay, profile)


def _profile(corpus: Corpus, profile: Profile | str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return corpus.profiles[profile]
    except KeyError:
        raise InvalidInput(
            f"unknown NAB profile {profile!r}", hint=f"use one of {', '.join(corpus.profiles)}"
        ) from None


def profile_scores(corpus: Corpus, scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{profile: {"threshold": t, "score": normalised}}``
    for every profile, thresholds optimised."""
    out = {}
    for name in corpus.profiles:
        t, sc = optimise(corpus, scores, name)
        out[name] = {"threshold": t, "score": sc}
    return out


__all__ = [
    "Layout",
    "layout",
    "normalise",
    "null_score",
    "optimise",
    "perfect_score",
    "profile_scores",
    "raw_score_at_threshold",
    "scaled_sigmoid",
    "score_at_threshold",
    "sweep",
]
