"""Human durations in rule files: ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Seconds in ``value``.

    >>> parse_duration("1h30m")
    5400.0
    >>> parse_duration(2.5)
    2.5
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30, '30s', '5m' or '1h'")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            return float(text)
        except ValueError:
            pass
        pos, total = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return total
    raise ValueError(f"{value!r} is not a duration; use seconds or e.g. '30s', '5m', '1h30m'")


def format_duration(seconds: float) -> str:
    """Short form for messages: ``format_duration(330) == '5m30s'``."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    s = round(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out or "0s"


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
