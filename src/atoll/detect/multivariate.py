"""Judging a machine's sensors jointly by wrapping univariate detectors.

``PerSensor`` runs one univariate detector per sensor and combines their scores: the maximum, or,
for calibrated tail scores, Šidák's correction (so one wild sensor of ten does not cry wolf ten
times as often) or Fisher's method (so several mildly odd sensors add up). ``Joint`` adds a
``Mahalanobis`` detector for broken correlations, and is what ``atoll detect`` uses for several
columns.

Both name their per-sensor detector, and make and restore it through a ``Catalog`` given at
construction (``atoll.detect.get_detector("joint", ...)`` and ``restore`` give the registry).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector
from atoll.detect.mahalanobis import Mahalanobis
from atoll.detect.pca import PCABaseline
from atoll.detect.port import Catalog, Detector, Explained
from atoll.detect.state import Snapshot, unpack
from atoll.detect.threshold import decide_many, decide_one, explain_many

_COMBINERS = ("max", "sidak", "fisher")
_JOINTS = ("mahalanobis", "pca")


def combine(scores: np.ndarray, how: str) -> float:
    """Combine per-sensor scores in [0, 1] into one.

    ``max`` suits any detector (the decision threshold keeps its meaning). ``sidak`` and ``fisher``
    assume calibrated tail scores (score = 1 - p, as the Gaussian/EWMA/seasonal detectors give).
    """
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    k = len(scores)
    if k == 0:
        return 0.0
    if how == "max":
        return float(scores.max())
    if how == "sidak":
        return float(scores.max() ** k)
    p = np.clip(1.0 - scores, 1e-300, 1.0)
    stat = float(-2.0 * np.log(p).sum())
    # chi-square survival with 2k degrees of freedom has a closed form.
    half = stat / 2.0
    term, total = 1.0, 1.0
    for i in range(1, k):
        term *= half / i
        total += term
    return float(1.0 - math.exp(-half) * total)


def _combine_rows(rows: np.ndarray, how: str) -> np.ndarray:
    return np.array([combine(r, how) for r in rows]) if len(rows) else np.empty(0)


class PerSensor(StreamingDetector):
    """One ``detector`` per sensor (created on the
    first reading), scores combined by ``combine``.

    ``is_anomaly`` (``detect_many``): with ``max``, a reading is abnormal while any sensor's
    detector says so (its own condition flag, if it keeps one); otherwise the combined score is
    compared with the threshold."""

    kind = "per_sensor"
    multivariate = True

    def __init__(
        self,
        detector: str = "default",
        detector_params: dict[str, Any] | None = None,
        combine: str = "max",
        *,
        catalog: Catalog,
    ) -> None:
        if combine not in _COMBINERS:
            raise InvalidInput(
                f"unknown combiner {combine!r}", hint=f"use one of {', '.join(_COMBINERS)}"
            )
        self.detector, self.detector_params, self.combine = (
            detector,
            dict(detector_params or {}),
            combine,
        )
        self.catalog = catalog
        self.children: list[Detector] = []
        self._threshold: float | None = None

    @property
    def default_threshold(self) -> float:  # type: ignore[override]
        # Known before the first reading (a Thresholded wrapper asks at construction).
        if self._threshold is None:
            self._threshold = float(
                self.catalog.get_detector(self.detector, **self.detector_params).default_threshold
            )
        return self._threshold

    def params(self):
        return {
            "detector": self.detector,
            "detector_params": self.detector_params,
            "combine": self.combine,
        }

    def _vec(self, x) -> np.ndarray:
        v = np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel()
        if not self.children:
            make = self.catalog.get_detector
            self.children = [make(self.detector, **self.detector_params) for _ in v]
        elif len(v) != len(self.children):
            raise InvalidInput(
                f"expected {len(self.children)} values per reading, got {len(v)}",
                hint="send every sensor of the machine in each reading (NaN if missing)",
            )
        return v

    def learn_one(self, x, ts=None):
        # Latent quirk kept as it was (strict=False): on the first reading ``self.children`` is read
        # before ``_vec`` creates the children, so the first reading is not learned. Issue #12.
        for child, v in zip(self.children, self._vec(x), strict=False):
            child.learn_one(v, ts)

    def score_one(self, x, ts=None):
        v = self._vec(x)
        return combine(
            np.array([c.score_one(xi, ts) for c, xi in zip(self.children, v, strict=True)]),
            self.combine,
        )

    def fit(self, values, timestamps=None):
        xs = _rows(values)
        if len(xs):
            self._vec(xs[0])
            for j, child in enumerate(self.children):
                child.fit(xs[:, j], timestamps)

    def score_many(self, values, timestamps=None):
        xs = _rows(values)
        if not len(xs):
            return np.empty(0)
        self._vec(xs[0])
        # Sensors are independent models, so replaying them column by column is still online.
        cols = np.column_stack(
            [c.score_many(xs[:, j], timestamps) for j, c in enumerate(self.children)]
        )
        return _combine_rows(cols, self.combine)

    def detect_many(self, values, timestamps=None) -> tuple[np.ndarray, np.ndarray]:
        xs = _rows(values)
        if not len(xs):
            return np.empty(0), np.empty(0, dtype=bool)
        self._vec(xs[0])
        decided = [decide_many(c, xs[:, j], timestamps) for j, c in enumerate(self.children)]
        scores = _combine_rows(np.column_stack([s for s, _ in decided]), self.combine)
        if self.combine == "max":
            anyone = np.column_stack([f for _, f in decided]).any(axis=1)
            return scores, np.asarray(anyone, dtype=bool)
        return scores, np.asarray(scores >= self.default_threshold, dtype=bool)

    def detect_explained(
        self, values, timestamps=None
    ) -> tuple[np.ndarray, np.ndarray, Explained | None]:
        """``detect_many`` plus, per sensor, what its detector expected, and each sensor's share
        (the odds ``s / (1 - s)`` of its score: for ``fitted`` its ``z``)."""
        xs = _rows(values)
        if not len(xs):
            return np.empty(0), np.empty(0, dtype=bool), None
        self._vec(xs[0])
        decided = [explain_many(c, xs[:, j], timestamps) for j, c in enumerate(self.children)]
        cols = np.column_stack([s for s, _, _ in decided])
        scores = _combine_rows(cols, self.combine)
        if self.combine == "max":
            flags = np.column_stack([f for _, f, _ in decided]).any(axis=1)
        else:
            flags = scores >= self.default_threshold

        def expected() -> np.ndarray:
            out = np.full((len(xs), len(decided), 3), np.nan)
            for j, (_, _, why) in enumerate(decided):
                if why is not None:
                    out[:, j, :] = why.expected[:, 0, :]
            return out

        names: tuple[str | int, ...] = tuple(range(len(self.children)))
        return scores, np.asarray(flags, dtype=bool), Explained(names, _odds(cols), expected)

    def decide_one(self, x, ts=None) -> tuple[float, bool]:
        v = self._vec(x)
        decided = [decide_one(c, xi, ts) for c, xi in zip(self.children, v, strict=True)]
        score = combine(np.array([s for s, _ in decided]), self.combine)
        if self.combine == "max":
            return score, any(f for _, f in decided)
        return score, score >= self.default_threshold

    def _snapshot(self):
        return Snapshot(
            self.kind, self.version, self.params(), {}, [c.state() for c in self.children]
        )

    @classmethod
    def _from_snapshot(cls, snap, catalog=None):
        catalog = _needs(catalog, cls)
        det = cls(**snap.params, catalog=catalog)
        det.children = [catalog.restore(b) for b in snap.children]
        return det

    def nbytes(self):
        return sum(c.nbytes() for c in self.children)


class Joint(StreamingDetector):
    """Per-sensor detectors plus a joint detector over all sensors; the score is the larger of
    the two, with the joint score rescaled so that its threshold lands on the per-sensor
    detectors' own.

    ``joint`` names the joint detector: ``"mahalanobis"`` (learns online) or ``"pca"`` (a healthy
    baseline fitted on history, ``atoll.detect.pca``, with its own condition flag), which
    ``for_features`` picks for the fitted default."""

    kind = "joint"
    multivariate = True

    def __init__(
        self,
        detector: str = "default",
        detector_params: dict[str, Any] | None = None,
        alpha: float = 0.01,
        min_count: int = 30,
        joint: str = "mahalanobis",
        *,
        catalog: Catalog,
    ) -> None:
        if joint not in _JOINTS:
            raise InvalidInput(
                f"unknown joint detector {joint!r}", hint=f"use one of {', '.join(_JOINTS)}"
            )
        self.sensors = PerSensor(detector, detector_params, "max", catalog=catalog)
        self.alpha, self.min_count, self.joint_kind = float(alpha), int(min_count), joint
        self.joint: Mahalanobis | PCABaseline = (
            PCABaseline() if joint == "pca" else Mahalanobis(alpha=alpha, min_count=min_count)
        )

    @property
    def default_threshold(self) -> float:  # type: ignore[override]
        return self.sensors.default_threshold

    def params(self):
        return {
            "detector": self.sensors.detector,
            "detector_params": self.sensors.detector_params,
            "alpha": self.alpha,
            "min_count": self.min_count,
            "joint": self.joint_kind,
        }

    def _rescaled(self, joint):
        # Scores of different detectors are only comparable at their thresholds: map the joint
        # score piecewise-linearly so its threshold becomes the per-sensor one.
        ts, tm = self.sensors.default_threshold, self.joint.default_threshold
        joint = np.asarray(joint, dtype=np.float64)
        return np.where(joint < tm, joint * ts / tm, ts + (joint - tm) * (1.0 - ts) / (1.0 - tm))

    def _mix(self, per_sensor, joint):
        return np.maximum(per_sensor, self._rescaled(joint))

    def learn_one(self, x, ts=None):
        self.sensors.learn_one(x, ts)
        if len(self.sensors.children) > 1:
            self.joint.learn_one(x, ts)

    def score_one(self, x, ts=None):
        s = self.sensors.score_one(x, ts)
        if len(self.sensors.children) < 2:
            return s
        return float(self._mix(s, self.joint.score_one(x, ts)))

    def fit(self, values, timestamps=None):
        xs = _rows(values)
        self.sensors.fit(xs, timestamps)
        if xs.shape[1] > 1:
            self.joint.fit(xs, timestamps)

    def score_many(self, values, timestamps=None):
        xs = _rows(values)
        s = self.sensors.score_many(xs, timestamps)
        if xs.shape[1] < 2:
            return s
        return self._mix(s, self.joint.score_many(xs, timestamps))

    def detect_many(self, values, timestamps=None) -> tuple[np.ndarray, np.ndarray]:
        """A reading is abnormal while a sensor is, or while the relation between them is."""
        xs = _rows(values)
        s, f = self.sensors.detect_many(xs, timestamps)
        if xs.shape[1] < 2:
            return s, f
        if isinstance(self.joint, PCABaseline):
            js, jf = self.joint.detect_many(xs, timestamps)
            return np.maximum(s, self._rescaled(js)), f | jf
        rescaled = self._rescaled(self.joint.score_many(xs, timestamps))
        return np.maximum(s, rescaled), f | (rescaled >= self.sensors.default_threshold)

    def detect_explained(
        self, values, timestamps=None
    ) -> tuple[np.ndarray, np.ndarray, Explained | None]:
        """``detect_many`` plus the sensors' explanation and a ``"relation"`` contribution: the
        odds of the rescaled joint (Mahalanobis or baseline) score, counted only on readings where
        no sensor alone is abnormal (a sensor that left its normal breaks the relation too: it is
        the cause)."""
        xs = _rows(values)
        s, f, why = self.sensors.detect_explained(xs, timestamps)
        if xs.shape[1] < 2 or why is None:
            return s, f, why
        before: bytes | None = None
        if isinstance(self.joint, PCABaseline):
            before = self.joint.state()
            js, jf = self.joint.detect_many(xs, timestamps)
            rescaled = self._rescaled(js)
            flags = f | jf
        else:
            rescaled = self._rescaled(self.joint.score_many(xs, timestamps))
            flags = f | (rescaled >= self.sensors.default_threshold)
        alone = s < self.sensors.default_threshold
        relation = np.where(alone, _odds(rescaled), 0.0)
        weights = np.column_stack([why.weights, relation])
        if before is not None:
            # The healthy baseline says which sensors pushed the relation: its share per sensor
            # for each reading it flagged on its own (replayed from the state before the batch).
            _share_relation(weights, PCABaseline.from_state(before), xs, alone & jf)
        return (
            np.maximum(s, rescaled),
            flags,
            Explained((*why.names, "relation"), weights, lambda: why.expected),
        )

    def decide_one(self, x, ts=None) -> tuple[float, bool]:
        s, f = self.sensors.decide_one(x, ts)
        if len(self.sensors.children) < 2:
            return s, f
        if isinstance(self.joint, PCABaseline):
            js, jf = self.joint.decide_one(x, ts)
            return max(s, float(self._rescaled(js))), f or jf
        rescaled = float(self._rescaled(self.joint.score_one(x, ts)))
        return max(s, rescaled), f or rescaled >= self.sensors.default_threshold

    def accept(self, values, timestamps=None) -> None:
        """An operator's "accept as new normal", passed to every part that keeps a baseline."""
        xs = _rows(values)
        if len(xs):
            self.sensors._vec(xs[0])
        for j, child in enumerate(self.sensors.children):
            if hasattr(child, "accept"):
                child.accept(xs[:, j], timestamps)
        if isinstance(self.joint, PCABaseline) and xs.shape[1] > 1:
            self.joint.accept(xs, timestamps)

    def _snapshot(self):
        return Snapshot(
            self.kind, self.version, self.params(), {}, [self.sensors.state(), self.joint.state()]
        )

    @classmethod
    def _from_snapshot(cls, snap, catalog=None):
        catalog = _needs(catalog, cls)
        det = cls(**snap.params, catalog=catalog)
        det.sensors = PerSensor._from_snapshot(unpack(snap.children[0]), catalog)
        joint = unpack(snap.children[1])
        det.joint = (
            PCABaseline._from_snapshot(joint)
            if joint.kind == PCABaseline.kind
            else Mahalanobis._from_snapshot(joint)
        )
        return det

    def nbytes(self):
        return self.sensors.nbytes() + self.joint.nbytes()


def _share_relation(
    weights: np.ndarray, baseline: StreamingDetector, xs: np.ndarray, rows: np.ndarray
) -> None:
    """Move the ``"relation"`` weight (last column) of ``rows`` onto the sensor columns (the
    first ``xs.shape[1]``), in the shares ``baseline.explain_one`` gives. ``baseline`` is the
    joint model as it was before ``xs``: it is brought forward between the rows, so each is
    explained by the model that judged it."""
    assert isinstance(baseline, PCABaseline)
    done = 0
    for i in np.flatnonzero(rows).tolist():
        if i > done:
            baseline.detect_many(xs[done:i])
        shares = baseline.explain_one(xs[i])
        baseline.detect_many(xs[i : i + 1])
        done = i + 1
        if shares:
            w = weights[i, -1]
            for j, share in shares.items():
                weights[i, j] += w * share
            weights[i, -1] = 0.0


def _odds(scores) -> np.ndarray:
    """``s / (1 - s)``, capped: a contribution's weight from a score in [0, 1]."""
    s = np.clip(np.nan_to_num(np.asarray(scores, dtype=np.float64)), 0.0, 0.999)
    return s / (1.0 - s)


def _rows(values) -> np.ndarray:
    """Readings as a (readings, sensors) array."""
    xs = np.asarray(values, dtype=np.float64)
    if xs.ndim == 2:
        return xs
    return xs.reshape(len(xs), -1) if xs.size else xs.reshape(0, 1)


def _needs(catalog: Catalog | None, cls: type) -> Catalog:
    if catalog is None:
        raise InvalidInput(
            f"{cls.__name__} restores its per-sensor detectors through a catalog",
            hint="restore with atoll.detect.restore(blob), which passes the registry",
        )
    return catalog
