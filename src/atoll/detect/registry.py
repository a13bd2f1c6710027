"""Detectors by name: ``get_detector("ewma", alpha=0.05)``, and ``restore(blob)`` for saved state.

``"default"`` names the detector Atoll runs when nothing else is asked for. A detector module
registers itself on import with ``register``; the modules below are imported on first use, so a new
detector is one module plus one line in ``_MODULES``.

Adding a detector (DETECT-B): subclass ``atoll.detect.base.StreamingDetector`` (set ``kind``,
``_state_arrays``, ``default_threshold``, ``params()``), end the module with
``register(MyDetector)``, append the module to ``_MODULES`` and, for the default, set ``DEFAULT =
MyDetector.kind``. ``tests/detect/test_conformance.py`` then runs
``atoll.testing.detect.check_detector`` on it (batch == one-at-a-time, strictly online, state
round-trip, bounded memory, NaN-safe).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect.base import StreamingDetector
from atoll.detect.state import unpack

#: Modules that define detectors (imported lazily, in order).
_MODULES = (
    "atoll.detect.gaussian",
    "atoll.detect.ewma",
    "atoll.detect.seasonal",
    "atoll.detect.mahalanobis",
    "atoll.detect.multivariate",
    "atoll.detect.threshold",
    "atoll.detect.ensemble",
)

#: The name ``"default"`` resolves to: the strong ensemble (``ensemble.py``).
DEFAULT = "ensemble"

_FACTORIES: dict[str, Callable[..., StreamingDetector]] = {}
_CLASSES: dict[str, type[StreamingDetector]] = {}
_loaded = False


def register(
    cls: type[StreamingDetector],
    name: str | None = None,
    factory: Callable[..., StreamingDetector] | None = None,
) -> type[StreamingDetector]:
    """Make ``cls`` restorable by its ``kind`` and constructible as ``name`` (default: its kind)."""
    _CLASSES[cls.kind] = cls
    _FACTORIES[name or cls.kind] = factory or cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODULES:
        importlib.import_module(mod)
    from atoll.detect.ensemble import EnsembleDetector
    from atoll.detect.ewma import EWMAZScore
    from atoll.detect.gaussian import WindowedGaussian
    from atoll.detect.mahalanobis import Mahalanobis
    from atoll.detect.multivariate import Joint, PerSensor
    from atoll.detect.seasonal import SeasonalBaseline
    from atoll.detect.threshold import Thresholded

    for cls in (
        WindowedGaussian,
        EWMAZScore,
        SeasonalBaseline,
        Mahalanobis,
        PerSensor,
        Joint,
        EnsembleDetector,
    ):
        if cls.kind not in _CLASSES:
            register(cls)
    _CLASSES.setdefault(Thresholded.kind, Thresholded)  # wraps a detector: restorable, not by name


def names() -> list[str]:
    """Registered detector names (plus ``"default"``)."""
    _load()
    return sorted(_FACTORIES) + ["default"]


def resolve(name: str) -> str:
    _load()
    return DEFAULT if name == "default" else name


def get_detector(name: str = "default", **params: Any) -> StreamingDetector:
    """A fresh detector. Multivariate callers want ``for_features(n)``."""
    real = resolve(name)
    try:
        factory = _FACTORIES[real]
    except KeyError:
        raise NotFound(
            f"no detector named {name!r}", hint=f"choose one of {', '.join(names())}"
        ) from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise InvalidInput(f"bad parameters for detector {real!r}: {exc}") from exc


def for_features(n_features: int, name: str = "default", **params: Any) -> StreamingDetector:
    """A detector for readings of ``n_features`` values: univariate ones are judged jointly."""
    det = get_detector(name, **params)
    if n_features > 1 and not det.multivariate:
        from atoll.detect.multivariate import Joint

        return Joint(detector=resolve(name), detector_params=params)
    return det


def restore(blob: bytes) -> StreamingDetector:
    """Rebuild any detector from ``state()`` bytes."""
    _load()
    snap = unpack(blob)
    try:
        cls = _CLASSES[snap.kind]
    except KeyError:
        raise InvalidInput(
            f"state is for unknown detector {snap.kind!r}",
            hint="the module that defines it must be listed in atoll.detect.registry",
        ) from None
    return cls._from_snapshot(snap)
