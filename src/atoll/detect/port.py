"""The ``Detector`` port: two verbs, like River's anomaly detectors, and what callers rely on.

``learn_one`` updates the model with one reading; ``score_one`` returns an anomaly score in
[0, 1] for a reading *before* learning from it. ``x`` is a float (univariate) or a 1-D
numpy array (multivariate, one value per sensor).

Beside the two verbs, the platform and the tools use: ``score_many`` (the batch twin, for replay
and warm-up), ``default_threshold`` (where a score becomes an anomaly), ``multivariate`` (whether
a reading is an array), ``state``/``from_state`` (saved across restarts) and ``nbytes`` (memory
per series, reported by the service and ``atoll bench nab``).

``Catalog`` is what detectors built from other detectors (``PerSensor``, ``Joint``,
``Thresholded``) need: children by name and from state. The registry is one and hands itself in,
so the wrappers never import it.
"""

from __future__ import annotations

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
class Catalog(Protocol):
    """Detectors by name and from state, for detectors made of other detectors."""

    def get_detector(self, name: str = "default", **params: Any) -> Detector: ...

    def restore(self, blob: bytes) -> Detector: ...
