"""Alarms: list and filter, acknowledge, clear, comment, history (``Client``'s part)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param


@dataclass(frozen=True)
class AlarmEvent:
    """A state change of an alarm (raised, escalated, acknowledged, cleared…), with who."""

    id: int
    alarm_id: int
    ts: datetime
    kind: str
    actor: str
    severity: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class AlarmComment:
    id: int
    alarm_id: int
    ts: datetime
    author: str
    text: str


@dataclass(frozen=True)
class Alarm:
    """``status``: active | acknowledged | cleared. ``history`` and ``comments`` come with
    ``Client.alarm`` only."""

    id: int
    project: str
    rule_id: str
    rule_name: str
    device: str
    severity: str
    status: str
    acknowledged: bool
    raised_at: datetime
    metric: str | None = None
    value: float | None = None
    detail: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    escalation_level: int = 0
    last_notified_at: datetime | None = None
    notifications: int = 0
    #: What explains it, e.g. ``{"anomaly": {...}}`` for an ``anomaly`` condition: the reading,
    #: what the model expected, the contributors and the model (docs/API.md).
    context: dict[str, Any] | None = None
    #: The operators' verdict: ``real`` (a real fault), ``false`` (a false alarm) or ``unsure``.
    feedback: str | None = None
    feedback_by: str | None = None
    feedback_at: datetime | None = None
    #: The console user the alarm is given to.
    assignee: str | None = None
    assigned_at: datetime | None = None
    history: tuple[AlarmEvent, ...] = ()
    comments: tuple[AlarmComment, ...] = ()


@dataclass(frozen=True)
class AlarmSummary:
    """Open alarms counted per status and severity, and per device
    (``{device: {"open", "active", "severity": highest}}``)."""

    open: int
    active: int
    acknowledged: int
    by_severity: dict[str, int]
    by_device: dict[str, dict[str, Any]]


def _alarm(d: Mapping[str, Any]) -> Alarm:
    return build(
        Alarm,
        {
            **d,
            "history": tuple(build(AlarmEvent, e) for e in d.get("history", ())),
            "comments": tuple(build(AlarmComment, c) for c in d.get("comments", ())),
        },
    )


def _joined(values: str | Iterable[str] | None) -> str | None:
    return values if values is None or isinstance(values, str) else ",".join(values)


class AlarmsCalls(Http):
    def alarms(
        self,
        *,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        device: str | None = None,
        rule: str | None = None,
        severity: str | Iterable[str] | None = None,
        acknowledged: bool | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        assignee: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alarm]:
        """Newest first. ``status``: active | acknowledged | cleared | open (active or
        acknowledged); ``since`` and ``until`` bound the time raised; ``assignee``: a user
        name, ``me`` or ``none``."""
        return [
            _alarm(a)
            for a in self._call(
                "GET",
                "/alarms",
                params={
                    "project": project,
                    "status": _joined(status),
                    "device": device,
                    "rule": rule,
                    "severity": _joined(severity),
                    "acknowledged": None if acknowledged is None else str(acknowledged).lower(),
                    "since": time_param(since),
                    "until": time_param(until),
                    "assignee": assignee,
                    "limit": limit,
                    "offset": offset,
                },
            )
        ]

    def alarm(self, alarm_id: int) -> Alarm:
        """The alarm with its history and comments."""
        return _alarm(self._call("GET", f"/alarms/{alarm_id}"))

    def alarm_summary(self, project: str | None = None) -> AlarmSummary:
        return build(
            AlarmSummary, self._call("GET", "/alarms/summary", params={"project": project})
        )

    def ack_alarm(self, alarm_id: int, comment: str | None = None) -> Alarm:
        """Acknowledge (``Conflict`` if it already is);
        a cleared alarm can still be acknowledged."""
        return _alarm(self._call("POST", f"/alarms/{alarm_id}/ack", json={"comment": comment}))

    def clear_alarm(self, alarm_id: int, comment: str | None = None) -> Alarm:
        """Clear by hand (``Conflict`` if it already is)."""
        return _alarm(self._call("POST", f"/alarms/{alarm_id}/clear", json={"comment": comment}))

    def comment_alarm(self, alarm_id: int, text: str) -> AlarmComment:
        return build(
            AlarmComment, self._call("POST", f"/alarms/{alarm_id}/comments", json={"text": text})
        )

    def alarm_comments(self, alarm_id: int) -> list[AlarmComment]:
        return [build(AlarmComment, c) for c in self._call("GET", f"/alarms/{alarm_id}/comments")]

    def alarm_history(self, alarm_id: int) -> list[AlarmEvent]:
        return [build(AlarmEvent, e) for e in self._call("GET", f"/alarms/{alarm_id}/history")]

    def judge_alarm(self, alarm_id: int, feedback: str | None, comment: str | None = None) -> Alarm:
        """Say whether the alarm was ``real`` (a real fault), ``false`` (a false alarm) or
        ``unsure``; ``None`` withdraws the verdict (operator)."""
        body = {"feedback": feedback, "comment": comment}
        return _alarm(self._call("PUT", f"/alarms/{alarm_id}/feedback", json=body))

    def assign_alarm(self, alarm_id: int, assignee: str | None) -> Alarm:
        """Give the alarm to a console user of its tenant (``None``: to nobody; operator)."""
        return _alarm(
            self._call("PUT", f"/alarms/{alarm_id}/assignee", json={"assignee": assignee})
        )

    def alarm_assignees(self) -> dict[str, Any]:
        """``{"me", "users": [username]}``: who the tenant's alarms can be given to."""
        return dict(self._call("GET", "/alarms/assignees"))
