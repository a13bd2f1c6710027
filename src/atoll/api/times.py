"""Query-string times: where the API converts them into µs (durations: ``atoll.core.time``).

Bare numbers are epoch **milliseconds**, like the timestamps in the API's answers.

>>> parse_time("1700000000000", now_us=0)
1700000000000000
>>> parse_time("2026-11-23T10:00:00Z", now_us=0)
1795428000000000
>>> parse_time("-1h", now_us=7_200_000_000)
3600000000
"""

from __future__ import annotations

import re

from atoll.core.errors import InvalidInput
from atoll.core.time import MS, InvalidTime, parse_duration, parse_iso, to_us

TIME_HELP = "use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, 'now' or 'now-1h' / '-7d'"
_EPOCH_MS = re.compile(r"\d{1,16}")


def parse_time(value: str | None, now_us: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise InvalidInput("a time is required", hint=TIME_HELP)
        return default
    v = value.strip()
    if v == "now":
        return now_us
    if v.startswith("now-"):
        return now_us - parse_duration(v[4:], positive=True)
    if v.startswith("-"):
        return now_us - parse_duration(v[1:], positive=True)
    if _EPOCH_MS.fullmatch(v):
        return to_us(int(v), MS)
    try:
        return parse_iso(v)
    except InvalidTime:
        raise InvalidInput(f"bad time {value!r}", hint=TIME_HELP) from None
