"""Query-string times: where the API converts them into µs (durations: ``atoll.core.time``).

Bare numbers are epoch **milliseconds**, like the timestamps in the API's answers.

>>> parse_time("1700000000000", now_us=0)
1700000000000000
>>> parse_time("2026-11-23T10:00:00Z", now_us=0)
1795428000000000
>>> parse_time("-1h", now_us=7_200_000_000)
3600000000
>>> parse_time("-9e302", now_us=0)
Traceback (most recent call last):
...
atoll.core.errors.InvalidInput: bad time '-9e302'
"""

from __future__ import annotations

import re

from atoll.core.errors import InvalidInput
from atoll.core.time import MS, InvalidTime, parse_duration, parse_iso, to_us

TIME_HELP = "use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, 'now' or 'now-1h' / '-7d'"
_EPOCH_MS = re.compile(r"\d{1,16}")
#: 9999-12-31T23:59:59.999999Z: later times (or before 1970) are refused, not stored.
MAX_US = 253_402_300_799_999_999


def parse_time(value: str | None, now_us: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise InvalidInput("a time is required", hint=TIME_HELP)
        return default
    v = value.strip()
    try:
        if v == "now":
            us = now_us
        elif v.startswith("now-"):
            us = now_us - parse_duration(v[4:], positive=True)
        elif v.startswith("-"):
            us = now_us - parse_duration(v[1:], positive=True)
        elif _EPOCH_MS.fullmatch(v):
            us = to_us(int(v), MS)
        else:
            us = parse_iso(v)
    except (InvalidTime, OverflowError, ValueError):
        raise InvalidInput(f"bad time {value!r}", hint=TIME_HELP) from None
    if not 0 <= us <= MAX_US:
        raise InvalidInput(f"time {value!r} is outside 1970-9999", hint=TIME_HELP)
    return us
