"""What a rule is: target devices, a condition, a schedule, severity, notification policy."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atoll.rules.conditions import Condition
from atoll.rules.durations import PositiveDuration

Severity = Literal["critical", "major", "minor", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "minor", "major", "critical")  # low → high
Event = Literal["raised", "acknowledged", "cleared", "escalated", "repeat"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SLUG = re.compile(r"[^a-z0-9]+")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: What a caller chooses as a rule (or report) id.
LOCAL_ID = re.compile(_ID)
#: A rule id as stored: chosen in tenant ``acme`` it is ``acme~boiler-hot``, so one tenant's
#: ids never clash with (or reveal) another's (see ``atoll.registry.namespaces``).
STORED_ID = r"^(?:[a-z0-9][a-z0-9_-]{0,63}~)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_ID = 128  # the column's width


def slug(text: str) -> str:
    """A rule id from a name.

    >>> slug("Boiler too hot!")
    'boiler-too-hot'
    """
    return _SLUG.sub("-", text.lower()).strip("-")[:120] or "rule"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Target(_Model):
    """Exactly one of: a device, a list of devices, every device of a device type."""

    device: str | None = None
    devices: list[str] | None = Field(None, min_length=1)
    device_type: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [n for n in ("device", "devices", "device_type") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of device, devices, device_type")
        return self

    def explicit(self) -> list[str] | None:
        """The listed devices, or ``None`` for a device-type target."""
        if self.device is not None:
            return [self.device]
        return list(self.devices) if self.devices is not None else None


def _parse_hhmm(value: str) -> time | None:
    if value == "24:00":
        return None
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day; use 'HH:MM' (00:00 to 24:00)") from None


class Window(_Model):
    """Days and a time range; ``end`` before ``start`` runs past midnight into the next day."""

    days: list[Day] = list(DAYS)
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _parse_hhmm(v)
        return v

    def _bounds(self) -> tuple[int, int]:
        def mins(v: str) -> int:
            t = _parse_hhmm(v)
            return 24 * 60 if t is None else t.hour * 60 + t.minute

        return mins(self.start), mins(self.end)

    def contains(self, local: datetime) -> bool:
        start, end = self._bounds()
        now = local.hour * 60 + local.minute
        day = DAYS[local.weekday()]
        if start <= end:
            return day in self.days and start <= now < end
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return (day in self.days and now >= start) or (yesterday in self.days and now < end)


class Schedule(_Model):
    """When a rule is active. Outside every window the condition counts as false."""

    timezone: str = "UTC"
    windows: list[Window] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {v!r}; use an IANA name like 'Europe/Paris'"
            ) from None
        return v

    def active(self, ts_us: int) -> bool:
        local = datetime.fromtimestamp(ts_us / 1e6, ZoneInfo(self.timezone))
        return any(w.contains(local) for w in self.windows)


class Notify(_Model):
    channels: list[str] = []
    on: list[Event] = ["raised", "cleared", "escalated"]
    repeat_every: PositiveDuration | None = Field(
        None, description="re-send while the alarm is active and not acknowledged"
    )


class EscalationStep(_Model):
    after: PositiveDuration = Field(description="time since raised, while not acknowledged")
    severity: Severity | None = None
    channels: list[str] = []

    @model_validator(mode="after")
    def _does_something(self):
        if self.severity is None and not self.channels:
            raise ValueError("an escalation step needs a severity, channels, or both")
        return self


class Rule(_Model):
    id: str | None = Field(None, pattern=STORED_ID, max_length=MAX_ID)
    name: str = Field(min_length=1, max_length=200)
    project: str = Field(min_length=1)
    description: str = ""
    enabled: bool = True
    severity: Severity = "major"
    target: Target
    condition: Condition
    schedule: Schedule | None = None
    notify: Notify = Notify()
    escalation: list[EscalationStep] = []

    @model_validator(mode="after")
    def _fill_id_and_order_steps(self):
        if self.id is None:
            self.id = slug(self.name)
        afters = [s.after for s in self.escalation]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("escalation steps must have strictly increasing 'after'")
        return self

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ChannelSpec(_Model):
    """A named notification channel of a project; ``type`` picks the plug-in."""

    name: str = Field(pattern=_ID)
    project: str = Field(min_length=1)
    type: str = Field(min_length=1)
    config: dict[str, Any] = {}
