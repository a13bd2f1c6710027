"""Backtest: what a rule would have raised over stored history, without touching real alarms.

The stored points of every series the rule reads are replayed in time order through a private
engine whose clock follows the data, with timer passes in between (``for``, ``no_data``,
schedules). Anomaly conditions replay the stored ``<metric>.anomaly_score`` series against
``value`` (0.8 when omitted: the detector's own decisions are not stored).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from itertools import groupby

from atoll.core.errors import InvalidInput
from atoll.core.events import score_metric, scored_metric
from atoll.core.points import SeriesKey
from atoll.rules.clock import FakeClock
from atoll.rules.conditions import ANOMALY, FORECAST, AnomalyScore, build
from atoll.rules.engine import RuleEngine
from atoll.rules.model import Rule

US = 1_000_000


@dataclass
class Episode:
    device: str
    raised_at: int
    cleared_at: int | None
    value: float | None
    detail: str


@dataclass
class Backtest:
    episodes: list[Episode] = field(default_factory=list)
    points: int = 0
    truncated: bool = False
    step_us: int = 0


def _inputs(rule: Rule, device: str, store) -> list[tuple[str, SeriesKey, str]]:
    """``(kind, stored series, metric name the engine expects)`` the rule reads for ``device``."""
    out = []
    for leaf in build(rule.condition, device, 0).leaves():
        scores = leaf.kind == ANOMALY
        if leaf.metric is not None:
            metrics = [leaf.metric]
        else:
            # Anomaly conditions read the score series, the others the readings.
            names = [k.metric for k in store.series(rule.project, leaf.device)]
            scored = [m for m in map(scored_metric, names) if m is not None]
            metrics = scored if scores else [n for n in names if scored_metric(n) is None]
        for m in metrics:
            series = score_metric(m) if scores else m
            out.append((leaf.kind, SeriesKey(rule.project, leaf.device, series), m))
    return out


def _stream(series, device: str, metric: str, kind: str):
    for t, v in zip(series.ts.tolist(), series.value.tolist(), strict=True):
        yield t, device, metric, v, kind


def backtest(
    rule: Rule,
    devices: list[str],
    store,
    start: int,
    end: int,
    *,
    max_points: int = 2_000_000,
    max_ticks: int = 200_000,
) -> Backtest:
    if end <= start:
        raise InvalidInput("end must be after start")
    if not devices:
        raise InvalidInput("the rule targets no devices to backtest")
    if any(leaf.kind == FORECAST for leaf in build(rule.condition, devices[0], 0).leaves()):
        raise InvalidInput(
            "backtest does not replay forecast conditions (a forecast fit per timer step)",
            hint="see the forecasts the rule stored: GET .../rules/{rule_id}/forecasts",
        )
    spec = rule.model_copy(
        update={
            "target": rule.target.model_copy(
                update={"device": None, "devices": list(devices), "device_type": None}
            )
        }
    )
    if isinstance(spec.condition, AnomalyScore) and spec.condition.value is None:
        spec = spec.model_copy(
            update={"condition": spec.condition.model_copy(update={"value": 0.8})}
        )
    clock = FakeClock(start)
    engine = RuleEngine(clock)
    engine.upsert(spec)
    out = Backtest()

    streams, seen = [], set()
    for device in devices:
        for kind, key, metric in _inputs(spec, device, store):
            if (kind, key) in seen:
                continue
            seen.add((kind, key))
            s = store.query_raw(key, start, end, limit=max_points)
            out.points += len(s.ts)
            streams.append(_stream(s, key.device, metric, kind))
    if out.points >= max_points:
        out.truncated = True
    timed = spec.schedule is not None or build(spec.condition, devices[0], 0).timed
    out.step_us = max(US, (end - start) // max_ticks) if timed else 0
    open_: dict[str, Episode] = {}

    def record(changes) -> None:
        for c in changes:
            if c.active and c.device not in open_:
                open_[c.device] = Episode(c.device, clock.now_us(), None, c.value, c.detail)
            elif not c.active and c.device in open_:
                ep = open_.pop(c.device)
                ep.cleared_at = clock.now_us()
                out.episodes.append(ep)

    next_tick = start + out.step_us
    # One reading = every metric a device sent at one time, evaluated together (as live).
    for (t, device), group in groupby(heapq.merge(*streams), key=lambda p: (p[0], p[1])):
        while out.step_us and next_tick <= t:
            clock.set(next_tick)
            record(engine.on_tick())
            next_tick += out.step_us
        clock.set(t)
        values: dict[str, float] = {}
        for _, _, metric, value, kind in group:
            if kind == ANOMALY:
                record(engine.on_anomaly(spec.project, device, metric, t, value))
            else:
                values[metric] = value
        if values:
            record(engine.on_telemetry(spec.project, device, t, values))
    while out.step_us and next_tick < end:
        clock.set(next_tick)
        record(engine.on_tick())
        next_tick += out.step_us
    out.episodes += open_.values()
    out.episodes.sort(key=lambda e: (e.raised_at, e.device))
    return out
