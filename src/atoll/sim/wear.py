"""Wear to failure: the runs of each device of a type, from new to failure, and how worn it is.

A type's ``wear`` block (:class:`atoll.solutions.models.Wear`) gives the life of a run (drawn
uniformly from ``life_s``) and what wear does to its metrics. A device's runs follow each other:
at wear 1 it fails and is repaired as new. The plan is a pure function of the seed and time, so
failures can be known ahead (the demo's ground truth) and the same seed gives the same runs.

At ``t0`` the devices are staggered: device ``k`` of ``n`` is already ``(k + u) / n`` of its
first life in (``u`` uniform in [0, 1)), so their failures are spread out rather than bunched.

>>> from atoll.solutions import load
>>> wear = load("manufacturing").device_type("motor").wear
>>> plan = WearPlan(wear, 4, t0=0.0, seed=1)
>>> h = plan.wear(np.arange(4), np.zeros(4))
>>> bool(((h >= 0) & (h < 1)).all()), len(set(np.round(h, 3)))
(True, 4)
>>> fails = plan.failures(0.0, 3 * 3600.0)
>>> all(0 <= f.at < 3 * 3600 for f in fails), len(fails) > 4
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atoll.solutions.models import Wear


@dataclass(frozen=True, slots=True)
class Failure:
    """Device ``local`` (its index in the type) fails at ``at`` (epoch s), ending a run that
    began at ``began`` (a run begun before ``t0`` was already under way then)."""

    local: int
    at: float
    began: float

    @property
    def life(self) -> float:
        return self.at - self.began


class WearPlan:
    """The runs of ``n`` devices of one type (see the module)."""

    def __init__(self, spec: Wear, n: int, *, t0: float, seed: int | list[int]) -> None:
        self.spec = spec
        self.n = n
        self._rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(n)]
        #: per device: run start times; run k lasts ``_lives[i][k]``
        self._starts: list[list[float]] = []
        self._lives: list[list[float]] = []
        for k in range(n):
            life = self._draw(k)
            done = (k + float(self._rngs[k].random())) / n
            self._starts.append([t0 - done * life])
            self._lives.append([life])
        # The run each device is in now (time only moves forward per device).
        self._run = np.zeros(n, dtype=np.int64)
        self._start = np.array([s[0] for s in self._starts], dtype=float)
        self._life = np.array([v[0] for v in self._lives], dtype=float)

    def _draw(self, k: int) -> float:
        lo, hi = self.spec.life_s
        return float(self._rngs[k].uniform(lo, hi))

    def _extend(self, k: int, until: float) -> None:
        """Plan device ``k``'s runs at least up to ``until``."""
        starts, lives = self._starts[k], self._lives[k]
        while starts[-1] + lives[-1] <= until:
            starts.append(starts[-1] + lives[-1])
            lives.append(self._draw(k))

    def wear(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Wear in [0, 1) of devices ``idx`` at times ``t`` (non-decreasing per device)."""
        h = (t - self._start[idx]) / self._life[idx]
        for pos in np.flatnonzero(h >= 1.0):
            k = int(idx[pos])
            tk = float(t[pos])
            self._extend(k, tk)
            starts = self._starts[k]
            run = int(np.searchsorted(starts, tk, side="right")) - 1
            self._run[k] = run
            self._start[k] = starts[run]
            self._life[k] = self._lives[k][run]
            h[pos] = (tk - self._start[k]) / self._life[k]
        return h

    def failures(self, since: float, until: float) -> list[Failure]:
        """Every failure in ``[since, until)``, by time."""
        out = []
        for k in range(self.n):
            self._extend(k, until)
            for s, life in zip(self._starts[k], self._lives[k], strict=True):
                if since <= s + life < until:
                    out.append(Failure(k, s + life, s))
        return sorted(out, key=lambda f: (f.at, f.local))

    def effect(self, metric: str, h: np.ndarray) -> np.ndarray | None:
        """What wear ``h`` adds to ``metric``; ``None`` when wear does not touch it."""
        add = None
        for e in self.spec.effects:
            if e.metric == metric:
                d = e.value * h**e.power
                add = d if add is None else add + d
        return add
