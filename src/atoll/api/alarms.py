"""Alarms: list and filter, acknowledge, clear, comment, history. Times are ISO-8601 UTC."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.rules import service, tenant_of
from atoll.api.schemas import Offset, RowId, iso
from atoll.api.times import parse_time
from atoll.core.errors import InvalidInput, NotFound
from atoll.registry import Principal
from atoll.rules.alarms import Alarm, AlarmEvent, Comment

router = APIRouter(tags=["alarms"])
STATUSES = ("active", "acknowledged", "cleared")
_TIMES = ("raised_at", "acknowledged_at", "cleared_at", "last_notified_at")


def alarm_out(a: Alarm) -> dict[str, Any]:
    d = a.model_dump()
    for k in _TIMES:
        d[k] = iso(d[k])
    why = (d.get("context") or {}).get("anomaly")
    if isinstance(why, dict) and isinstance(why.get("ts"), int):
        d["context"] = {**d["context"], "anomaly": {**why, "ts": iso(why["ts"])}}
    return d


def event_out(e: AlarmEvent | Comment) -> dict[str, Any]:
    return {**e.model_dump(), "ts": iso(e.ts)}


class ActionIn(BaseModel):
    comment: str | None = Field(
        None, max_length=4000, description="optional note kept with the alarm"
    )


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


def _projects(ctx: Any, who: Principal) -> list[str]:
    return [p.id for p in ctx.registry.list_projects(tenant_of(who))]


def _alarm(ctx: Any, who: Principal, alarm_id: int) -> Alarm:
    alarm = service(ctx).alarms.get(alarm_id)
    if alarm.project not in _projects(ctx, who):
        raise NotFound(f"alarm {alarm_id} not found")
    return alarm


def _statuses(values: list[str]) -> list[str] | None:
    out: list[str] = []
    for v in values:
        for s in v.split(","):
            s = s.strip()
            if not s or s == "all":
                continue
            if s == "open":
                out += ["active", "acknowledged"]
            elif s == "unacknowledged":
                out += ["active"]
            elif s in STATUSES:
                out.append(s)
            else:
                raise InvalidInput(
                    f"status: unknown value {s!r}",
                    hint="use active, acknowledged, cleared, open or all",
                )
    return out or None


@router.get("/alarms", summary="List alarms, newest first")
def list_alarms(
    who: Viewer,
    ctx: Ctx,
    project: str | None = None,
    status: list[str] = Query(
        [], description="active | acknowledged | cleared | open; repeat or comma-separate"
    ),
    state: list[str] = Query([], include_in_schema=False),
    device: str | None = None,
    rule: str | None = None,
    severity: list[str] = Query([]),
    acknowledged: bool | None = None,
    since: str | None = Query(None, description="raised at or after (ISO-8601, epoch ms, -7d)"),
    until: str | None = None,
    limit: int = Query(100, ge=1, le=5000),
    offset: Offset = 0,
) -> list[dict]:
    svc = service(ctx)
    projects = _projects(ctx, who)
    if project:
        if project not in projects:
            raise NotFound(f"project {project!r} not found")
        projects = [project]
    now = svc.clock.now_us()
    sev = [s for v in severity for s in v.split(",") if s.strip()] or None
    rows = svc.alarms.list(
        projects=projects,
        status=_statuses(status or state),
        device=device,
        rule_id=rule,
        severity=sev,
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
        limit=limit,
        offset=offset,
    )
    if acknowledged is not None:
        rows = [a for a in rows if a.acknowledged == acknowledged]
    return [alarm_out(a) for a in rows]


@router.get("/alarms/summary", summary="Open alarms counted per status, severity and device")
def alarm_summary(who: Viewer, ctx: Ctx, project: str | None = None) -> dict:
    """``{"open", "active", "acknowledged", "by_severity": {sev: n},
    "by_device": {device: {"open", "active", "severity": highest}}}`` in one query."""
    projects = _projects(ctx, who)
    if project:
        if project not in projects:
            raise NotFound(f"project {project!r} not found")
        projects = [project]
    return service(ctx).alarms.summary(projects)


@router.get("/alarms/{alarm_id}", summary="An alarm with its history and comments")
def get_alarm(alarm_id: RowId, who: Viewer, ctx: Ctx) -> dict:
    alarm = _alarm(ctx, who, alarm_id)
    book = service(ctx).alarms
    return {
        **alarm_out(alarm),
        "history": [event_out(e) for e in book.history(alarm_id)],
        "comments": [event_out(c) for c in book.comments(alarm_id)],
    }


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm")
async def acknowledge(
    alarm_id: RowId, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
) -> dict:
    """409 if it is already acknowledged. A cleared alarm can still be acknowledged."""
    _alarm(ctx, who, alarm_id)
    alarm = await service(ctx).acknowledge(alarm_id, who.name, body.comment if body else None)
    audit(ctx, who, "alarm.ack", f"alarm:{alarm_id}")
    return alarm_out(alarm)


@router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm by hand")
async def clear(
    alarm_id: RowId, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
) -> dict:
    """409 if it is already cleared. If the condition still holds, the rule raises a new alarm
    only after the condition has ended and come back."""
    _alarm(ctx, who, alarm_id)
    alarm = await service(ctx).clear(alarm_id, who.name, body.comment if body else None)
    audit(ctx, who, "alarm.clear", f"alarm:{alarm_id}")
    return alarm_out(alarm)


@router.get("/alarms/{alarm_id}/comments", summary="Comments on an alarm")
def comments(alarm_id: RowId, who: Viewer, ctx: Ctx) -> list[dict]:
    _alarm(ctx, who, alarm_id)
    return [event_out(c) for c in service(ctx).alarms.comments(alarm_id)]


@router.post("/alarms/{alarm_id}/comments", status_code=201, summary="Comment on an alarm")
async def add_comment(alarm_id: RowId, body: CommentIn, who: Operator, ctx: Ctx) -> dict:
    _alarm(ctx, who, alarm_id)
    return event_out(await service(ctx).comment(alarm_id, who.name, body.text))


@router.get(
    "/alarms/{alarm_id}/history", summary="State transitions of an alarm, with who and when"
)
def history(alarm_id: RowId, who: Viewer, ctx: Ctx) -> list[dict]:
    _alarm(ctx, who, alarm_id)
    return [event_out(e) for e in service(ctx).alarms.history(alarm_id)]
