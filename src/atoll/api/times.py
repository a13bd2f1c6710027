"""Query-string times and durations.

>>> parse_time("1700000000000", now_us=0)
1700000000000000
>>> parse_time("2026-11-23T10:00:00Z", now_us=0)
1795428000000000
>>> parse_time("-1h", now_us=7_200_000_000)
3600000000
>>> parse_duration("15m")
900000000
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from atoll.core.errors import InvalidInput

_UNITS = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)?$")
TIME_HELP = "use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, 'now' or 'now-1h' / '-7d'"


def parse_duration(value: str) -> int:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"1w"`` or plain seconds → µs."""
    m = _DURATION.match(value.strip())
    if not m:
        raise InvalidInput(f"bad duration {value!r}", hint="use e.g. 500ms, 10s, 5m, 1h, 1d, 1w")
    us = int(float(m.group(1)) * _UNITS[m.group(2) or "s"])
    if us <= 0:
        raise InvalidInput(f"duration {value!r} must be positive")
    return us


def parse_time(value: str | None, now_us: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise InvalidInput("a time is required", hint=TIME_HELP)
        return default
    v = value.strip()
    if v == "now":
        return now_us
    if v.startswith("now-"):
        return now_us - parse_duration(v[4:])
    if v.startswith("-"):
        return now_us - parse_duration(v[1:])
    if re.fullmatch(r"\d{1,16}", v):
        return int(v) * 1000
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise InvalidInput(f"bad time {value!r}", hint=TIME_HELP) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)
