"""Alarms: list and filter, acknowledge, clear, comment, history. Times are ISO-8601 UTC."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.rules import service, tenant_of
from atoll.api.schemas import Offset, RowId, iso
from atoll.api.times import parse_time
from atoll.core import topics
from atoll.core.errors import InvalidInput, NotFound
from atoll.registry import Principal
from atoll.registry.keys import SESSION_PREFIX
from atoll.rules.alarms import Alarm, AlarmEvent, Comment
from atoll.rules.events import encode_alarm_event

router = APIRouter(tags=["alarms"])
STATUSES = ("active", "acknowledged", "cleared")
_TIMES = (
    "raised_at",
    "acknowledged_at",
    "cleared_at",
    "last_notified_at",
    "feedback_at",
    "assigned_at",
)


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


class FeedbackIn(BaseModel):
    feedback: Literal["real", "false", "unsure"] | None = Field(
        description="real: a real fault; false: a false alarm; unsure; null withdraws it"
    )
    comment: str | None = Field(None, max_length=4000)


class AssignIn(BaseModel):
    assignee: str | None = Field(
        max_length=128, description="a console user of the alarm's tenant; null: nobody"
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


ASSIGNEE_DOC = "a user name; me: yours; none: nobody's"


def assignee_filter(who: Principal, value: str | None) -> str | None:
    """``me`` is the caller, ``none`` nobody ("" to the alarm book), else a user name."""
    if value is None or value == "":
        return None
    if value == "me":
        return username(who)
    return "" if value == "none" else value


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
    assignee: str | None = Query(None, max_length=128, description=ASSIGNEE_DOC),
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
        assignee=assignee_filter(who, assignee),
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


@router.get("/alarms/assignees", summary="Who alarms of your tenant can be given to")
def assignees(who: Operator, ctx: Ctx) -> dict:
    """``{"me", "users": [username]}``: the tenant's enabled console users."""
    users = ctx.registry.list_users(who.tenant)
    return {"me": username(who), "users": sorted(u.username for u in users if not u.disabled)}


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
    alarm = await service(ctx).acknowledge(alarm_id, username(who), body.comment if body else None)
    audit(ctx, who, "alarm.ack", f"alarm:{alarm_id}")
    return alarm_out(alarm)


@router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm by hand")
async def clear(
    alarm_id: RowId, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
) -> dict:
    """409 if it is already cleared. If the condition still holds, the rule raises a new alarm
    only after the condition has ended and come back."""
    _alarm(ctx, who, alarm_id)
    alarm = await service(ctx).clear(alarm_id, username(who), body.comment if body else None)
    audit(ctx, who, "alarm.clear", f"alarm:{alarm_id}")
    return alarm_out(alarm)


@router.get("/alarms/{alarm_id}/comments", summary="Comments on an alarm")
def comments(alarm_id: RowId, who: Viewer, ctx: Ctx) -> list[dict]:
    _alarm(ctx, who, alarm_id)
    return [event_out(c) for c in service(ctx).alarms.comments(alarm_id)]


@router.post("/alarms/{alarm_id}/comments", status_code=201, summary="Comment on an alarm")
async def add_comment(alarm_id: RowId, body: CommentIn, who: Operator, ctx: Ctx) -> dict:
    _alarm(ctx, who, alarm_id)
    return event_out(await service(ctx).comment(alarm_id, username(who), body.text))


@router.get(
    "/alarms/{alarm_id}/history", summary="State transitions of an alarm, with who and when"
)
def history(alarm_id: RowId, who: Viewer, ctx: Ctx) -> list[dict]:
    _alarm(ctx, who, alarm_id)
    return [event_out(e) for e in service(ctx).alarms.history(alarm_id)]


def username(who: Principal) -> str:
    """The caller's console user name (a session), else its API key's name."""
    return who.name.removeprefix(SESSION_PREFIX)


async def announce(ctx: Any, event: str, alarm: Alarm, who: Principal) -> None:
    """Tell the live consoles of the alarm's project that it changed."""
    if ctx.bus is not None:
        await ctx.bus.publish(
            topics.bus_alarm(alarm.project),
            encode_alarm_event(event, alarm.model_dump(), username(who)),
        )


@router.put("/alarms/{alarm_id}/feedback", summary="Say whether an alarm was a real fault")
async def feedback(alarm_id: RowId, body: FeedbackIn, who: Operator, ctx: Ctx) -> dict:
    """``real`` (a real fault), ``false`` (a false alarm) or ``unsure``; ``null`` withdraws it.
    The last verdict counts; the detection precision of the lab pages is computed from them."""
    _alarm(ctx, who, alarm_id)
    svc = service(ctx)
    now = svc.clock.now_us()
    alarm = svc.alarms.judge(alarm_id, body.feedback, username(who), now)
    if body.comment and body.comment.strip():
        await svc.comment(alarm_id, username(who), body.comment)
    audit(ctx, who, "alarm.feedback", f"alarm:{alarm_id}", {"feedback": body.feedback})
    await announce(ctx, "feedback", alarm, who)
    return alarm_out(alarm)


@router.put("/alarms/{alarm_id}/assignee", summary="Give an alarm to a user of its tenant")
async def assign(alarm_id: RowId, body: AssignIn, who: Operator, ctx: Ctx) -> dict:
    """``assignee``: a console user of the alarm's tenant (404 for anyone else), or ``null``."""
    _alarm(ctx, who, alarm_id)
    name = body.assignee.strip() if body.assignee else None
    if name and name not in {u.username for u in ctx.registry.list_users(who.tenant)}:
        raise NotFound(
            f"user {name!r} not found in this tenant",
            hint="assign to a console user of the alarm's tenant",
        )
    svc = service(ctx)
    alarm = svc.alarms.assign(alarm_id, name, username(who), svc.clock.now_us())
    audit(ctx, who, "alarm.assign", f"alarm:{alarm_id}", {"assignee": name})
    await announce(ctx, "assigned", alarm, who)
    return alarm_out(alarm)
