"""Detectors by name: ``get_detector("ewma", alpha=0.05)``, and ``restore(blob)`` for saved state.

``"default"`` names the detector Atoll runs when nothing else is asked for: ``DEFAULT`` on a
stream with no history, ``DEFAULT_WITH_HISTORY`` when at least ``MIN_HISTORY`` readings of
known-normal history are fitted first (``resolve(name, history=rows)``; ``atoll detect
--warmup-rows N``). ``DETECTORS`` lists
the detector classes; each is constructible by its ``kind`` and restorable from its state.
``WRAPPERS`` wrap a detector object: restorable, not constructible by name.

Detectors made of other detectors (``PerSensor``, ``Joint``, ``Thresholded``) get the registry
as their ``atoll.detect.port.Catalog``: the registry passes itself in when it makes or restores
one, so they never import this module.

Adding a detector (DETECT-B): subclass ``atoll.detect.base.StreamingDetector`` (set ``kind``,
``_state_arrays``, ``default_threshold``, ``params()``), import it here and add it to
``DETECTORS`` and, for the default, set ``DEFAULT = MyDetector.kind``. A detector from outside
Atoll can ``register(MyDetector)`` instead. ``tests/detect/test_conformance.py`` then runs
``atoll.testing.detect.check_detector`` on it (batch == one-at-a-time, strictly online, state
round-trip, bounded memory, NaN-safe).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect.base import StreamingDetector
from atoll.detect.ensemble import EnsembleDetector
from atoll.detect.ewma import EWMAZScore
from atoll.detect.fitted import FittedDetector
from atoll.detect.gaussian import WindowedGaussian
from atoll.detect.mahalanobis import Mahalanobis
from atoll.detect.multivariate import Joint, PerSensor
from atoll.detect.pca import PCABaseline
from atoll.detect.seasonal import SeasonalBaseline
from atoll.detect.state import unpack
from atoll.detect.threshold import Thresholded

#: Detectors by ``kind``, in this order.
DETECTORS: tuple[type[StreamingDetector], ...] = (
    WindowedGaussian,
    EWMAZScore,
    SeasonalBaseline,
    Mahalanobis,
    PerSensor,
    Joint,
    EnsembleDetector,
    FittedDetector,
    PCABaseline,
)
#: Detectors that wrap a given detector: restorable from state, not made by name.
WRAPPERS: tuple[type[StreamingDetector], ...] = (Thresholded,)
#: Detectors that make and restore others by name; they are handed the registry.
_COMPOSITES: tuple[type[StreamingDetector], ...] = (PerSensor, Joint)

#: The name ``"default"`` resolves to: the strong ensemble (``ensemble.py``).
DEFAULT = "ensemble"
#: ... and with known-normal history to fit on: a fitted model of normal (``fitted.py``).
DEFAULT_WITH_HISTORY = "fitted"
#: Readings of history the fitted default needs; with fewer, ``DEFAULT`` learns them.
MIN_HISTORY = FittedDetector().min_history()


class DetectorRegistry:
    """Detector classes by name (to make one) and by ``kind`` (to restore one from state).

    It is the ``Catalog`` that composite detectors are given."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[..., StreamingDetector]] = {}
        self._classes: dict[str, type[StreamingDetector]] = {}

    def register(
        self,
        cls: type[StreamingDetector],
        name: str | None = None,
        factory: Callable[..., StreamingDetector] | None = None,
    ) -> type[StreamingDetector]:
        """Make ``cls`` restorable by its ``kind`` and constructible as ``name`` (default: its
        kind)."""
        self._classes[cls.kind] = cls
        self._factories[name or cls.kind] = factory or cls
        return cls

    def restorable(self, cls: type[StreamingDetector]) -> None:
        """Make ``cls`` restorable by its ``kind`` only (a wrapper of a given detector)."""
        self._classes.setdefault(cls.kind, cls)

    def names(self) -> list[str]:
        """Registered detector names (plus ``"default"``)."""
        return sorted(self._factories) + ["default"]

    def resolve(self, name: str, history: int = 0) -> str:
        """The detector ``name`` stands for; ``history``: readings of known-normal history it is
        fitted on first."""
        if name != "default":
            return name
        return DEFAULT_WITH_HISTORY if history >= MIN_HISTORY else DEFAULT

    def get_detector(self, name: str = "default", **params: Any) -> StreamingDetector:
        """A fresh detector. Multivariate callers want ``for_features(n)``."""
        real = self.resolve(name)
        try:
            factory = self._factories[real]
        except KeyError:
            raise NotFound(
                f"no detector named {name!r}", hint=f"choose one of {', '.join(self.names())}"
            ) from None
        try:
            return factory(**params)
        except TypeError as exc:
            raise InvalidInput(f"bad parameters for detector {real!r}: {exc}") from exc

    def for_features(
        self, n_features: int, name: str = "default", history: int = 0, **params: Any
    ) -> StreamingDetector:
        """A detector for readings of ``n_features`` values: univariate ones are judged jointly.
        ``history``: readings of known-normal history it is fitted on first."""
        real = self.resolve(name, history)
        det = self.get_detector(real, **params)
        if n_features > 1 and not det.multivariate:
            # A fitted model of normal per sensor goes with a fitted healthy baseline across them.
            joint = "pca" if real == DEFAULT_WITH_HISTORY else "mahalanobis"
            return Joint(detector=real, detector_params=params, joint=joint, catalog=self)
        return det

    def restore(self, blob: bytes) -> StreamingDetector:
        """Rebuild any detector from ``state()`` bytes."""
        snap = unpack(blob)
        try:
            cls = self._classes[snap.kind]
        except KeyError:
            raise InvalidInput(
                f"state is for unknown detector {snap.kind!r}",
                hint="the detector must be listed in atoll.detect.registry.DETECTORS",
            ) from None
        return cls._from_snapshot(snap, self)


def _build() -> DetectorRegistry:
    reg = DetectorRegistry()
    for cls in DETECTORS:
        make = cast("Callable[..., StreamingDetector]", cls)  # composites take catalog=
        reg.register(cls, factory=partial(make, catalog=reg) if cls in _COMPOSITES else None)
    for cls in WRAPPERS:
        reg.restorable(cls)
    return reg


#: The registry; the functions below are its methods.
REGISTRY = _build()

register = REGISTRY.register
names = REGISTRY.names
resolve = REGISTRY.resolve
get_detector = REGISTRY.get_detector
for_features = REGISTRY.for_features
restore = REGISTRY.restore
