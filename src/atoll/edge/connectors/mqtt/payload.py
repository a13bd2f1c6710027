"""A local device's MQTT payload → Atoll readings, by the topic's payload mapping.

>>> from atoll.edge.connectors.mqtt.config import AtollPayload, JsonPayload
>>> decode(AtollPayload(), b'{"ts": 1795428000000, "values": {"t": 21.5, "on": true}}', "d", 0)
[EdgeReading(device='d', ts_us=1795428000000000, values={'t': 21.5, 'on': True})]
>>> m = JsonPayload(format="json", values={"t": "$.sensor.temp", "rh": '$["rel hum"]'},
...                 timestamp="$.time", timestamp_unit="s")
>>> decode(m, b'{"time": 1795428000, "sensor": {"temp": 7}, "rel hum": 55}', "d", 0)
[EdgeReading(device='d', ts_us=1795428000000000, values={'t': 7.0, 'rh': 55.0})]
>>> decode(m, b'{"sensor": {"temp": "hot"}}', "d", 0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
atoll.edge.connectors.mqtt.payload.Rejected: wrong_type: $.sensor.temp: expected a number ...
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from atoll.core.time import MS, US, InvalidTime, S, parse_timestamp
from atoll.edge.connectors.mqtt.config import AtollPayload, JsonPayload
from atoll.edge.port import EdgeReading, Value

_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_\-]*)|\["([^"]+)"\]|\[(\d+)\]')
_METRIC = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_UNITS = {"s": S, "ms": MS, "us": US}
_MISSING = object()


class Rejected(Exception):
    """A message that carries no reading; ``reason`` is the counter it goes to."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def decode(
    mapping: AtollPayload | JsonPayload, body: bytes, device: str, now_us: int
) -> list[EdgeReading]:
    """The readings in ``body``; a reading without a time of its own gets ``now_us``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Rejected("malformed_json", str(e)) from None
    if isinstance(mapping, JsonPayload):
        return [_mapped(mapping, doc, device, now_us)]
    readings = doc if isinstance(doc, list) else [doc]
    if not readings:
        raise Rejected("no_values", "an empty batch")
    return [
        _atoll(r, f"$[{i}]" if doc is readings else "$", device, now_us)
        for i, r in enumerate(readings)
    ]


def _atoll(r: Any, where: str, device: str, now_us: int) -> EdgeReading:
    if not isinstance(r, dict) or not isinstance(r.get("values"), dict) or not r["values"]:
        raise Rejected("no_values", f'{where}: expected {{"ts"?, "values": {{...}}}}')
    values: dict[str, Value] = {}
    for name, v in r["values"].items():
        if not _METRIC.match(name):
            raise Rejected("bad_metric", f"{where}.values: bad metric name {name!r}")
        values[name] = _value(v, f"{where}.values.{name}")
    ts = _ts(r["ts"], MS, f"{where}.ts") if r.get("ts") is not None else now_us
    return EdgeReading(device, ts, values)


def _mapped(m: JsonPayload, doc: Any, device: str, now_us: int) -> EdgeReading:
    values: dict[str, Value] = {}
    for metric, path in m.values.items():
        found = _at(doc, path)
        if found is not _MISSING and found is not None:
            values[metric] = _value(found, path)
    if not values:
        raise Rejected("no_values", f"none of {sorted(m.values.values())} is in the message")
    ts = now_us
    if m.timestamp is not None:
        found = _at(doc, m.timestamp)
        if found is _MISSING or found is None:
            raise Rejected("bad_timestamp", f"{m.timestamp}: no timestamp in the message")
        ts = _ts(found, _UNITS[m.timestamp_unit], m.timestamp)
    return EdgeReading(device, ts, values)


def _at(doc: Any, path: str) -> Any:
    """The value at a JSON path (``$.a.b``, ``$["a b"]``, ``$.list[0]``), or ``_MISSING``."""
    here = doc
    for key, quoted, index in _STEP.findall(path[1:]):
        if index:
            if not isinstance(here, list) or int(index) >= len(here):
                return _MISSING
            here = here[int(index)]
            continue
        if not isinstance(here, dict) or (key or quoted) not in here:
            return _MISSING
        here = here[key or quoted]
    return here


def _value(v: Any, where: str) -> Value:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    raise Rejected("wrong_type", f"{where}: expected a number or true/false, got {v!r}")


def _ts(v: Any, unit: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise Rejected("bad_timestamp", f"{where}: not a timestamp: {v!r}")
    try:
        return parse_timestamp(v, unit)
    except (InvalidTime, ValueError, OverflowError) as e:
        raise Rejected("bad_timestamp", f"{where}: {e}") from None
