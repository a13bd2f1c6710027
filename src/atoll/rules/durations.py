"""Durations in rule files: ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``, held as seconds.

Read by ``atoll.core.time.parse_duration``:

>>> from pydantic import TypeAdapter
>>> TypeAdapter(Duration).validate_python("1h30m"), TypeAdapter(Duration).validate_python(2.5)
(5400.0, 2.5)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from atoll.core.time import S, from_us, parse_duration


def _seconds(value: object) -> float:
    return from_us(parse_duration(value), S)


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


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]
