"""The ``Detector`` port: two verbs, like River's anomaly detectors.

``learn_one`` updates the model with one reading; ``score_one`` returns an anomaly score in
[0, 1] for a reading *before* learning from it. ``x`` is a float (univariate) or a 1-D
numpy array (multivariate, one value per sensor).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    def learn_one(self, x: float | np.ndarray, ts: int | None = None) -> None: ...

    def score_one(self, x: float | np.ndarray, ts: int | None = None) -> float: ...

    def state(self) -> bytes:
        """Everything learned, as bytes; restore with ``from_state``."""

    @classmethod
    def from_state(cls, blob: bytes) -> Detector: ...
