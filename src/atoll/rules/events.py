"""What the rules service publishes on ``alarm.{project}`` (``topics.bus_alarm``).

The anomaly events it reads are ``atoll.core.events.AnomalyEvent``.
"""

from __future__ import annotations

from typing import Any

import orjson


def encode_alarm_event(event: str, alarm: dict[str, Any], actor: str) -> bytes:
    """What ``alarm.{project}`` carries: ``{"event", "actor", "alarm": {...}}``."""
    return orjson.dumps({"event": event, "actor": actor, "alarm": alarm})
