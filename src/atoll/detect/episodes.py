"""Episode decisions: turning a stream of readings into alarms an operator can trust.

A detector tuned for NAB answers "is this reading surprising?" and mutes itself after each
answer. An operator asks another question: "is this machine out of its normal band, and has it
stayed out?". ``EpisodeDecider`` answers it per series, strictly online, next to the detector:

* **What is normal now.** An additive seasonal baseline: the usual value of the slot (hour of day,
  weekdays and weekends apart) plus a slow level that follows the series' drift. Until a slot has
  been seen for an hour, the level alone is the baseline (a fresh series has no seasons yet).
* **How far is far.** The residual's spread is learned online (time-aware EWMA); the residuals
  that update the baseline and the spread are clipped at ``huber`` spreads, so a fault is not
  learned as normal while it is under way.
* **Evidence.** A reading more than ``z`` spreads from normal, or one its detector flags while at
  least ``z / 2`` spreads out.
* **A frozen sensor.** A sensor that keeps sending one value is not a machine in its normal band:
  an episode also opens once the same reading has come ``stuck`` times more often in a row than
  the longest run of one value the series has shown (at least ``stuck_min`` readings). Only
  series that rarely repeat a reading (fewer than ``stuck_rate`` of their readings equal the one
  before: analogue sensors, not counters, switches or set-points) are watched, and a run of zeros
  is a machine at rest, not a frozen sensor. Frozen readings are not learned as normal.
* **Episodes.** An episode opens once ``min_count`` pieces of evidence fall within ``window``
  seconds (k-of-n: a lone spike pages nobody) and closes after ``clear`` seconds without
  evidence. ``is_anomaly`` is true for the whole episode, so the rules engine's ``anomaly``
  condition raises one alarm per episode and clears it when the episode ends.

Time constants are in seconds of the readings' timestamps, so a 1 Hz and a 1/min stream of the
same machine behave alike. State is a few fixed-size lists (``SLOTS`` + ``min_count`` + 10
floats), saved with the detection service's snapshot.

>>> d = EpisodeDecider(z=4, min_count=3, window=60, warmup=0, min_readings=20)
>>> calm = [d.decide(t, 10.0 + 0.1 * ((t * 7) % 5 - 2)) for t in range(0, 600, 5)]
>>> any(calm)
False
>>> [d.decide(t, 15.0) for t in range(600, 630, 5)]
[False, False, True, True, True, True]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from atoll.core.errors import InvalidInput

SLOTS = 48  # hour of day, weekdays and weekends apart
# The frozen-sensor check's places in ``EpisodeDecider.st``.
_LAST_X, _RUN, _LONGEST, _REPEATS, _FROZEN = 10, 11, 12, 13, 14
_DAY = 86_400.0


def _slot(ts: float) -> int:
    day = int(ts // _DAY)
    weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    return int((ts % _DAY) // 3600) + (24 if weekend else 0)


class EpisodeDecider:
    """Per-series episode decisions over (timestamp in s, value, detector flag)."""

    PARAMS = (
        "z",
        "min_count",
        "window",
        "clear",
        "level_tau",
        "var_tau",
        "season_days",
        "warmup",
        "min_readings",
        "huber",
        "smooth",
        "stuck",
        "stuck_min",
        "stuck_rate",
    )

    def __init__(
        self,
        z: float = 5.0,
        min_count: int = 3,
        window: float = 300.0,
        clear: float = 600.0,
        level_tau: float = 7200.0,
        var_tau: float = 21_600.0,
        season_days: float = 3.0,
        warmup: float = 3600.0,
        min_readings: int = 30,
        huber: float = 3.0,
        smooth: float = 0.0,
        stuck: float = 3.0,
        stuck_min: int = 10,
        stuck_rate: float = 0.2,
    ) -> None:
        if not z > 0 or int(min_count) < 1 or not window > 0 or not clear > 0:
            raise InvalidInput(
                "episode decision needs z > 0, min_count >= 1, window > 0, clear > 0",
                hint="e.g. {z: 5, min_count: 3, window: 300, clear: 600}",
            )
        if not stuck >= 0 or int(stuck_min) < 2 or not 0 <= stuck_rate <= 1:
            raise InvalidInput(
                "episode decision needs stuck >= 0 (0: off), stuck_min >= 2, 0 <= stuck_rate <= 1",
                hint="e.g. {stuck: 3, stuck_min: 10, stuck_rate: 0.2}",
            )
        self.z, self.min_count, self.window, self.clear = (
            float(z),
            int(min_count),
            float(window),
            float(clear),
        )
        self.level_tau, self.var_tau = float(level_tau), float(var_tau)
        self.season_days, self.warmup = float(season_days), float(warmup)
        self.min_readings, self.huber, self.smooth = int(min_readings), float(huber), float(smooth)
        self.stuck, self.stuck_min = float(stuck), int(stuck_min)
        self.stuck_rate = float(stuck_rate)
        # Only residuals inside +-huber spreads are learned: a normal tail's variance inside that
        # cut is this fraction of the whole, so the learned spread is scaled back up by it.
        c = self.huber
        inside = math.erf(c / math.sqrt(2.0))
        self._var_kept = 1.0 - 2.0 * c * math.exp(-c * c / 2.0) / math.sqrt(2.0 * math.pi) / inside
        # n, first_ts, last_ts, level (raw), level (deseasonalised), var, on, last_evidence, last_z,
        # smoothed reading, then the frozen-sensor check's: last raw reading, readings of it in a
        # row, longest such run learned, share of readings equal to the one before, frozen now
        self.st = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -math.inf, 0.0, math.nan]
        self.st += [math.nan, 0.0, 1.0, 0.0, 0.0]
        self.ring = [-math.inf] * self.min_count  # times of the latest evidence, oldest first
        self.season = [0.0] * SLOTS
        self.season_w = [0.0] * SLOTS
        #: The last judged reading's expected value and one spread (not state: explanations).
        self.last_expected, self.last_width = math.nan, math.nan

    @property
    def frozen(self) -> bool:
        """Whether the last reading judged was part of a frozen run (``stuck``)."""
        return self.st[_FROZEN] > 0

    def _frozen(self, x: float) -> bool:
        """Count ``x`` into the runs of one value; ``True`` while the run is too long to be the
        sensor's own (the check is off for series that repeat readings often, or not yet ready)."""
        st = self.st
        same = x == st[_LAST_X]
        if same:
            st[_RUN] += 1.0
        else:
            if st[_FROZEN] == 0 and st[_RUN] > st[_LONGEST]:
                st[_LONGEST] = st[_RUN]  # a run the sensor ended itself: the sensor's own
            st[_LAST_X], st[_RUN], st[_FROZEN] = x, 1.0, 0.0
        n = st[0]
        if n > 0 and st[_FROZEN] == 0:
            st[_REPEATS] += (float(same) - st[_REPEATS]) / min(n, 1000.0)
        if (
            self.stuck > 0
            and same
            and x != 0.0
            and n >= max(self.min_readings, 10 * self.stuck_min)
            and st[2] - st[1] >= self.warmup
            and st[_REPEATS] < self.stuck_rate
            and st[_RUN] >= max(self.stuck_min, self.stuck * st[_LONGEST])
        ):
            st[_FROZEN] = 1.0
        return st[_FROZEN] > 0

    # -- the decision -------------------------------------------------------------------------
    def decide(self, ts: float, x: float, flagged: bool = False) -> bool:
        """Judge one reading (then learn it); ``True`` while an episode is open."""
        st = self.st
        ts, x = float(ts), float(x)  # plain floats: the state is msgpack'd as it is
        if not math.isfinite(x):
            return st[6] > 0
        if self._frozen(x):
            # Nothing to learn from a frozen sensor: its readings are evidence, each of them.
            st[7], st[6], st[2] = ts, 1.0, ts
            self.last_expected, self.last_width = math.nan, math.nan
            return True
        if self.smooth > 0:
            # Judge the moving average: what matters for a cycling compressor is its duty, not
            # whether this reading is in the on or the off phase.
            if math.isnan(st[9]):
                st[9] = x
            else:
                st[9] += (1.0 - math.exp(-min(max(ts - st[2], 0.0), 3600.0) / self.smooth)) * (
                    x - st[9]
                )
            x = st[9]
        if st[0] == 0 or (self.smooth > 0 and ts - st[1] < self.smooth):
            # Nothing is learned while the moving average still remembers its first reading.
            if st[0] == 0:
                st[1] = ts
            st[0], st[2], st[3], st[5] = 1.0, ts, x, 0.0
            return False
        dt = min(max(ts - st[2], 0.0), 3600.0)
        k = _slot(ts)
        season = self._season_at(ts, k, x - st[4])
        expected = st[3] if season is None else season + st[4]
        r = x - expected
        sd = math.sqrt(st[5] / self._var_kept) if st[5] > 0 else 0.0
        sd = max(sd, 1e-6 * (1.0 + abs(x)))
        # A young series has not yet seen its slow wander: widen its band (x1.4 after one
        # warm-up, x1.15 after three, x1.02 after a day).
        width = sd * math.sqrt(1.0 + self.warmup / max(ts - st[1], 1.0))
        z = r / width
        st[8] = z
        self.last_expected, self.last_width = expected, width
        ready = st[0] >= self.min_readings and ts - st[1] >= self.warmup
        if ready and (abs(z) >= self.z or (flagged and abs(z) >= self.z / 2)):
            self.ring.pop(0)
            self.ring.append(ts)
            st[7] = ts
        if st[6] == 0:
            if ready and self.ring[0] >= ts - self.window:
                st[6] = 1.0
        elif ts - st[7] >= self.clear:
            st[6] = 0.0
            # The evidence that opened it is spent: with ``clear`` shorter than ``window`` it
            # would otherwise reopen the episode at the next reading, and close it again.
            self.ring = [-math.inf] * self.min_count
        self._learn(ts, x, dt, k, r, sd, ready, season)
        return st[6] > 0

    def _season_at(self, ts: float, k: int, target: float) -> float | None:
        """The slot's usual value near ``target``: the slot's own, the nearest neighbour's, or
        the two interpolated between slot centres. A lagging temperature follows the
        interpolation, a shift change at 08:00 sharp the slots; either alone would read one of
        them as a jump at every hour boundary."""
        if self.season_days <= 0 or self.season_w[k] < 3600.0:
            return None
        pos = (ts % 3600.0) / 3600.0 - 0.5
        j = _slot(ts + 3600.0) if pos >= 0 else _slot(ts - 3600.0)
        if self.season_w[j] < 3600.0:
            return self.season[k]
        w = abs(pos)
        here, there = self.season[k], self.season[j]
        mid = (1.0 - w) * here + w * there
        return min((here, mid, there), key=lambda c: abs(target - c))

    def _learn(self, ts, x, dt, k, r, sd, ready, season) -> None:
        st = self.st
        st[0] += 1
        st[2] = ts
        lim = self.huber * sd if ready else math.inf
        rc = min(max(r, -lim), lim)
        xc = x - r + rc  # the reading pulled back into the band
        a = max(1.0 / st[0], 1.0 - math.exp(-dt / self.level_tau))
        st[3] += a * (xc - st[3])
        if rc == r:  # outliers do not widen the band, or a long fault would hide itself
            av = max(1.0 / st[0], 1.0 - math.exp(-dt / self.var_tau))
            st[5] += av * (r * r - st[5])
        # A slot still being learned takes readings as they are: clipped against the level
        # alone, a shift change at 18:00 would never become part of the 18:00 slot.
        xs = xc if self.season_w[k] >= 3600.0 else x
        if self.season_days <= 0 or ts - st[1] < max(self.warmup, 3.0 * self.smooth):
            return  # no seasons, or still settling: a start-up transient is no daily pattern
        w = self.season_w[k] = self.season_w[k] + dt
        if w - dt <= 0:
            self.season[k] = xs
        else:
            self.season[k] += dt / min(w, self.season_days * 3600.0) * (xs - self.season[k])
        if season is not None:
            st[4] += a * ((xc - season) - st[4])
        else:
            st[4] = st[3] - self.season[k]

    def decide_many(
        self,
        ts_us: np.ndarray,
        values: np.ndarray,
        flags: np.ndarray,
        expected: np.ndarray | None = None,
        frozen: np.ndarray | None = None,
    ) -> np.ndarray:
        """``decide`` over readings. ``expected`` (``(n, 3)``, NaN-filled by the caller) gets,
        for each reading judged in an episode, the baseline and the band ``baseline -+ z``
        spreads outside which a reading counts as evidence on its own (of the moving average
        with ``smooth``). ``frozen`` (``False``-filled by the caller) is set where a reading was
        part of a frozen run."""
        out = np.zeros(len(values), dtype=bool)
        for i, (t, x, f) in enumerate(
            zip(ts_us.tolist(), values.tolist(), flags.tolist(), strict=True)
        ):
            on = out[i] = self.decide(t / 1e6, x, f)
            if frozen is not None and self.st[_FROZEN] > 0:
                frozen[i] = True
            if on and expected is not None and math.isfinite(x) and not math.isnan(self.last_width):
                e, half = self.last_expected, self.z * self.last_width
                expected[i] = (e, e - half, e + half)
        return out

    def accept(self, ts_s: float, values: np.ndarray) -> None:
        """An operator's "accept as new normal": the open episode closes, its evidence is
        forgotten, and the level moves so that the accepted readings' median is what is expected
        at ``ts_s`` (the last of them). The band and the seasons are kept."""
        st = self.st
        st[6], st[7] = 0.0, -math.inf
        self.ring = [-math.inf] * self.min_count
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if not len(x) or st[0] == 0:
            return
        target = float(np.median(x))
        season = self._season_at(float(ts_s), _slot(float(ts_s)), target - st[4])
        delta = target - (st[3] if season is None else season + st[4])
        st[3] += delta
        st[4] += delta

    @property
    def last_z(self) -> float:
        """Residual of the last reading, in learned spreads (for explanations)."""
        return self.st[8]

    # -- state --------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.PARAMS}

    def state(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "st": list(self.st),
            "ring": list(self.ring),
            "season": list(self.season),
            "season_w": list(self.season_w),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpisodeDecider:
        try:
            d = cls(**state["params"])
            st, ring = [float(v) for v in state["st"]], [float(v) for v in state["ring"]]
            if len(st) == _LAST_X:  # saved before the frozen-sensor check: it starts afresh
                st += d.st[_LAST_X:]
            season = [float(v) for v in state["season"]]
            season_w = [float(v) for v in state["season_w"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"bad episode decision state: {exc!r}") from None
        if (
            len(st) != len(d.st)
            or len(ring) != d.min_count
            or len(season) != SLOTS
            or len(season_w) != SLOTS
        ):
            raise InvalidInput("episode decision state has the wrong shape")
        d.st, d.ring, d.season, d.season_w = st, ring, season, season_w
        return d

    def nbytes(self) -> int:
        return 8 * (len(self.st) + len(self.ring) + 2 * SLOTS)


def decider(spec: dict[str, Any] | None) -> EpisodeDecider | None:
    """An ``EpisodeDecider`` from a binding's ``decision`` mapping (``None``: reading decisions)."""
    if spec is None:
        return None
    unknown = set(spec) - set(EpisodeDecider.PARAMS)
    if unknown:
        raise InvalidInput(
            f"unknown episode decision settings {sorted(unknown)}",
            hint=f"known: {', '.join(EpisodeDecider.PARAMS)}",
        )
    try:
        return EpisodeDecider(**spec)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad episode decision settings: {exc}") from None


__all__ = ["SLOTS", "EpisodeDecider", "decider"]
