"""The schema of a sector solution template: a folder with ``manifest.json`` and ``template.yaml``.

The manifest says what the template is (name, sector, version, files); the template says what a
project built from it contains: device types with their telemetry and how the simulator should
make it behave, default detectors, rules and the console dashboard. Everything is data, checked
by these pydantic models when the template is loaded.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, _ . - ; at most 64)")
    return value


class FaultKind(StrEnum):
    """Faults the simulator can inject; ground truth records one of these per fault."""

    bearing_wear = "bearing_wear"
    compressor_failure = "compressor_failure"
    door_left_open = "door_left_open"
    sensor_stuck = "sensor_stuck"
    sensor_dropout = "sensor_dropout"
    structural_shift = "structural_shift"
    cash_running_out = "cash_running_out"


# --- simulation of one metric -------------------------------------------------------------


class Cycle(_Strict):
    """A square wave: on for ``duty`` of each ``period_s`` (a compressor, a pump duty cycle)."""

    period_s: float = Field(gt=0)
    duty: float = Field(gt=0, lt=1)
    amplitude: float


class Events(_Strict):
    """Random pulses (door openings, fault codes): Poisson starts, fixed length, a value."""

    per_hour: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    value: float = 1.0
    choices: list[float] | None = None  # draw the pulse value from these instead


class Sawtooth(_Strict):
    """Linear fall by ``amplitude`` over ``period_s``, then a jump back (cash drawn, refilled)."""

    period_s: float = Field(gt=0)
    amplitude: float


class Follow(_Strict):
    """Coupling: add ``gain`` x (low-passed driver -
    driver's mean). ``lag_s`` is the time constant."""

    metric: str
    gain: float
    lag_s: float = Field(default=60.0, gt=0)


class Signal(_Strict):
    """How the simulator generates one metric. Values add up; every term defaults to off."""

    base: float
    spread: float = Field(default=0.02, ge=0)  # per-device relative variation of base
    daily: float = 0.0  # amplitude of the daily cycle
    profile: Literal["sine", "business"] = "sine"
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    weekend: float = 0.0  # offset on Saturdays and Sundays
    weekend_scale: float = Field(default=1.0, ge=0)  # multiplies the daily term on weekends
    noise: float = Field(default=0.0, ge=0)  # white noise sd
    walk: float = Field(default=0.0, ge=0)  # sd of a slow AR(1) wander
    walk_tau_s: float = Field(default=3600.0, gt=0)
    drift_per_day: float = 0.0  # each device drifts by a random fraction of this
    cycle: Cycle | None = None
    events: Events | None = None
    sawtooth: Sawtooth | None = None
    follows: list[Follow] = Field(default_factory=list)
    floor: float | None = None  # physical limits (clip), not the expected range
    ceil: float | None = None
    decimals: int = Field(default=3, ge=0, le=9)


class Telemetry(_Strict):
    name: str
    unit: str = ""
    type: Literal["float", "int", "bool"] = "float"
    min: float | None = None  # expected range: values outside are suspicious, not rejected
    max: float | None = None
    description: str = ""
    sim: Signal

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _range(self) -> Telemetry:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"telemetry {self.name!r}: min must be below max")
        return self


class Effect(_Strict):
    """What a fault does to one metric.

    ``add_ramp``: add ``value`` x progress**power (wear); ``step``: add ``value``;
    ``set``: hold at ``value`` (a dead compressor, an open door); ``ramp_to``: move linearly from
    the value at the start to ``value`` over the first ``over`` of the window, then hold;
    ``stuck``: the sensor repeats its last reading; ``dropout``: the metric is not sent.
    Physical effects (all but stuck/dropout) also move the metrics that follow this one.
    """

    metric: str
    op: Literal["add_ramp", "step", "set", "ramp_to", "stuck", "dropout"]
    value: float = 0.0
    power: float = Field(default=1.0, gt=0)
    over: float = Field(default=1.0, gt=0, le=1)
    noise: float = Field(default=0.0, ge=0)


class FaultSpec(_Strict):
    effects: list[Effect] = Field(min_length=1)
    duration_s: tuple[float, float] = (300.0, 900.0)

    @model_validator(mode="after")
    def _duration(self) -> FaultSpec:
        lo, hi = self.duration_s
        if not 0 < lo <= hi:
            raise ValueError("duration_s must be [min, max] with 0 < min <= max")
        return self


class WearEffect(_Strict):
    """What wear does to one metric: add ``value`` x wear**power (wear runs from 0 when new to 1
    at failure)."""

    metric: str
    value: float
    power: float = Field(default=2.0, gt=0)


class Wear(_Strict):
    """Degradation to failure, for the simulator to play when a fleet turns wear on
    (``Fleet(wear=True)``, as ``atoll demo`` does).

    Each run of a device lasts a life drawn uniformly from ``life_s``; its wear is the share of
    that life gone by, and each effect adds ``value`` x wear**power to its metric. At wear 1 the
    device fails and is repaired as new: a new run with a new life. ``visible_from`` is the wear
    from which the effects show, the start of a wear-out in the simulator's ground truth.
    """

    life_s: tuple[float, float]
    effects: list[WearEffect] = Field(min_length=1)
    visible_from: float = Field(default=0.35, ge=0, lt=1)

    @model_validator(mode="after")
    def _life(self) -> Wear:
        lo, hi = self.life_s
        if not 0 < lo <= hi:
            raise ValueError("life_s must be [min, max] with 0 < min <= max")
        return self


class DetectorBinding(_Strict):
    """Run detector ``detector`` (a registry name; ``default`` always exists) on ``metrics``."""

    detector: str = "default"
    metrics: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    #: Episode decision settings (``atoll.detect.episodes``); ``{}`` = the defaults, absent =
    #: the detector's per-reading decision.
    decision: dict[str, Any] | None = None
    #: Fleet-baseline settings (``atoll.detect.fleet``); ``{}`` = the defaults, absent = none.
    fleet: dict[str, Any] | None = None


class DeviceType(_Strict):
    name: str
    description: str = ""
    share: float = Field(default=1.0, gt=0)  # relative weight in a simulated fleet
    telemetry: list[Telemetry] = Field(min_length=1)
    detectors: list[DetectorBinding] = Field(default_factory=list)
    faults: dict[FaultKind, FaultSpec] = Field(default_factory=dict)
    wear: Wear | None = None

    _name = field_validator("name")(_check_name)

    def metric(self, name: str) -> Telemetry:
        for t in self.telemetry:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def metric_names(self) -> list[str]:
        return [t.name for t in self.telemetry]

    def registry_metrics(self) -> list[dict[str, Any]]:
        """Telemetry as the registry declares it (``POST .../device-types`` ``metrics``)."""
        return [
            {"name": t.name, "type": t.type, "unit": t.unit, "min": t.min, "max": t.max}
            for t in self.telemetry
        ]

    @model_validator(mode="after")
    def _references(self) -> DeviceType:
        names = [t.name for t in self.telemetry]
        if len(set(names)) != len(names):
            raise ValueError(f"device type {self.name!r} declares a metric twice")
        known = set(names)
        for t in self.telemetry:
            for f in t.sim.follows:
                if f.metric not in known or f.metric == t.name:
                    raise ValueError(f"{self.name}.{t.name} follows unknown metric {f.metric!r}")
        for d in self.detectors:
            for m in d.metrics:
                if m not in known:
                    raise ValueError(f"{self.name}: detector on unknown metric {m!r}")
        for kind, spec in self.faults.items():
            for e in spec.effects:
                if e.metric not in known:
                    raise ValueError(
                        f"{self.name}: fault {kind.value} on unknown metric {e.metric!r}"
                    )
        for w in self.wear.effects if self.wear else ():
            if w.metric not in known:
                raise ValueError(f"{self.name}: wear on unknown metric {w.metric!r}")
        _follow_order(self.telemetry)  # raises on a cycle
        return self


def _follow_order(telemetry: list[Telemetry]) -> list[str]:
    """Metric names ordered so that every driver comes before its followers."""
    deps = {t.name: [f.metric for f in t.sim.follows] for t in telemetry}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError("metrics follow each other in a cycle: " + " -> ".join(path + (name,)))
        state[name] = 1
        for d in deps[name]:
            visit(d, path + (name,))
        state[name] = 2
        order.append(name)

    for t in telemetry:
        visit(t.name, ())
    return order


class Panel(_Strict):
    title: str
    device_type: str
    metrics: list[str] = Field(min_length=1)
    kind: Literal["line", "stat", "gauge", "bar", "table", "status"] = "line"
    width: int = Field(default=6, ge=1, le=12)  # of a 12-column grid


class Dashboard(_Strict):
    title: str
    panels: list[Panel] = Field(min_length=1)


class Template(_Strict):
    """A sector solution: what a new project built from it contains."""

    name: str
    title: str
    sector: str
    description: str = ""
    version: str = "1"
    device_types: list[DeviceType] = Field(min_length=1)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    dashboard: Dashboard

    _name = field_validator("name")(_check_name)

    def device_type(self, name: str) -> DeviceType:
        for d in self.device_types:
            if d.name == name:
                return d
        raise KeyError(name)

    @model_validator(mode="after")
    def _references(self) -> Template:
        types = {d.name: d for d in self.device_types}
        if len(types) != len(self.device_types):
            raise ValueError(f"template {self.name!r} declares a device type twice")
        for p in self.dashboard.panels:
            dt = types.get(p.device_type)
            if dt is None:
                raise ValueError(f"panel {p.title!r}: unknown device type {p.device_type!r}")
            missing = set(p.metrics) - set(dt.metric_names)
            if missing:
                raise ValueError(f"panel {p.title!r}: unknown metrics {sorted(missing)}")
        return self


class Manifest(_Strict):
    """``manifest.json``: identifies a template folder, like a Home Assistant integration."""

    name: str
    title: str
    sector: Literal["manufacturing", "retail", "healthcare", "finance", "construction"]
    version: str
    description: str
    template: str = "template.yaml"
    requires_atoll: str = ">=0.1"

    _name = field_validator("name")(_check_name)
