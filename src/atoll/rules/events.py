"""Bus payloads the rules service reads (anomaly scores) and writes (alarm changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from atoll.core.errors import InvalidInput


def to_us(ts: Any) -> int:
    """µs since epoch from µs, ms or s numbers, or ISO-8601 text."""
    if isinstance(ts, str):
        try:
            return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e6)
        except ValueError:
            raise InvalidInput(f"bad timestamp {ts!r}") from None
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise InvalidInput(f"bad timestamp {ts!r}")
    x = abs(ts)
    if x >= 1e14:
        return int(ts)
    if x >= 1e11:
        return int(ts * 1_000)
    return int(ts * 1_000_000)


def decode_anomaly(data: bytes) -> list[tuple[str, str, str, int, float, bool | None]]:
    """``(project, device, metric, ts_us, score, is_anomaly)`` from an ``anomaly.*`` message
    (one event or a list; ``is_anomaly`` is ``None`` when the detector did not say)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"anomaly event is not JSON: {exc}") from None
    out = []
    for e in doc if isinstance(doc, list) else [doc]:
        try:
            flag = e.get("is_anomaly")
            out.append(
                (
                    str(e["project"]),
                    str(e["device"]),
                    str(e["metric"]),
                    to_us(e["ts"]),
                    float(e["score"]),
                    None if flag is None else bool(flag),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"anomaly event lacks a field or has a bad one: {exc!r}") from None
    return out


def encode_anomaly(
    project: str, device: str, metric: str, ts: int, score: float, is_anomaly: bool | None = None
) -> bytes:
    e = {"project": project, "device": device, "metric": metric, "ts": ts, "score": score}
    if is_anomaly is not None:
        e["is_anomaly"] = is_anomaly
    return orjson.dumps(e)


def encode_alarm_event(event: str, alarm: dict[str, Any], actor: str) -> bytes:
    """What ``alarm.{project}`` carries: ``{"event", "actor", "alarm": {...}}``."""
    return orjson.dumps({"event": event, "actor": actor, "alarm": alarm})
