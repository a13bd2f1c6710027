"""The ``Detector`` port: two verbs, like River's anomaly detectors, and what callers rely on.

``learn_one`` updates the model with one reading; ``score_one`` returns an anomaly score in
[0, 1] for a reading *before* learning from it. ``x`` is a float (univariate) or a 1-D
numpy array (multivariate, one value per sensor).

Beside the two verbs, the platform and the tools use: ``fit`` (these readings are known normal:
fit the model of normal on them; a streaming detector learns each in turn), ``score_many`` (the
batch twin, for replay and warm-up), ``default_threshold`` (where a score becomes an anomaly),
``multivariate`` (whether a reading is an array), ``state``/``from_state`` (saved across
restarts) and ``nbytes`` (memory per series, reported by the service and ``atoll bench nab``).

``Condition`` is what a detector offers when it decides ``is_anomaly`` itself, with memory (a
condition flag with hysteresis, ``atoll.detect.fitted``), rather than "score at or above the
threshold". ``atoll.detect.threshold.decide_many`` asks it, or applies the threshold.

``Explaining`` is what a detector offers when it can say why: ``detect_explained`` is
``detect_many`` plus, per reading, what it expected (in the data's units) and how much each of its
signals or sensors contributed (``Explained``). ``atoll.detect.threshold.explain_many`` asks it,
or decides without an explanation.

``Catalog`` is what detectors built from other detectors (``PerSensor``, ``Joint``,
``Thresholded``) need: children by name and from state. The registry is one and hands itself in,
so the wrappers never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    @property
    def default_threshold(self) -> float:
        """Score at or above which a reading counts as anomalous, in (0, 1]."""

    @property
    def multivariate(self) -> bool:
        """True when a reading is a 1-D array (one value per sensor), not a float."""

    def learn_one(self, x: float | np.ndarray, ts: int | None = None) -> None: ...

    def score_one(self, x: float | np.ndarray, ts: int | None = None) -> float: ...

    def fit(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """These readings are known normal: fit the model of normal on them (a streaming
        detector learns each in turn, as ``learn_one`` would)."""

    def score_many(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        """Score then learn each reading in order: exactly ``score_one``/``learn_one`` in a loop."""

    def state(self) -> bytes:
        """Everything learned, as bytes; restore with ``from_state``."""

    @classmethod
    def from_state(cls, blob: bytes, catalog: Catalog | None = None) -> Detector:
        """The detector ``state()`` saved. A wrapper rebuilds its children through ``catalog``
        (``atoll.detect.restore(blob)`` passes the registry)."""

    def nbytes(self) -> int:
        """Memory held by learned state: the bound on memory per series."""


@runtime_checkable
class Condition(Protocol):
    """A detector that decides ``is_anomaly`` itself: the flag may depend on earlier readings
    (hysteresis), so it is not a function of the score alone. At ``default_threshold`` it agrees
    with the score on when a flag *rises*."""

    def detect_many(
        self, values: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score, decide and learn each reading in order: ``(scores, is_anomaly)``; the scores
        are exactly ``score_many``'s."""

    def decide_one(self, x: float | np.ndarray, ts: int | None = None) -> tuple[float, bool]:
        """The score and ``is_anomaly`` the reading would get, learning nothing."""


class Explained:
    """Why, per reading, for ``n`` readings of ``k`` sensors (``k`` = 1 for a univariate
    detector).

    ``expected[i, j]`` is ``(value, lo, hi)``: what the model expected of sensor ``j`` at reading
    ``i`` and the band it counts as normal, in the data's units (NaN where it has none).
    ``weights[i, c]`` (>= 0) is how much contribution ``names[c]`` made to reading ``i``'s
    anomaly: a signal of the model (a string such as ``"ar"``) or a sensor (its column index, an
    ``int``, which the caller names).

    ``expected`` may be given as a function, computed on first use: most readings are normal,
    and nobody asks what was expected of them."""

    __slots__ = ("_expect", "_expected", "names", "weights")

    def __init__(
        self,
        names: tuple[str | int, ...],
        weights: np.ndarray,
        expected: np.ndarray | Callable[[], np.ndarray],
    ) -> None:
        self.names, self.weights = names, weights
        self._expected = None if callable(expected) else expected
        self._expect = expected if callable(expected) else None

    @property
    def expected(self) -> np.ndarray:
        if self._expected is None:
            assert self._expect is not None
            self._expected = self._expect()
        return self._expected


@runtime_checkable
class Explaining(Protocol):
    """A detector that says why (``atoll.detect.threshold.explain_many`` asks it)."""

    def detect_explained(
        self, values: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, Explained | None]:
        """Exactly ``decide_many``'s ``(scores, is_anomaly)`` (learning the same way), plus the
        explanation (``None`` when it has none, e.g. before it was fitted)."""


@runtime_checkable
class Catalog(Protocol):
    """Detectors by name and from state, for detectors made of other detectors."""

    def get_detector(self, name: str = "default", **params: Any) -> Detector: ...

    def restore(self, blob: bytes) -> Detector: ...
