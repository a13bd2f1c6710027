"""Atoll's time unit, and the conversions into it.

Inside Atoll a timestamp is an ``int`` of microseconds since the Unix epoch (UTC), and a
duration an ``int`` of microseconds. Anything else (epoch seconds or milliseconds, ISO-8601
text, ``"5m"``) is converted once, where it enters (ingest, API query parameters, CLI options,
files), with its unit said:

>>> to_us(1_700_000_000_123, MS)
1700000000123000
>>> from_us(1_700_000_000_123_456, MS)
1700000000123.456
>>> parse_iso("2026-11-23T10:00:00Z")
1795428000000000
>>> parse_duration("1h30m")
5400000000

Only inputs documented to take epoch seconds, milliseconds *or* microseconds (a CSV file given
to ``atoll detect``, a simulator's ground truth) tell them apart by magnitude, with
:func:`guess_epoch_unit`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from atoll.core.errors import InvalidInput


class TimeUnit(StrEnum):
    S = "s"
    MS = "ms"
    US = "us"
    NS = "ns"


S, MS, US, NS = TimeUnit.S, TimeUnit.MS, TimeUnit.US, TimeUnit.NS

_NS_PER: dict[TimeUnit, int] = {S: 1_000_000_000, MS: 1_000_000, US: 1_000, NS: 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Epoch numbers from here on are microseconds, and from _MS_FROM (1973-03-03 in ms, or the
# year 5138 in seconds) they are milliseconds: no real clock reading is ambiguous.
_US_FROM = 1e14
_MS_FROM = 1e11


class InvalidTime(InvalidInput, ValueError):
    """A timestamp or duration that cannot be read.

    Also a ``ValueError``, so pydantic validators report it as a validation error."""


def _number(value: object, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTime(f"{value!r} is not {what}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidTime(f"{value!r} is not {what}")
    return value


def to_us(value: int | float, unit: TimeUnit) -> int:
    """Microseconds in ``value`` ``unit`` (a timestamp or a duration), to the nearest µs.

    >>> to_us(1_700_000_000, S), to_us(1.5, MS), to_us(2_400, NS)
    (1700000000000000, 1500, 2)
    >>> to_us(float("nan"), S)
    Traceback (most recent call last):
    ...
    atoll.core.time.InvalidTime: nan is not a number of s
    """
    x = _number(value, f"a number of {unit}")
    if isinstance(x, int):
        return (x * _NS_PER[unit] + 500) // 1000  # exact for any size; halves round up
    return round(x * (_NS_PER[unit] / 1000))


def from_us(value_us: int, unit: TimeUnit) -> float:
    """``value_us`` µs in ``unit``.

    >>> from_us(1_500_000, S), from_us(1_500, MS), from_us(3, NS)
    (1.5, 1.5, 3000.0)
    """
    return value_us * 1000 / _NS_PER[unit]


def floor_to(value_us: int, unit: TimeUnit) -> int:
    """Whole ``unit`` in ``value_us`` µs, rounded down (what the live feed sends as epoch ms).

    >>> floor_to(1_999, MS), floor_to(-1, MS)
    (1, -1)
    """
    return value_us * 1000 // _NS_PER[unit]


def guess_epoch_unit(value: int | float) -> TimeUnit:
    """The unit of an epoch timestamp given in seconds, milliseconds or microseconds.

    Only for inputs documented to take any of the three; everything else declares its unit.

    >>> [str(guess_epoch_unit(x)) for x in (1_700_000_000, 1_700_000_000_000, 1.7e15)]
    ['s', 'ms', 'us']
    """
    x = abs(_number(value, "an epoch timestamp"))
    return US if x >= _US_FROM else MS if x >= _MS_FROM else S


def datetime_to_us(value: datetime) -> int:
    """µs since the epoch of ``value``; a naive datetime is taken as UTC.

    >>> datetime_to_us(datetime(1970, 1, 1, 0, 0, 1, 5))
    1000005
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_US


def us_to_datetime(value_us: int) -> datetime:
    """The UTC datetime ``value_us`` µs after the epoch.

    >>> us_to_datetime(1795428000000000).isoformat()
    '2026-11-23T10:00:00+00:00'
    """
    return _EPOCH + timedelta(microseconds=value_us)


def parse_iso(text: str) -> int:
    """µs since the epoch of an ISO-8601 timestamp; without a UTC offset it is taken as UTC.

    >>> parse_iso("2026-11-23T12:00:00+02:00") == parse_iso("2026-11-23T10:00:00")
    True
    >>> parse_iso("next tuesday")
    Traceback (most recent call last):
    ...
    atoll.core.time.InvalidTime: 'next tuesday' is not an ISO-8601 timestamp
    """
    try:
        return datetime_to_us(datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise InvalidTime(
            f"{text!r} is not an ISO-8601 timestamp", hint="e.g. 2026-11-23T10:00:00Z"
        ) from None


_INTEGER = re.compile(r"[+-]?\d+")


def _parse_number(text: str) -> int | float | None:
    s = text.strip()
    if _INTEGER.fullmatch(s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        return None


def parse_timestamp(value: str | int | float | datetime, unit: TimeUnit) -> int:
    """µs since the epoch of a datetime, ISO-8601 text, or a number (or its text) of ``unit``.

    >>> parse_timestamp("1700000000000", MS), parse_timestamp(1_700_000_000.5, S)
    (1700000000000000, 1700000000500000)
    >>> parse_timestamp("2023-11-14T22:13:20Z", MS)
    1700000000000000
    """
    if isinstance(value, datetime):
        return datetime_to_us(value)
    if isinstance(value, str):
        number = _parse_number(value)
        return parse_iso(value) if number is None else to_us(number, unit)
    return to_us(_number(value, "a timestamp"), unit)


def parse_timestamp_any_unit(value: object) -> int:
    """Like :func:`parse_timestamp`, for inputs documented to take epoch s, ms *or* µs: the
    unit of a number is told by its magnitude (:func:`guess_epoch_unit`).

    >>> {parse_timestamp_any_unit(x) for x in (1_700_000_000, "1700000000000", 1.7e15)}
    {1700000000000000}
    >>> parse_timestamp_any_unit(None)
    Traceback (most recent call last):
    ...
    atoll.core.time.InvalidTime: None is not a timestamp
    """
    if isinstance(value, datetime):
        return datetime_to_us(value)
    if isinstance(value, str):
        number = _parse_number(value)
        if number is None:
            return parse_iso(value)
        value = number
    x = _number(value, "a timestamp")
    return to_us(x, guess_epoch_unit(x))


_DURATION_US: dict[str, int] = {
    "us": 1,
    "µs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(us|µs|ms|s|m|h|d|w)")
DURATION_HELP = "use seconds or e.g. 500ms, 30s, 5m, 1h30m, 7d, 1w"


def parse_duration(value: object, *, unit: TimeUnit = S, positive: bool = False) -> int:
    """µs in a duration: a number of ``unit`` (seconds unless said), or text with units
    (``us``, ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``; parts add up, spaces are ignored).

    >>> parse_duration("30s"), parse_duration("1.5h"), parse_duration("1h 30m")
    (30000000, 5400000000, 5400000000)
    >>> parse_duration(2.5), parse_duration("90"), parse_duration(250, unit=MS)
    (2500000, 90000000, 250000)
    >>> parse_duration("5 minutes")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    atoll.core.time.InvalidTime: '5 minutes' is not a duration; use seconds or e.g. 500ms, ...
    >>> parse_duration("0s", positive=True)
    Traceback (most recent call last):
    ...
    atoll.core.time.InvalidTime: duration '0s' must be positive
    """
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        number = _parse_number(text) if text else None
        if number is not None:
            us = _duration_number(number, unit, value)
        else:
            us, pos = 0, 0
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos:
                    break
                us += round(float(m.group(1)) * _DURATION_US[m.group(2)])
                pos = m.end()
            if not text or pos != len(text):
                raise InvalidTime(f"{value!r} is not a duration; {DURATION_HELP}")
    else:
        us = _duration_number(_number(value, f"a duration; {DURATION_HELP}"), unit, value)
    if positive and us <= 0:
        raise InvalidTime(f"duration {value!r} must be positive")
    return us


def _duration_number(number: int | float, unit: TimeUnit, value: object) -> int:
    if not math.isfinite(number):
        raise InvalidTime(f"{value!r} is not a duration; {DURATION_HELP}")
    if number < 0:
        raise InvalidTime(f"duration {value!r} must not be negative")
    return to_us(number, unit)


__all__ = [
    "DURATION_HELP",
    "MS",
    "NS",
    "S",
    "US",
    "InvalidTime",
    "TimeUnit",
    "datetime_to_us",
    "floor_to",
    "from_us",
    "guess_epoch_unit",
    "parse_duration",
    "parse_iso",
    "parse_timestamp",
    "parse_timestamp_any_unit",
    "to_us",
    "us_to_datetime",
]
