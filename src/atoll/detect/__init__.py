"""Streaming anomaly detection: detectors with two verbs, by name, with state as bytes.

>>> import numpy as np
>>> from atoll.detect import Thresholded, get_detector, restore
>>> det = Thresholded(get_detector("ewma", alpha=0.05))
>>> scores = det.score_many(np.r_[np.zeros(100) + np.sin(np.arange(100)), 25.0])
>>> bool(scores[-1] >= det.threshold)
True
>>> again = restore(det.state())          # e.g. after a restart
>>> again.score_one(0.5) == det.score_one(0.5)
True

Detectors: ``names()``; ``"default"`` is the strong ensemble, or, with known-normal history to
``fit`` on, the fitted model of normal (``atoll.detect.fitted``, whose ``is_anomaly`` is a
condition flag: ``Condition``). ``for_features(n)`` judges ``n`` sensors jointly. NAB tooling
lives in ``atoll.detect.nab``; the platform service in ``atoll.detect.service``.
"""

from atoll.detect.base import StreamingDetector
from atoll.detect.port import Condition, Detector
from atoll.detect.registry import DEFAULT, for_features, get_detector, names, register, restore
from atoll.detect.threshold import Thresholded

__all__ = [
    "DEFAULT",
    "Condition",
    "Detector",
    "StreamingDetector",
    "Thresholded",
    "for_features",
    "get_detector",
    "names",
    "register",
    "restore",
]
