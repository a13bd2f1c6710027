"""Turning scores into decisions by wrapping a detector, not by a flag on every detector."""

from __future__ import annotations

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector
from atoll.detect.port import Detector
from atoll.detect.state import Snapshot


class Thresholded(StreamingDetector):
    """Wraps ``detector``; a reading is anomalous when its score is ``>= threshold``
    (the detector's own ``default_threshold`` unless given).

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

    def params(self):
        return {"threshold": self.threshold}

    def learn_one(self, x, ts=None):
        self.detector.learn_one(x, ts)

    def score_one(self, x, ts=None):
        return self.detector.score_one(x, ts)

    def predict_one(self, x, ts=None) -> bool:
        return self.score_one(x, ts) >= self.threshold

    def detect_one(self, x, ts=None) -> tuple[float, bool]:
        """Score, decide, then learn: the streaming step most callers want."""
        s = self.score_one(x, ts)
        self.learn_one(x, ts)
        return s, s >= self.threshold

    def score_many(self, values, timestamps=None):
        return self.detector.score_many(values, timestamps)

    def detect_many(self, values, timestamps=None) -> tuple[np.ndarray, np.ndarray]:
        s = self.score_many(values, timestamps)
        return s, s >= self.threshold

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
