"""Rule conditions: their schema (a discriminated union on ``type``) and their evaluators.

An evaluator is stateful and belongs to one (rule, device). Leaves are fed readings or
anomaly scores; every node answers ``evaluate(t)`` and applies its own ``for`` (the raw
condition must hold that long before the node counts as true). Times are µs.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from atoll.rules.durations import Duration, PositiveDuration, format_duration

Op = Literal[">", ">=", "<", "<="]
US = 1_000_000


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    for_: Duration = Field(0.0, alias="for", description="hold this long before it counts")
    clear_for: Duration = Field(
        0.0, description="once true, stay true until false for this long (no flapping)"
    )


class _Leaf(_Condition):
    device: str | None = Field(
        None, description="read another device of the project (default: the rule's device)"
    )


class _Compared(_Leaf):
    op: Op = ">"
    value: float = Field(description="raise when the input crosses this")
    clear: float | None = Field(
        None, description="hysteresis: clear only once the input is back past this"
    )

    @model_validator(mode="after")
    def _clear_on_the_safe_side(self):
        if self.clear is None:
            return self
        if self.op in (">", ">=") and self.clear > self.value:
            raise ValueError(
                f"clear ({self.clear:g}) must be <= value ({self.value:g}) for op '{self.op}'"
            )
        if self.op in ("<", "<=") and self.clear < self.value:
            raise ValueError(
                f"clear ({self.clear:g}) must be >= value ({self.value:g}) for op '{self.op}'"
            )
        return self


class Threshold(_Compared):
    """``metric op value``, cleared at ``clear`` (hysteresis)."""

    type: Literal["threshold"]
    metric: str = Field(min_length=1)


class RateOfChange(_Compared):
    """Change of ``metric`` per ``per`` seconds, over ``window`` (0 = consecutive readings)."""

    type: Literal["rate"]
    metric: str = Field(min_length=1)
    per: PositiveDuration = 1.0
    window: Duration = 0.0
    absolute: bool = Field(False, description="compare |rate| (either direction)")


class AnomalyScore(_Leaf):
    """A detector flags ``metric`` (any metric when omitted) as anomalous.

    Without ``value`` the detector's own decision (``is_anomaly`` in its events, made with its
    tuned threshold) counts; with ``value`` the score must reach it, and ``clear`` sets where it
    ends (hysteresis). With ``min_count`` and ``window`` it holds while at least ``min_count``
    readings of one metric within the last ``window`` were anomalous (k-of-n: scattered
    surprises count, a lone one does not).
    """

    type: Literal["anomaly"]
    metric: str | None = None
    value: float | None = Field(None, ge=0, le=1)
    clear: float | None = Field(None, ge=0, le=1)
    min_count: int | None = Field(None, ge=1, description="anomalous readings needed in window")
    window: Duration = Field(0.0, description="look-back for min_count")

    @model_validator(mode="after")
    def _k_of_n(self):
        if (self.min_count is None) != (self.window == 0):
            raise ValueError("min_count and window go together (e.g. min_count: 3, window: 2m)")
        return self

    @model_validator(mode="after")
    def _clear_below(self):
        if self.clear is not None and self.value is None:
            raise ValueError("clear needs a value (the score that raises)")
        if self.clear is not None and self.clear > self.value:
            raise ValueError(f"clear ({self.clear:g}) must be <= value ({self.value:g})")
        return self


class NoData(_Leaf):
    """Nothing from the device (or one ``metric``) for ``timeout``: a heartbeat check."""

    type: Literal["no_data"]
    metric: str | None = None
    timeout: PositiveDuration


class ForecastCrossing(_Leaf):
    """The forecast of ``metric`` crosses ``above`` (or ``below``) within ``within``.

    Evaluated on the timer pass, at most once per ``every`` per (rule, device), in a worker
    thread (a forecast is a model fit: seconds under load), never per reading. ``on`` says which
    estimate must fall within the horizon: ``mean`` (the mean path reaches the line) or
    ``earliest`` (the interval's near end does: earlier, more cautious). It raises after
    ``confirm`` consecutive evaluations that cross and clears after ``confirm`` that do not
    (no flapping on one noisy fit). The default forecaster (``auto``) fits it.
    """

    type: Literal["forecast"]
    metric: str = Field(min_length=1)
    above: float | None = Field(None, allow_inf_nan=False, description="raise if it will rise past")
    below: float | None = Field(None, allow_inf_nan=False, description="raise if it will fall past")
    within: PositiveDuration = Field(description="how far ahead to look (the forecast horizon)")
    on: Literal["mean", "earliest"] = Field(
        "mean", description="which estimate must cross within the horizon"
    )
    level: float = Field(0.8, ge=0.5, le=0.99, description="the interval's level (earliest)")
    every: PositiveDuration = Field(300.0, description="forecast at most this often")
    confirm: int = Field(
        2, ge=1, le=20, description="consecutive evaluations needed to raise and to clear"
    )

    @model_validator(mode="after")
    def _one_side(self):
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above, below (the line the forecast crosses)")
        if not MIN_FORECAST_HORIZON <= self.within <= MAX_FORECAST_HORIZON:
            raise ValueError(
                f"within must be between {format_duration(MIN_FORECAST_HORIZON)} and 365d "
                f"(got {format_duration(self.within)})"
            )
        if self.every < 1.0:
            raise ValueError("every must be at least 1s (a forecast costs seconds of CPU)")
        return self

    @property
    def threshold(self) -> float:
        value = self.above if self.above is not None else self.below
        assert value is not None  # validated: exactly one
        return value

    @property
    def direction(self) -> Literal["above", "below"]:
        return "above" if self.above is not None else "below"


#: The shortest and longest horizon of a forecast condition (s): the forecast grid's smallest
#: step is a minute, its longest horizon a year (``atoll.forecast.series``).
MIN_FORECAST_HORIZON, MAX_FORECAST_HORIZON = 60.0, 365 * 86400.0


class AllOf(_Condition):
    type: Literal["all"]
    conditions: list[Condition] = Field(min_length=1)


class AnyOf(_Condition):
    type: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)


Condition = Annotated[
    Threshold | RateOfChange | AnomalyScore | NoData | ForecastCrossing | AllOf | AnyOf,
    Field(discriminator="type"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()

TELEMETRY, ANOMALY, FORECAST = "telemetry", "anomaly", "forecast"


# ---------------------------------------------------------------- evaluators


_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class _Hysteresis:
    """Latch that raises past ``value`` and clears past ``clear``."""

    __slots__ = ("back", "clear", "on", "past", "value")

    def __init__(self, op: str, value: float, clear: float | None) -> None:
        self.value, self.clear = value, clear
        self.past = _OPS[op]
        # Still "on" until x is strictly back beyond the clear level.
        self.back = operator.lt if op in (">", ">=") else operator.gt
        self.on = False

    def feed(self, x: float) -> None:
        if not self.on or self.clear is None:
            self.on = self.past(x, self.value)
        else:
            self.on = not self.back(x, self.clear)


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:.6g}"


class Node:
    timed = False

    def __init__(self, spec) -> None:
        self.for_us = int(spec.for_ * US)
        self.clear_us = int(spec.clear_for * US)
        self.since: int | None = None  # raw truth holds since
        self.false_since: int | None = None  # raw falsehood holds since (while still held true)
        self.raw_state = False
        self.out = False
        self.timed = self.timed or self.for_us > 0 or self.clear_us > 0

    def raw(self, t: int) -> bool:
        raise NotImplementedError

    def evaluate(self, t: int) -> bool:
        self.raw_state = r = self.raw(t)
        if r:
            self.false_since = None
            if self.since is None:
                self.since = t
            self.out = self.out or t - self.since >= self.for_us
        else:
            self.since = None
            if self.out and self.clear_us:
                if self.false_since is None:
                    self.false_since = t
                self.out = t - self.false_since < self.clear_us
            else:
                self.out = False
        return self.out

    def leaves(self) -> list[Leaf]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def value(self) -> float | None:
        return None

    def subject(self) -> tuple[str | None, str | None]:
        """``(device, metric)`` the node's truth is about, for overlays on the right chart."""
        return None, None

    def context(self) -> dict[str, Any] | None:
        """What explains the node's truth, kept with the alarm (an anomaly's explanation)."""
        return None

    def _for_text(self) -> str:
        return f" for {format_duration(self.for_us / US)}" if self.for_us else ""

    # State, for checkpoints (``atoll.rules.partitioned``): plain data (msgpack), loaded into a
    # node freshly built from the same condition.
    def dump(self) -> dict[str, Any]:
        return {"n": [self.since, self.false_since, self.raw_state, self.out]}

    def load(self, state: dict[str, Any]) -> None:
        self.since, self.false_since, self.raw_state, self.out = state["n"]


class Leaf(Node):
    kind = TELEMETRY

    def __init__(self, spec, device: str) -> None:
        super().__init__(spec)
        self.spec = spec
        self.device = spec.device or device
        self.metric: str | None = spec.metric
        self.last: float | None = None

    def leaves(self) -> list[Leaf]:
        return [self]

    def value(self) -> float | None:
        return self.last

    def subject(self) -> tuple[str | None, str | None]:
        return self.device, self.metric

    def dump(self) -> dict[str, Any]:
        return {**super().dump(), "last": self.last}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.last = state["last"]

    def feed(
        self,
        metric: str,
        ts: int,
        x: float,
        now: int,
        flagged: bool | None = None,
        explanation: dict[str, Any] | None = None,
    ) -> None:
        """One reading; ``flagged`` is a detector's own decision and ``explanation`` why it
        judged so (anomaly leaves only)."""
        raise NotImplementedError


class ThresholdEval(Leaf):
    def __init__(self, spec: Threshold, device: str) -> None:
        super().__init__(spec, device)
        self.latch = _Hysteresis(spec.op, spec.value, spec.clear)

    def feed(self, metric, ts, x, now):
        if math.isfinite(x):
            self.last = x
            self.latch.feed(x)

    def raw(self, t):
        return self.latch.on

    def dump(self):
        return {**super().dump(), "on": self.latch.on}

    def load(self, state):
        super().load(state)
        self.latch.on = state["on"]

    def describe(self):
        s = self.spec
        return f"{self.device}.{s.metric} = {_num(self.last)} {s.op} {s.value:g}{self._for_text()}"


class RateEval(Leaf):
    def __init__(self, spec: RateOfChange, device: str) -> None:
        super().__init__(spec, device)
        self.latch = _Hysteresis(spec.op, spec.value, spec.clear)
        self.window_us = int(spec.window * US)
        self.points: deque[tuple[int, float]] = deque()

    def feed(self, metric, ts, x, now):
        if not math.isfinite(x) or (self.points and ts <= self.points[-1][0]):
            return
        self.points.append((ts, x))
        if self.window_us:
            while len(self.points) > 2 and self.points[1][0] <= ts - self.window_us:
                self.points.popleft()
        else:
            while len(self.points) > 2:
                self.points.popleft()
        if len(self.points) < 2:
            return
        (t0, x0) = self.points[0]
        rate = (x - x0) / ((ts - t0) / US) * self.spec.per
        if self.spec.absolute:
            rate = abs(rate)
        self.last = rate
        self.latch.feed(rate)

    def raw(self, t):
        return self.latch.on

    def dump(self):
        return {**super().dump(), "on": self.latch.on, "points": [list(p) for p in self.points]}

    def load(self, state):
        super().load(state)
        self.latch.on = state["on"]
        self.points = deque((int(t), float(x)) for t, x in state["points"])

    def describe(self):
        s = self.spec
        per = format_duration(s.per)
        change = f"{_num(self.last)}/{per} {s.op} {s.value:g}"
        return f"{self.device}.{s.metric} changes {change}{self._for_text()}"


class AnomalyEval(Leaf):
    kind = ANOMALY
    DEFAULT = 0.8  # used when an event carries no detector decision

    def __init__(self, spec: AnomalyScore, device: str) -> None:
        super().__init__(spec, device)
        self.latches: dict[str, _Hysteresis] = {}
        self.worst: str | None = None
        self.window_us = int(spec.window * US)
        # k-of-n: times of each metric's latest min_count anomalous readings (bounded).
        self.hits: dict[str, deque[int]] = {}
        self.timed = self.timed or spec.min_count is not None  # old hits age out on the timer
        #: The latest explanation of each metric (anomalous readings carry one).
        self.explained: dict[str, dict[str, Any]] = {}

    def feed(self, metric, ts, x, now, flagged: bool | None = None, explanation=None):
        if not math.isfinite(x):
            return
        latch = self.latches.get(metric)
        if latch is None:
            latch = self.latches[metric] = _Hysteresis(
                ">=", self.DEFAULT if self.spec.value is None else self.spec.value, self.spec.clear
            )
        if self.spec.value is None and flagged is not None:
            latch.on = flagged
        else:
            latch.feed(x)
        if self.spec.min_count is not None and latch.on:
            hits = self.hits.get(metric)
            if hits is None:
                hits = self.hits[metric] = deque(maxlen=self.spec.min_count)
            hits.append(ts)
        if explanation is not None:
            self.explained[metric] = explanation
        if latch.on:
            self.worst, self.last = metric, x
        elif self.worst == metric:
            self.worst = next((m for m, h in self.latches.items() if h.on), None)
            if self.worst is None:
                self.last = x

    def raw(self, t):
        if self.spec.min_count is not None:
            k = self.spec.min_count
            return any(len(h) == k and h[0] > t - self.window_us for h in self.hits.values())
        return any(h.on for h in self.latches.values())

    def subject(self):
        return self.device, self.worst or self.metric

    def dump(self):
        return {
            **super().dump(),
            "on": {m: h.on for m, h in self.latches.items()},
            "worst": self.worst,
            "hits": {m: list(h) for m, h in self.hits.items()},
            "explained": self.explained,
        }

    def load(self, state):
        super().load(state)
        for metric, on in state["on"].items():
            latch = self.latches[metric] = _Hysteresis(
                ">=", self.DEFAULT if self.spec.value is None else self.spec.value, self.spec.clear
            )
            latch.on = on
        self.worst = state["worst"]
        self.hits = {m: deque(h, maxlen=self.spec.min_count) for m, h in state["hits"].items()}
        self.explained = dict(state["explained"])

    def context(self):
        metric = self.worst or self.metric
        why = self.explained.get(metric) if metric is not None else None
        if why is None and metric is None and len(self.explained) == 1:
            why = next(iter(self.explained.values()))
        return {"anomaly": why} if why is not None else None

    def describe(self):
        metric = self.worst or self.metric
        limit = "flagged by its detector" if self.spec.value is None else f">= {self.spec.value:g}"
        if self.spec.min_count is not None:
            limit += f" {self.spec.min_count} times in {format_duration(self.spec.window)}"
        # The reading and what the model expected say more than the score: "temperature =
        # 45.2, expected 20.1 (19.5 to 20.7)". A detector's own decision may come with a score of
        # 0 (the score is not what it decided on): then the score is left out.
        why = self.explained.get(metric) if metric is not None else None
        reading = _reading(why, metric)
        head = f"{self.device}.{metric or '*'}"
        if reading is not None:
            head += f" = {_num(reading)}{_expected(why, metric)}, anomaly"
        else:
            head += " anomaly"
        if self.last is not None and (self.spec.value is not None or self.last > 0):
            return f"{head} score {self.last:.4g} {limit}{self._for_text()}"
        return f"{head} {limit}{self._for_text()}"


def _reading(why: dict[str, Any] | None, metric: str | None) -> float | None:
    """The judged reading of ``metric`` in an anomaly's explanation, if it says."""
    if not why or metric is None:
        return None
    x = why.get("value") if why.get("metric") == metric else None
    if x is None:
        x = (why.get("values") or {}).get(metric)
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _expected(why: dict[str, Any] | None, metric: str | None) -> str:
    e = ((why or {}).get("expected") or {}).get(metric) if metric else None
    if not isinstance(e, dict):
        return ""
    value, lo, hi = e.get("value"), e.get("lo"), e.get("hi")
    out = f", expected {_num(value)}" if isinstance(value, int | float) else ""
    if isinstance(lo, int | float) and isinstance(hi, int | float):
        out += f" ({_num(lo)} to {_num(hi)})" if out else f", expected {_num(lo)} to {_num(hi)}"
    return out


class NoDataEval(Leaf):
    timed = True

    def __init__(self, spec: NoData, device: str, now: int) -> None:
        super().__init__(spec, device)
        self.timeout_us = int(spec.timeout * US)
        # Silence counts from when we started watching, so a device that never speaks is caught.
        self.last_seen = now

    def feed(self, metric, ts, x, now):
        self.last_seen = max(self.last_seen, now)

    def raw(self, t):
        return t - self.last_seen >= self.timeout_us

    def dump(self):
        return {**super().dump(), "seen": self.last_seen}

    def load(self, state):
        super().load(state)
        self.last_seen = state["seen"]

    def value(self):
        return None

    def describe(self):
        what = f"{self.device}.{self.metric}" if self.metric else self.device
        return f"no data from {what} for {format_duration(self.timeout_us / US)}"


class ForecastEval(Leaf):
    """A ``forecast`` condition: its truth moves only when a forecast is evaluated for it
    (``atoll.rules.forecasting``, on the timer pass, ``due`` at most once per ``every``)."""

    kind = FORECAST
    timed = True

    def __init__(self, spec: ForecastCrossing, device: str, now: int) -> None:
        super().__init__(spec, device)
        self.every_us = int(spec.every * US)
        self.horizon_us = int(spec.within * US)
        self.next_at = now  # the first pass after it is built evaluates it
        self.on = False
        self.streak = 0  # consecutive evaluations that disagreed with ``on``
        #: The last evaluation: what the forecast said, or why there was none (plain data).
        self.result: dict[str, Any] | None = None
        self.pending = False  # a forecast for it is under way (not checkpointed)

    def feed(self, metric, ts, x, now):
        pass  # fed by forecasts, never by readings

    def due(self, now: int) -> bool:
        return not self.pending and now >= self.next_at

    def started(self, now: int) -> None:
        self.pending, self.next_at = True, now + self.every_us

    def done(self, result: dict[str, Any]) -> None:
        """Take in one evaluation: ``crosses`` true or false moves the latch after ``confirm``
        agreeing ones; ``None`` (not evaluated, ``reason`` says why) leaves it as it is."""
        self.pending = False
        self.result = result
        crosses = result.get("crosses")
        if result.get("last_value") is not None:
            self.last = float(result["last_value"])
        if crosses is None:
            return
        if bool(crosses) == self.on:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.spec.confirm:
            self.on, self.streak = bool(crosses), 0

    def raw(self, t):
        return self.on

    def dump(self):
        return {
            **super().dump(),
            "on": self.on,
            "streak": self.streak,
            "next": self.next_at,
            "result": self.result,
        }

    def load(self, state):
        super().load(state)
        self.on, self.streak, self.next_at = state["on"], state["streak"], state["next"]
        self.result = state["result"]

    def context(self):
        return {"forecast": self.result} if self.result is not None else None

    def describe(self):
        s, r = self.spec, self.result or {}
        line = f"{s.threshold:g} ({s.direction})"
        head = f"{self.device}.{s.metric} forecast"
        hit = r.get("ts") if s.on == "mean" else r.get("earliest")
        if self.on and hit is not None and r.get("at") is not None:
            minutes = max(0.0, (hit - r["at"]) / (60 * US))
            out = f"{head} crosses {line} in about {minutes:.0f} min, at {_clock(hit)}"
            ends = [f"{name} {_clock(r[name])}" for name in ("earliest", "latest") if r.get(name)]
            if ends:
                out += f" ({', '.join(ends)})"
            if r.get("model"):
                out += f", by {r['model']}"
            return out
        if r.get("crosses") is None and r.get("reason"):
            return f"{head} not evaluated: {r['reason']}"
        return f"{head} does not cross {line} within {format_duration(s.within)}"


def _clock(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / US, UTC).strftime("%Y-%m-%d %H:%M UTC")


class CompositeEval(Node):
    def __init__(self, spec, children: list[Node]) -> None:
        super().__init__(spec)
        self.every = spec.type == "all"
        self.children = children
        self.timed = self.timed or any(c.timed for c in children)

    def raw(self, t):
        # Evaluate every child (no short-circuit) so each keeps its own "for" timer right.
        states = [c.evaluate(t) for c in self.children]
        return all(states) if self.every else any(states)

    def leaves(self):
        return [leaf for c in self.children for leaf in c.leaves()]

    def dump(self):
        return {**super().dump(), "children": [c.dump() for c in self.children]}

    def load(self, state):
        super().load(state)
        for c, got in zip(self.children, state["children"], strict=True):
            c.load(got)

    def _true_children(self):
        return [c for c in self.children if c.raw_state] or self.children

    def describe(self):
        joiner = " and " if self.every else " or "
        parts = [
            f"({c.describe()})" if isinstance(c, CompositeEval) else c.describe()
            for c in self._true_children()
        ]
        return joiner.join(parts) + self._for_text()

    def value(self):
        for c in self._true_children():
            v = c.value()
            if v is not None:
                return v
        return None

    def subject(self):
        for c in self._true_children():
            device, metric = c.subject()
            if metric is not None:
                return device, metric
        return self._true_children()[0].subject()

    def context(self):
        for c in self._true_children():
            got = c.context()
            if got is not None:
                return got
        return None


def build(spec, device: str, now: int) -> Node:
    """An evaluator tree for ``spec`` watching ``device``."""
    if isinstance(spec, Threshold):
        return ThresholdEval(spec, device)
    if isinstance(spec, RateOfChange):
        return RateEval(spec, device)
    if isinstance(spec, AnomalyScore):
        return AnomalyEval(spec, device)
    if isinstance(spec, NoData):
        return NoDataEval(spec, device, now)
    if isinstance(spec, ForecastCrossing):
        return ForecastEval(spec, device, now)
    if isinstance(spec, (AllOf, AnyOf)):
        return CompositeEval(spec, [build(c, device, now) for c in spec.conditions])
    raise TypeError(f"unknown condition {spec!r}")
