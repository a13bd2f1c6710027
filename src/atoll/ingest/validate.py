"""Parse and validate device telemetry against the device type's declared telemetry.

A message is accepted or rejected as a whole: a device gets one precise reason and never a
half-stored message. Accepted values outside a metric's declared ``min``/``max`` are *kept*
and counted as ``out_of_range`` by default (``Limits.out_of_range="flag"``): a reading outside
the expected range is often exactly the anomaly an operator wants to see, and dropping it would
hide it. Set ``out_of_range="reject"`` to refuse such messages instead.

>>> schema = TelemetrySchema.of([MetricSpec("temperature", min=-40, max=85)])
>>> parsed = parse_telemetry(b'{"ts": 1700000000000, "values": {"temperature": 21.5}}',
...                          project="p", device="d", schema=schema)
>>> parsed.batch().value.tolist(), parsed.batch().ts.tolist()
([21.5], [1700000000000000])
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import numpy as np

from atoll.core.errors import InvalidInput, PayloadTooLarge
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.port import ONE_WRITER, StampSlot

# Stable reason codes; rejection counters and logs use them.
MALFORMED_JSON = "malformed_json"
WRONG_TYPE = "wrong_type"
NOT_FINITE = "not_finite"
UNKNOWN_SERIES = "unknown_series"
TOO_LARGE = "too_large"
FUTURE_TIMESTAMP = "future_timestamp"
BAD_TIMESTAMP = "bad_timestamp"
OUT_OF_RANGE = "out_of_range"
EMPTY = "empty"
INTEGER_TOO_LARGE = "integer_too_large"
UNPARSEABLE = "unparseable"  # the validator failed unexpectedly; see IngestPipeline.validate

_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Epoch-millisecond values below this (1973-03-03) are almost surely epoch *seconds*. The same
# lower bound holds for ISO-8601 timestamps, so both formats accept one range:
# [1973-03-03T09:46:40Z, server time + max_future_skew_s].
_MIN_EPOCH_MS = 100_000_000_000
_MIN_TS_US = _MIN_EPOCH_MS * 1000
# The largest magnitude of integers a float64 (the store's value type) holds exactly. Larger
# integers are refused rather than silently rounded.
MAX_EXACT_INT = 2**53


class InvalidTelemetry(InvalidInput):
    """A device message was refused; ``reason`` is one of the reason codes above."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason}


class TelemetryTooLarge(PayloadTooLarge):
    reason = TOO_LARGE

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One declared telemetry metric of a device type."""

    name: str
    type: str = "float"  # float | int | bool (aliases: number, double, integer, boolean)
    min: float | None = None
    max: float | None = None
    unit: str | None = None


_KIND = {
    "float": "f",
    "number": "f",
    "double": "f",
    "int": "i",
    "integer": "i",
    "bool": "b",
    "boolean": "b",
}


@dataclass(frozen=True, slots=True)
class TelemetrySchema:
    """Compiled view of a device type's telemetry: name -> (kind, lo, hi).

    An empty schema is *open*: any metric with a sane name and a numeric or boolean value is
    accepted. Devices without a declared type still work; declaring telemetry turns on the
    ``unknown_series`` and range checks.
    """

    metrics: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, specs) -> TelemetrySchema:
        out = {}
        for s in specs:
            kind = _KIND.get(str(s.type).lower())
            if kind is None:
                raise InvalidInput(
                    f"telemetry {s.name!r} has unsupported type {s.type!r}",
                    hint="use float, int or bool",
                )
            lo = -math.inf if s.min is None else float(s.min)
            hi = math.inf if s.max is None else float(s.max)
            out[s.name] = (kind, lo, hi)
        return cls(out)

    @property
    def open(self) -> bool:
        return not self.metrics


OPEN_SCHEMA = TelemetrySchema()


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 256 * 1024
    max_points: int = 10_000
    max_future_skew_s: float = 300.0
    out_of_range: Literal["flag", "reject"] = "flag"


DEFAULT_LIMITS = Limits()


class _Reading(msgspec.Struct):
    values: dict[str, Any]
    ts: datetime | int | float | None = None


_decoder = msgspec.json.Decoder(_Reading | list[_Reading])


@dataclass(slots=True)
class ParsedTelemetry:
    """A validated message, still as plain lists so many can be merged cheaply."""

    project: str
    device: str
    metrics: list[str]
    key_index: list[int]
    ts: list[int]
    value: list[float]
    out_of_range: int = 0
    out_of_range_metrics: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)

    def keys(self) -> tuple[SeriesKey, ...]:
        return tuple(SeriesKey(self.project, self.device, m) for m in self.metrics)

    def batch(self) -> PointBatch:
        return PointBatch(
            self.keys(),
            np.array(self.key_index, dtype=np.int32),
            np.array(self.ts, dtype=np.int64),
            np.array(self.value, dtype=np.float64),
        )


def merge(parsed: list[ParsedTelemetry]) -> PointBatch:
    """One ``PointBatch`` out of many validated messages (keys de-duplicated)."""
    keys: list[SeriesKey] = []
    devices: dict[tuple[str, str], dict[str, int]] = {}
    idx: list[int] = []
    ts: list[int] = []
    val: list[float] = []
    for p in parsed:
        # Many messages of a group come from few devices: look keys up per device, and build
        # each SeriesKey once per merge (not once per message).
        device = devices.get((p.project, p.device))
        if device is None:
            device = devices[(p.project, p.device)] = {}
        lut = []
        for m in p.metrics:
            k = device.get(m)
            if k is None:
                k = device[m] = len(keys)
                keys.append(SeriesKey(p.project, p.device, m))
            lut.append(k)
        if len(lut) == 1:
            idx.extend(lut * len(p.ts))
        else:
            idx.extend([lut[i] for i in p.key_index])
        ts.extend(p.ts)
        val.extend(p.value)
    return PointBatch(
        tuple(keys),
        np.array(idx, dtype=np.int32),
        np.array(ts, dtype=np.int64),
        np.array(val, dtype=np.float64),
    )


class ServerClock:
    """Server timestamps for readings sent without ``ts``: unique across writer processes,
    strictly increasing per device in this process.

    A point's identity in the store is (series, timestamp), last write wins, so two readings
    of one series stamped by the server must not share a microsecond. Per device, readings
    without ``ts`` in one batch get consecutive stamps (in batch order), and later messages
    get later stamps even when they arrive within the same microsecond. Across processes
    writing one store, each stamps only the microseconds of its ``StampSlot`` (``slot`` mod
    ``of``; the store hands it out), so two nodes never stamp the same one. Consecutive stamps
    of one device are ``of`` µs apart: a device sending more than 10⁶/``of`` readings without
    ``ts`` per second gets stamps a little ahead of the clock.

    >>> clock = ServerClock(lambda: StampSlot(7, 100))
    >>> first, step = clock.reserve(("p", "d"), 3)
    >>> step, first % 100, clock.reserve(("p", "d"), 1)[0] == first + 3 * step
    (100, 7, True)
    """

    #: Devices remembered before forgetting those whose last stamp is already in the past.
    SWEEP_AT = 4096

    def __init__(self, slot: Callable[[], StampSlot] = lambda: ONE_WRITER) -> None:
        self._slot = slot
        self._last: dict[tuple[str, str], int] = {}
        # Every forgotten device's last stamp is below this: a clock stepped back (NTP) cannot
        # hand one of them a stamp it already had.
        self._floor = 0
        self._sweep_at = self.SWEEP_AT
        self._lock = threading.Lock()

    def reserve(self, device: tuple[str, str], n: int) -> tuple[int, int]:
        """``(first, step)`` of ``n`` never-before-returned stamps for ``device``: ``first``,
        ``first + step``, ...; ``step`` is the slot modulus."""
        slot = self._slot()
        with self._lock:
            now = time.time_ns() // 1000
            last = self._last.get(device)
            base = max(now, self._floor) if last is None else max(now, last + 1)
            base = slot.align(base)
            self._last[device] = base + (max(n, 1) - 1) * slot.of
            if len(self._last) > self._sweep_at:
                self._last = {k: v for k, v in self._last.items() if v >= now}
                self._floor = max(self._floor, now)
                self._sweep_at = max(self.SWEEP_AT, 2 * len(self._last))
            return base, slot.of


_server_clock = ServerClock()


def _ts_us(raw, where: str, latest_ok: int, clock: int, limits: Limits) -> int:
    """A given ``ts`` (ISO-8601 with offset, or epoch ms) in µs, inside the accepted range."""
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raise InvalidTelemetry(
                BAD_TIMESTAMP,
                f"{where}.ts={raw.isoformat()!r} has no UTC offset",
                hint='end ISO-8601 timestamps with "Z" or an offset like "+02:00"',
            )
        delta = raw - _EPOCH
        t = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        if t < _MIN_TS_US:
            raise InvalidTelemetry(
                BAD_TIMESTAMP,
                f"{where}.ts={raw.isoformat()!r} is before 1973-03-03T09:46:40Z",
                hint="timestamps are accepted from 1973-03-03T09:46:40Z (epoch ms 1e11) on",
            )
        return t
    if isinstance(raw, bool) or not math.isfinite(raw):
        raise InvalidTelemetry(BAD_TIMESTAMP, f"{where}.ts is not a valid timestamp")
    if raw < _MIN_EPOCH_MS:
        raise InvalidTelemetry(
            BAD_TIMESTAMP,
            f"{where}.ts={raw!r} is before 1973; ts must be epoch *milliseconds*",
            hint="multiply epoch seconds by 1000, or send an ISO-8601 string",
        )
    t = raw * 1000
    if t > latest_ok:  # before int(): a float like 1e308 has no integer in range
        raise _future(where, t, clock, limits)
    return int(t) if isinstance(t, float) else t


def _future(where: str, t: float, clock: int, limits: Limits) -> InvalidTelemetry:
    # t may be any huge integer or an infinite float: no float conversion that could overflow.
    ahead = t - clock
    ahead_s = "more than 10^12" if ahead >= 10**18 else f"{ahead / 1e6:.0f}"
    return InvalidTelemetry(
        FUTURE_TIMESTAMP,
        f"{where}.ts is {ahead_s} s in the future; "
        f"at most {limits.max_future_skew_s:g} s of clock skew is allowed",
        hint="sync the device clock (NTP) or leave ts out to use server time",
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _decode(body: bytes):
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as e:
        msg = str(e)
        if "RFC3339" in msg or "`$.ts`" in msg or ".ts`" in msg:
            raise InvalidTelemetry(
                BAD_TIMESTAMP,
                f"bad timestamp: {msg}",
                hint='use ISO-8601 with offset ("2026-11-23T10:00:00Z") or epoch milliseconds',
            ) from None
        if msg.startswith("Number out of range"):
            raise InvalidTelemetry(
                NOT_FINITE,
                f"a value overflows a 64-bit float ({msg})",
                hint="values must be finite 64-bit floats",
            ) from None
        raise InvalidTelemetry(
            WRONG_TYPE,
            f"payload does not match the telemetry format: {msg}",
            hint='send {"ts": <optional>, "values": {"metric": number, ...}}'
            " or a JSON array of those",
        ) from None
    except msgspec.DecodeError as e:
        if re.search(rb"(?<![\"\w])-?(NaN|Infinity)\b", body):
            raise InvalidTelemetry(
                NOT_FINITE,
                "NaN and Infinity are not valid values (and not valid JSON)",
                hint="leave the metric out of the reading when it has no value",
            ) from None
        raise InvalidTelemetry(MALFORMED_JSON, f"malformed JSON: {e}") from None
    except UnicodeDecodeError as e:  # msgspec lets these through for bad bytes inside strings
        raise InvalidTelemetry(
            MALFORMED_JSON,
            f"malformed JSON: invalid UTF-8 at byte {e.start}",
            hint="JSON text must be UTF-8",
        ) from None
    except RecursionError:
        raise InvalidTelemetry(MALFORMED_JSON, "malformed JSON: nested too deeply") from None


def parse_telemetry(
    body: bytes,
    *,
    project: str,
    device: str,
    schema: TelemetrySchema = OPEN_SCHEMA,
    limits: Limits = DEFAULT_LIMITS,
    now_us: int | None = None,
    stamps: ServerClock | None = None,
) -> ParsedTelemetry:
    """Validate one telemetry message; raise ``InvalidTelemetry``/``TelemetryTooLarge``.

    Readings without ``ts`` are stamped by ``stamps`` (a process-wide one by default), or from
    ``now_us`` on, one µs apart, when that is given (tests)."""
    if len(body) > limits.max_bytes:
        raise TelemetryTooLarge(
            f"payload is {len(body)} bytes; the limit is {limits.max_bytes}",
            hint="split the batch into smaller messages",
        )
    doc = _decode(body)
    clock = time.time_ns() // 1000 if now_us is None else now_us
    if type(doc) is _Reading:
        parsed = _one_reading(doc, project, device, schema, limits, clock)
        if parsed is not None:
            return parsed
    readings = doc if isinstance(doc, list) else (doc,)
    latest_ok = clock + int(limits.max_future_skew_s * 1_000_000)
    stamp, step = now_us, 1  # server stamps for readings without ts, reserved when needed
    metrics_spec = schema.metrics
    is_open = not metrics_spec
    key_of: dict[str, int] = {}
    metrics: list[str] = []
    kidx: list[int] = []
    tss: list[int] = []
    vals: list[float] = []
    flagged = 0
    flagged_names: set[str] | None = None
    reject_oor = limits.out_of_range == "reject"
    npoints = 0
    for n, r in enumerate(readings):
        where = f"$[{n}]" if doc is readings else "$"
        raw = r.ts
        if type(raw) is int and raw >= _MIN_EPOCH_MS:  # the usual case, checked inline
            t = raw * 1000
            if t > latest_ok:
                raise _future(where, t, clock, limits)
        elif raw is None:  # server time: never "in the future", however fast a device sends
            if stamp is None:
                stamp, step = (stamps or _server_clock).reserve((project, device), len(readings))
            t = stamp + n * step
        else:
            t = _ts_us(raw, where, latest_ok, clock, limits)
            if t > latest_ok:
                raise _future(where, t, clock, limits)
        values = r.values
        npoints += len(values)
        if npoints > limits.max_points:
            raise TelemetryTooLarge(
                f"message has more than {limits.max_points} points",
                hint="split the batch into smaller messages",
            )
        for name, v in values.items():
            tv = type(v)
            if is_open:
                if not _METRIC_NAME.match(name):
                    raise InvalidTelemetry(
                        UNKNOWN_SERIES,
                        f"{where}.values: bad metric name {name!r}",
                        hint="metric names are 1-64 of A-Z a-z 0-9 _ . -",
                    )
                if tv is float:
                    fv = v
                elif tv is int:
                    fv = _exact(where, name, v)
                elif tv is bool:
                    fv = 1.0 if v else 0.0
                else:
                    raise _wrong(where, name, v, "a number or boolean")
                lo, hi = -math.inf, math.inf
            else:
                spec = metrics_spec.get(name)
                if spec is None:
                    raise InvalidTelemetry(
                        UNKNOWN_SERIES,
                        f"{where}.values.{name}: metric {name!r}"
                        " is not declared by the device type",
                        hint="declared metrics: " + ", ".join(sorted(metrics_spec)),
                    )
                kind, lo, hi = spec
                if kind == "f":
                    if tv is float:
                        fv = v
                    elif tv is int:
                        fv = _finite(where, name, v)
                    else:
                        raise _wrong(where, name, v, "a number")
                elif kind == "i":
                    if tv is int or (tv is float and v.is_integer()):
                        fv = _exact(where, name, v)
                    else:
                        raise _wrong(where, name, v, "an integer")
                else:
                    if tv is bool:
                        fv = 1.0 if v else 0.0
                    else:
                        raise _wrong(where, name, v, "true or false")
            if fv - fv != 0.0:  # inf or nan (JSON numbers like 1e999 overflow to inf)
                raise InvalidTelemetry(
                    NOT_FINITE,
                    f"{where}.values.{name} is not a finite number",
                    hint="values must be finite 64-bit floats",
                )
            if fv < lo or fv > hi:
                if reject_oor:
                    raise InvalidTelemetry(
                        OUT_OF_RANGE,
                        f"{where}.values.{name}={fv:g}"
                        f" is outside the declared range [{lo:g}, {hi:g}]",
                    )
                flagged += 1
                if flagged_names is None:
                    flagged_names = set()
                flagged_names.add(name)
            k = key_of.get(name)
            if k is None:
                k = key_of[name] = len(metrics)
                metrics.append(name)
            kidx.append(k)
            tss.append(t)
            vals.append(fv)
    if not tss:
        raise InvalidTelemetry(
            EMPTY, "message holds no values", hint='send {"values": {"metric": number}}'
        )
    if flagged_names is None:
        return ParsedTelemetry(project, device, metrics, kidx, tss, vals)
    return ParsedTelemetry(
        project, device, metrics, kidx, tss, vals, flagged, tuple(sorted(flagged_names))
    )


def _one_reading(
    r: _Reading, project: str, device: str, schema: TelemetrySchema, limits: Limits, clock: int
) -> ParsedTelemetry | None:
    """The usual single-reading message (epoch-ms ``ts``, declared float metrics, finite values
    in range), checked with less work per message; ``None`` for anything else, which the general
    path then accepts or refuses with its precise reason."""
    raw = r.ts
    values = r.values
    if type(raw) is not int or raw < _MIN_EPOCH_MS or len(values) > limits.max_points:
        return None
    t = raw * 1000
    if t > clock + int(limits.max_future_skew_s * 1_000_000):
        return None
    spec_of = schema.metrics.get
    names: list[str] = []
    kidx, tss, vals = [], [], []
    for name, v in values.items():
        spec = spec_of(name)
        tv = type(v)
        if spec is None or spec[0] != "f" or (tv is not float and tv is not int):
            return None
        try:
            fv = float(v)
        except OverflowError:  # an integer beyond float64: the general path says why
            return None
        if fv - fv != 0.0 or not spec[1] <= fv <= spec[2]:  # inf (1e999 overflows), out of range
            return None
        kidx.append(len(names))
        names.append(name)
        tss.append(t)
        vals.append(fv)
    if not names:
        return None
    return ParsedTelemetry(project, device, names, kidx, tss, vals)


def _finite(where: str, name: str, v: int) -> float:
    """A JSON integer for a ``float`` metric: rounded like any number, refused if it overflows."""
    try:
        return float(v)
    except OverflowError:
        raise InvalidTelemetry(
            NOT_FINITE,
            f"{where}.values.{name} overflows a 64-bit float",
            hint="values must be finite 64-bit floats",
        ) from None


def _exact(where: str, name: str, v: float) -> float:
    """A whole number for an ``int`` metric (or a device without a type), kept exact or refused."""
    if -MAX_EXACT_INT <= v <= MAX_EXACT_INT:
        return float(v)
    raise InvalidTelemetry(
        INTEGER_TOO_LARGE,
        f"{where}.values.{name} is an integer beyond ±2^53 that a 64-bit float cannot hold exactly",
        hint="integers are stored exactly from -9007199254740992 to 9007199254740992; "
        "send larger magnitudes as a float metric",
    )


def _wrong(where: str, name: str, v, expected: str) -> InvalidTelemetry:
    got = "null" if v is None else type(v).__name__
    if isinstance(v, bool):
        got = "boolean"
    elif isinstance(v, (dict, list, str)):
        got = {dict: "object", list: "array", str: "string"}[type(v)]
    return InvalidTelemetry(WRONG_TYPE, f"{where}.values.{name}: expected {expected}, got {got}")
