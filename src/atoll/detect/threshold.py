"""Turning scores into decisions by wrapping a detector, not by a flag on every detector.

``decide_many`` is ``is_anomaly`` for any detector: a ``Condition`` detector's own flag (with
its hysteresis), else "score at or above ``default_threshold``". ``explain_many`` is the same
decision plus the detector's explanation when it gives one (``Explaining``). ``onsets`` turns
flags into alarm events, one per rising edge.

>>> import numpy as np
>>> onsets(np.array([False, True, True, False, True])).tolist()
[False, True, False, False, True]
>>> onsets(np.array([True, True, False]), before=True).tolist()
[False, False, False]
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector
from atoll.detect.port import Condition, Detector, Explained, Explaining
from atoll.detect.state import Snapshot

#: Whether a detector class decides itself. An ``isinstance`` check against a runtime Protocol
#: costs about 20 µs, more than a single reading's scoring: the service asks per message.
_DECIDES: dict[type, bool] = {}


def _decides(detector: Detector) -> bool:
    known = _DECIDES.get(type(detector))
    if known is None:
        known = _DECIDES[type(detector)] = isinstance(detector, Condition)
    return known


def decide_many(
    detector: Detector, values: np.ndarray, timestamps: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Score, decide and learn each reading: ``(scores, is_anomaly)``."""
    if _decides(detector):
        return cast(Condition, detector).detect_many(values, timestamps)
    scores = np.asarray(detector.score_many(values, timestamps), dtype=np.float64)
    return scores, scores >= detector.default_threshold


_EXPLAINS: dict[type, bool] = {}


def explain_many(
    detector: Detector, values: np.ndarray, timestamps: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, Explained | None]:
    """``decide_many`` (the same scores, decisions and learning) plus the detector's explanation
    when it gives one, else ``None``."""
    known = _EXPLAINS.get(type(detector))
    if known is None:
        known = _EXPLAINS[type(detector)] = isinstance(detector, Explaining)
    if known:
        return cast(Explaining, detector).detect_explained(values, timestamps)
    scores, flags = decide_many(detector, values, timestamps)
    return scores, flags, None


def decide_one(detector: Detector, x: Any, ts: int | None = None) -> tuple[float, bool]:
    """The score and ``is_anomaly`` a reading would get, learning nothing."""
    if _decides(detector):
        return cast(Condition, detector).decide_one(x, ts)
    score = detector.score_one(x, ts)
    return score, score >= detector.default_threshold


def onsets(flags: np.ndarray, before: bool = False) -> np.ndarray:
    """Rising edges of ``flags``: an alarm where a flag rises (``before``: the flag before them)."""
    flags = np.asarray(flags, dtype=bool)
    previous = np.r_[before, flags[:-1]] if len(flags) else flags
    return flags & ~previous


class Thresholded(StreamingDetector):
    """Wraps ``detector``; a reading is anomalous when its score is ``>= threshold``
    (the detector's own ``default_threshold`` unless given). At the detector's own threshold a
    ``Condition`` detector decides itself (``decide_many``), with its hysteresis.

    >>> from atoll.detect.ewma import EWMAZScore
    >>> d = Thresholded(EWMAZScore(min_count=3), threshold=0.99)
    >>> [d.detect_one(v)[1] for v in [1.0, 1.1, 0.9, 1.0, 1.05, 50.0]]
    [False, False, False, False, False, True]
    """

    kind = "thresholded"

    def __init__(self, detector: Detector, threshold: float | None = None) -> None:
        self.detector = detector
        self.threshold = float(detector.default_threshold if threshold is None else threshold)

    @property
    def multivariate(self) -> bool:  # type: ignore[override]
        return self.detector.multivariate

    @property
    def default_threshold(self) -> float:  # type: ignore[override]
        return self.threshold

    @property
    def _own(self) -> bool:
        """Decisions are the detector's own (at its own threshold)."""
        return self.threshold == self.detector.default_threshold

    def params(self):
        return {"threshold": self.threshold}

    def fit(self, values, timestamps=None):
        self.detector.fit(values, timestamps)

    def learn_one(self, x, ts=None):
        self.detector.learn_one(x, ts)

    def score_one(self, x, ts=None):
        return self.detector.score_one(x, ts)

    def decide_one(self, x, ts=None) -> tuple[float, bool]:
        if self._own:
            return decide_one(self.detector, x, ts)
        score = self.score_one(x, ts)
        return score, score >= self.threshold

    def predict_one(self, x, ts=None) -> bool:
        return self.decide_one(x, ts)[1]

    def detect_one(self, x, ts=None) -> tuple[float, bool]:
        """Score, decide, then learn: the streaming step most callers want."""
        scores, flags = self.detect_many(np.array([x], dtype=np.float64), _one_ts(ts))
        return float(scores[0]), bool(flags[0])

    def score_many(self, values, timestamps=None):
        return self.detector.score_many(values, timestamps)

    def detect_many(self, values, timestamps=None) -> tuple[np.ndarray, np.ndarray]:
        if self._own:
            return decide_many(self.detector, values, timestamps)
        s = np.asarray(self.score_many(values, timestamps), dtype=np.float64)
        return s, s >= self.threshold

    def detect_explained(
        self, values, timestamps=None
    ) -> tuple[np.ndarray, np.ndarray, Explained | None]:
        scores, flags, why = explain_many(self.detector, values, timestamps)
        if self._own:
            return scores, flags, why
        scores = np.asarray(scores, dtype=np.float64)
        return scores, scores >= self.threshold, why

    def _snapshot(self):
        return Snapshot(self.kind, self.version, self.params(), {}, [self.detector.state()])

    @classmethod
    def _from_snapshot(cls, snap, catalog=None):
        if catalog is None:
            raise InvalidInput(
                "Thresholded restores the detector it wraps through a catalog",
                hint="restore with atoll.detect.restore(blob), which passes the registry",
            )
        return cls(catalog.restore(snap.children[0]), **snap.params)

    def nbytes(self):
        return self.detector.nbytes()


def _one_ts(ts: int | None) -> np.ndarray | None:
    return None if ts is None else np.array([ts], dtype=np.int64)
