"""Vectorised signal models: every device of one device type is stepped with numpy at once.

Each metric is a sum of the terms its template ``sim`` block turns on (see
:class:`atoll.solutions.models.Signal`): a per-device base, daily and weekly cycles, a slow
AR(1) wander, drift, a duty cycle, random events, a sawtooth, couplings to other metrics through
a first-order lag, and white noise. Faults then act in two layers: *physical* effects change the
value before followers read it (a dead compressor warms the case); *sensor* effects (stuck,
dropout) only change what is reported.

Random numbers come from one generator per model, drawn in a fixed order, so the same seed and
the same sequence of ``step`` calls give the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from atoll.sim.faults import Fault
from atoll.sim.wear import WearPlan
from atoll.solutions.models import DeviceType, FaultKind, FaultSpec, Signal, _follow_order

_DAY = 86400.0
_PHYSICAL = ("add_ramp", "step", "set", "ramp_to")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def business_hours(hour: np.ndarray) -> np.ndarray:
    """0 at night, ~1 from 08:00 to 18:00, with soft edges."""
    return _sigmoid(2.0 * (hour - 7.5)) * _sigmoid(2.0 * (18.5 - hour))


@dataclass(slots=True)
class _ActiveFault:
    fault: Fault
    spec: FaultSpec
    local: int  # device index inside the model
    memory: dict[str, float] = field(default_factory=dict)  # value at onset, per metric


class _Metric:
    """Per-device parameters and state of one metric."""

    def __init__(self, sig: Signal, n: int, rng: np.random.Generator) -> None:
        self.sig = sig
        self.base = sig.base * (1.0 + sig.spread * rng.standard_normal(n))
        self.peak = sig.peak_hour + 0.5 * rng.standard_normal(n)
        self.walk = sig.walk * rng.standard_normal(n)
        self.drift = sig.drift_per_day * rng.uniform(-1.0, 1.0, n)
        c = sig.cycle
        self.cycle_period = c.period_s * rng.uniform(0.9, 1.1, n) if c else None
        self.cycle_phase = rng.uniform(0.0, 1.0, n) if c else None
        self.event_left = np.zeros(n)
        self.event_value = np.zeros(n)
        s = sig.sawtooth
        self.saw_phase = rng.uniform(0.0, s.period_s, n) if s else None
        self.lag: dict[str, np.ndarray] = {}

    def mean(self) -> np.ndarray:
        """Long-run mean per device; followers react to deviations from it."""
        sig, m = self.sig, self.base.copy()
        if sig.cycle:
            m += sig.cycle.amplitude * sig.cycle.duty
        if sig.events:
            e = sig.events
            value = float(np.mean(e.choices)) if e.choices else e.value
            m += value * min(1.0, e.per_hour * e.duration_s / 3600.0)
        return m


class TypeModel:
    """The signals of ``n`` devices of one device type."""

    def __init__(self, dtype: DeviceType, n: int, rng: np.random.Generator, t0: float) -> None:
        self.dtype = dtype
        self.n = n
        self.rng = rng
        self.t0 = t0
        self.names = dtype.metric_names
        self.order = _follow_order(dtype.telemetry)
        self.metrics = {t.name: _Metric(t.sim, n, rng) for t in dtype.telemetry}
        self.means = {name: m.mean() for name, m in self.metrics.items()}
        for m in self.metrics.values():
            for f in m.sig.follows:
                m.lag[f.metric] = self.means[f.metric].copy()
        self.decimals = [t.sim.decimals if t.type == "float" else 0 for t in dtype.telemetry]
        self.integer = [t.type != "float" for t in dtype.telemetry]
        self.boolean = [t.type == "bool" for t in dtype.telemetry]
        self.last_t = np.full(n, np.nan)
        self.faults: list[_ActiveFault] = []
        #: Wear to failure (``Fleet(wear=True)``); ``None``: the devices never wear out.
        self.wear: WearPlan | None = None

    def add_fault(self, fault: Fault, local: int) -> None:
        spec = self.dtype.faults[FaultKind(fault.kind)]
        self.faults.append(_ActiveFault(fault, spec, local))

    def step(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Advance devices ``idx`` (sorted) to times ``t``; rows of values, NaN = not reported."""
        rng = self.rng
        k = len(idx)
        last = self.last_t[idx]
        dt = np.where(np.isnan(last), 0.0, t - last)
        self.last_t[idx] = t
        hour = (t % _DAY) / 3600.0
        weekend = ((np.floor(t / _DAY) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        active = self._active(idx, t)
        worn = self.wear.wear(idx, t) if self.wear is not None else None
        true: dict[str, np.ndarray] = {}
        for name in self.order:
            m = self.metrics[name]
            sig = m.sig
            v = m.base[idx].copy()
            if sig.daily:
                if sig.profile == "business":
                    d = sig.daily * business_hours(hour)
                else:
                    d = sig.daily * np.cos(2 * math.pi * (hour - m.peak[idx]) / 24.0)
                v += np.where(weekend, d * sig.weekend_scale, d)
            if sig.weekend:
                v += np.where(weekend, sig.weekend, 0.0)
            if sig.walk:
                a = np.exp(-dt / sig.walk_tau_s)
                w = m.walk[idx] * a + sig.walk * np.sqrt(1.0 - a * a) * rng.standard_normal(k)
                m.walk[idx] = w
                v += w
            if sig.drift_per_day:
                v += m.drift[idx] * (t - self.t0) / _DAY
            if sig.cycle:
                assert m.cycle_period is not None and m.cycle_phase is not None  # with sig.cycle
                period = m.cycle_period[idx]
                frac = (t / period + m.cycle_phase[idx]) % 1.0
                v += np.where(frac < sig.cycle.duty, sig.cycle.amplitude, 0.0)
            if sig.events:
                v += self._events(m, idx, dt, hour, k)
            if sig.sawtooth:
                s = sig.sawtooth
                assert m.saw_phase is not None  # set with sig.sawtooth
                frac = ((t + m.saw_phase[idx]) % s.period_s) / s.period_s
                v += s.amplitude * (0.5 - frac)
            for f in sig.follows:
                alpha = 1.0 - np.exp(-dt / f.lag_s)
                lag = m.lag[f.metric][idx]
                lag += (true[f.metric] - lag) * alpha
                m.lag[f.metric][idx] = lag
                v += f.gain * (lag - self.means[f.metric][idx])
            if sig.noise:
                v += sig.noise * rng.standard_normal(k)
            if worn is not None:
                assert self.wear is not None
                add = self.wear.effect(name, worn)
                if add is not None:
                    v += add
            for af, pos, p in active:
                self._physical(af, name, v, pos, p)
            if sig.floor is not None or sig.ceil is not None:
                np.clip(v, sig.floor, sig.ceil, out=v)
            true[name] = v
        out = np.empty((k, len(self.names)))
        for j, name in enumerate(self.names):
            col = np.round(true[name], self.decimals[j])
            out[:, j] = col
        for af, pos, _ in active:
            for e in af.spec.effects:
                if e.op in _PHYSICAL:
                    continue
                j = self.names.index(e.metric)
                if e.op == "dropout":
                    out[pos, j] = np.nan
                else:  # stuck: repeat the first reading of the fault window
                    out[pos, j] = af.memory.setdefault("stuck:" + e.metric, float(out[pos, j]))
        return out

    def _active(self, idx: np.ndarray, t: np.ndarray) -> list[tuple[_ActiveFault, int, float]]:
        """Faults active for a device in this step, with its row and progress in [0, 1)."""
        found: list[tuple[_ActiveFault, int, float]] = []
        if not self.faults:
            return found
        lo, hi = float(t.min()), float(t.max())
        for af in self.faults:
            f = af.fault
            if f.end <= lo or f.start > hi:
                continue
            pos = int(np.searchsorted(idx, af.local))
            if pos < len(idx) and idx[pos] == af.local and f.active(float(t[pos])):
                found.append((af, pos, (float(t[pos]) - f.start) / (f.end - f.start)))
        return found

    def _events(self, m: _Metric, idx: np.ndarray, dt: np.ndarray, hour: np.ndarray, k: int):
        e = m.sig.events
        assert e is not None  # called for signals with events only
        rate: float | np.ndarray = e.per_hour / 3600.0
        if m.sig.profile == "business":
            rate = rate * (0.1 + 0.9 * business_hours(hour))
        left = np.maximum(m.event_left[idx] - dt, 0.0)
        starts = (left <= 0) & (self.rng.random(k) < 1.0 - np.exp(-rate * dt))
        value = m.event_value[idx]
        if e.choices:
            picks = np.asarray(e.choices)[self.rng.integers(0, len(e.choices), k)]
        else:
            picks = np.full(k, e.value)
        left = np.where(starts, e.duration_s, left)
        value = np.where(starts, picks, value)
        m.event_left[idx] = left
        m.event_value[idx] = value
        # A pulse shorter than the sampling step acts only for its share of the step.
        share = np.where(dt > e.duration_s, e.duration_s / np.maximum(dt, 1e-9), 1.0)
        return np.where(left > 0, value * share, 0.0)

    def _physical(self, af: _ActiveFault, name: str, v: np.ndarray, pos: int, p: float) -> None:
        for e in af.spec.effects:
            if e.metric != name or e.op not in _PHYSICAL:
                continue
            if e.op == "add_ramp":
                v[pos] += e.value * p**e.power
            elif e.op == "step":
                v[pos] += e.value
            elif e.op == "set":
                v[pos] = e.value + (e.noise * self.rng.standard_normal() if e.noise else 0.0)
            else:  # ramp_to
                v0 = af.memory.setdefault("onset:" + name, float(v[pos]))
                v[pos] = v0 + (e.value - v0) * min(1.0, p / e.over)
