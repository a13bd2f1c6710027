"""What an RUL model sees of an engine's history up to each cycle (causal: nothing later).

Sensors are first brought to a common scale per **operating regime** (C-MAPSS's FD002/FD004 fly
six flight conditions that move every sensor more than wear does; FD001 has one): each regime's
mean and standard deviation come from the training file, a row belongs to the nearest regime by
its operational settings. Sensors that hardly vary in training (constant, or a handful of levels)
are left out. Then, per sensor, for each cycle:

- the reading, and its distance from the engine's own first 10 cycles (engines start with
  different wear and manufacturing variation: the change matters more than the level);
- exponentially weighted means (weights 0.3, 0.1, 0.03) and their distance from that start;
- the mean of the last 10 and 30 cycles less the start, and their least-squares slopes;

plus the cycle number. Everything is vectorised per engine (``scipy.signal.lfilter`` for the
weighted means, cumulative sums for the windows).

>>> import numpy as np
>>> z = np.arange(12, dtype=float)[:, None]      # one sensor rising by 1 per cycle
>>> f = engine_features(z)
>>> f.shape == (12, len(feature_names(1)))
True
>>> round(float(f[-1, feature_names(1).index("s0.slope10")]), 6)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

from atoll.core.errors import InvalidInput
from atoll.rul.cmapss import Trajectories

BASELINE = 10
EWMAS = (0.3, 0.1, 0.03)
WINDOWS = (10, 30)


def feature_names(k: int) -> list[str]:
    """Column names of ``engine_features`` for ``k`` sensors (``s0`` .. ``s{k-1}``)."""
    out = ["cycle"]
    groups = ["", ".from_start"]
    for a in EWMAS:
        groups += [f".ewm{a}", f".ewm{a}.from_start"]
    for w in WINDOWS:
        groups += [f".mean{w}.from_start", f".slope{w}"]
    for g in groups:
        out += [f"s{i}{g}" for i in range(k)]
    return out


def _window_sum(c: np.ndarray, w: int) -> np.ndarray:
    """Sums over the last ``w`` rows (fewer at the start) from cumulative sums ``c`` (with a
    leading zero row)."""
    n = len(c) - 1
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - w, 0)
    return c[hi] - c[lo]


def engine_features(z: np.ndarray) -> np.ndarray:
    """Features of one engine's normalised sensors ``z`` (cycles x sensors), one row per cycle."""
    n, k = z.shape
    if n == 0:
        return np.empty((0, len(feature_names(k))), dtype=np.float64)
    count = np.minimum(np.arange(1, n + 1), BASELINE)[:, None]
    head = np.cumsum(z[:BASELINE], axis=0)
    base = np.vstack([head, np.repeat(head[-1:], max(n - BASELINE, 0), axis=0)])[:n] / count
    cols = [np.arange(1, n + 1, dtype=np.float64)[:, None], z, z - base]
    for a in EWMAS:
        e, _ = lfilter([a], [1.0, a - 1.0], z, axis=0, zi=(1.0 - a) * z[:1])
        cols += [e, e - base]
    c_y = np.vstack([np.zeros((1, k)), np.cumsum(z, axis=0)])
    idx = np.arange(n, dtype=np.float64)[:, None]
    c_xy = np.vstack([np.zeros((1, k)), np.cumsum(idx * z, axis=0)])
    c_x = np.r_[0.0, np.cumsum(np.arange(n, dtype=np.float64))]
    c_xx = np.r_[0.0, np.cumsum(np.arange(n, dtype=np.float64) ** 2)]
    for w in WINDOWS:
        m = np.minimum(np.arange(1, n + 1), w)[:, None].astype(np.float64)
        sy, sxy = _window_sum(c_y, w), _window_sum(c_xy, w)
        sx, sxx = _window_sum(c_x[:, None], w), _window_sum(c_xx[:, None], w)
        den = m * sxx - sx * sx
        slope = np.divide(m * sxy - sx * sy, den, out=np.zeros_like(sy), where=den > 0)
        cols += [sy / m - base, slope]
    return np.hstack(cols)


@dataclass(frozen=True, slots=True)
class Normaliser:
    """Sensors kept, and per operating regime their mean and standard deviation."""

    sensors: tuple[int, ...]
    centroids: np.ndarray  # regimes x 3 settings
    scale: np.ndarray  # 3: the settings' spread, to measure distances between them
    means: np.ndarray  # regimes x sensors kept
    stds: np.ndarray

    @classmethod
    def fit(cls, t: Trajectories) -> Normaliser:
        scale = np.maximum(t.settings.std(axis=0), 1e-6)
        keys = np.round(t.settings / scale, 0)
        regimes, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        major = counts >= max(0.005 * len(t), 10)
        if not major.any():
            major[np.argmax(counts)] = True
        centroids = np.array([t.settings[inverse == i].mean(axis=0) for i in np.flatnonzero(major)])
        if len(centroids) > 20:  # settings that vary continuously: one regime
            centroids = t.settings.mean(axis=0, keepdims=True)
        regime = _nearest(t.settings, centroids, scale)
        means = np.array([t.sensors[regime == r].mean(axis=0) for r in range(len(centroids))])
        stds = np.array([t.sensors[regime == r].std(axis=0) for r in range(len(centroids))])
        z = (t.sensors - means[regime]) / np.maximum(stds[regime], 1e-12)
        levels = [len(np.unique(np.round(t.sensors[:, j], 6))) for j in range(t.sensors.shape[1])]
        kept = tuple(
            j
            for j in range(t.sensors.shape[1])
            if levels[j] > 5 and float(np.std(z[:, j])) > 1e-6 and (stds[:, j] > 1e-9).all()
        )
        if not kept:
            raise InvalidInput("no sensor varies in the training file: nothing to learn wear from")
        k = list(kept)
        return cls(kept, centroids, scale, means[:, k], stds[:, k])

    def apply(self, t: Trajectories) -> np.ndarray:
        regime = _nearest(t.settings, self.centroids, self.scale)
        raw = t.sensors[:, list(self.sensors)]
        return (raw - self.means[regime]) / self.stds[regime]

    def to_json(self) -> dict[str, Any]:
        return {
            "sensors": list(self.sensors),
            "centroids": self.centroids.tolist(),
            "scale": self.scale.tolist(),
            "means": self.means.tolist(),
            "stds": self.stds.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Normaliser:
        return cls(
            tuple(int(s) for s in d["sensors"]),
            np.asarray(d["centroids"], dtype=np.float64),
            np.asarray(d["scale"], dtype=np.float64),
            np.asarray(d["means"], dtype=np.float64),
            np.asarray(d["stds"], dtype=np.float64),
        )


def _nearest(settings: np.ndarray, centroids: np.ndarray, scale: np.ndarray) -> np.ndarray:
    d = (((settings[:, None, :] - centroids[None]) / scale) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def features(t: Trajectories, norm: Normaliser) -> np.ndarray:
    """Features of every row of ``t`` (each engine from its own first row), float64."""
    z = norm.apply(t)
    return np.vstack([engine_features(z[s:e]) for _, s, e in t.spans()])
