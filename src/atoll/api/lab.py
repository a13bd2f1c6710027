"""The lab: every enterprise the caller may see at a glance, and one alarm console across them.

Who sees what follows the rest of the API: the platform admin sees every tenant (the
``X-Atoll-Tenant`` it may send for other routes does not narrow it), anyone else only their own
tenant. An enterprise the caller may not see is "not found" (404), as elsewhere.

Each view is one request answered by a few grouped queries (devices per project, open alarms per
project and severity, store usage per project), never a query per project: the lab home of 90
enterprises and 400 projects costs the same three queries as one of a single project.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from atoll.api import quality
from atoll.api.alarms import ASSIGNEE_DOC, _statuses, alarm_out, assignee_filter, username
from atoll.api.deps import Ctx, Operator, Viewer, act_in_tenant, audit
from atoll.api.devices import ONLINE_WINDOW_S
from atoll.api.files import csv_download
from atoll.api.rules import service
from atoll.api.schemas import MAX_DB_INT, Offset, ProjectOut, iso
from atoll.api.tenants import quotas_out
from atoll.api.times import parse_time
from atoll.core.errors import AtollError, InvalidInput, NotFound
from atoll.registry import Principal, ProjectActivity, Tenant
from atoll.rules.alarms import FEEDBACK, Alarm
from atoll.rules.model import SEVERITIES
from atoll.store.port import POINT_BYTES, ProjectUsage, UsageReader

router = APIRouter(tags=["lab"])

#: The ingest rate is the points stamped in about the last this many seconds, per second.
RATE_WINDOW_S = 300
#: Most alarms one bulk action or one CSV export takes.
MAX_BULK = 1000
MAX_EXPORT = 50_000


def visible_tenants(ctx: Any, who: Principal) -> list[Tenant]:
    """The enterprises the caller may see: every one for the platform admin, else its own."""
    if who.platform_admin:
        return ctx.registry.list_tenants()
    return [ctx.registry.get_tenant(who.tenant)]


def _tenant_ids(ctx: Any, who: Principal, enterprise: list[str]) -> list[str]:
    mine = [t.id for t in visible_tenants(ctx, who)]
    wanted = [e for v in enterprise for e in v.split(",") if e.strip()]
    for e in wanted:
        if e not in mine:
            raise NotFound(f"tenant {e!r} not found")
    return wanted or mine


def _empty_row() -> dict[str, Any]:
    return {
        "projects": 0,
        "devices": 0,
        "online": 0,
        "open_alarms": 0,
        "alarms": {s: 0 for s in reversed(SEVERITIES)},
        "points": None,
        "bytes": None,
        "ingest_rate": None,
        "last_activity": None,
        "quality": quality.empty(),
    }


def _add(
    row: dict[str, Any],
    p: ProjectActivity,
    alarms: dict[str, int] | None,
    usage: ProjectUsage | None,
    rate_s: float,
    has_usage: bool,
    judged: dict[str, Any] | None,
) -> None:
    row["projects"] += 1
    if judged is None:
        row["quality"] = None
    elif row["quality"] is not None:
        quality.merge(row["quality"], judged)
    row["devices"] += p.devices
    row["online"] += p.online
    if alarms is None:
        row["alarms"] = row["open_alarms"] = None
    elif row["alarms"] is not None:
        for sev, n in alarms.items():
            row["alarms"][sev] = row["alarms"].get(sev, 0) + n
            row["open_alarms"] += n
    if has_usage:
        points = usage.points if usage else 0
        row["points"] = (row["points"] or 0) + points
        row["bytes"] = (row["bytes"] or 0) + points * POINT_BYTES
        recent = usage.recent / rate_s if usage else 0.0
        row["ingest_rate"] = round((row["ingest_rate"] or 0.0) + recent, 3)
    last = max(
        (t for t in (p.last_seen, usage.last_ts if usage else None, row["_last"]) if t), default=0
    )
    row["_last"] = last or None


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    row["last_activity"] = iso(row.pop("_last", None))
    return row


def _activity(
    ctx: Any, tenants: list[str] | None
) -> tuple[list[ProjectActivity], Any, Any, list[quality.Count] | None]:
    """Projects with device counts, open alarms per project and severity, store usage, alarm
    feedback per project, rule and week: one grouped query each. Alarms and feedback are
    ``None`` without the rules service, usage without a store that can tell."""
    now = time.time_ns() // 1000
    activity = ctx.registry.project_activity(
        tenants[0] if tenants and len(tenants) == 1 else None,
        online_since=now - int(ONLINE_WINDOW_S * 1e6),
    )
    if tenants is not None:
        keep = set(tenants)
        activity = [p for p in activity if p.tenant in keep]
    alarms = feedback = None
    if ctx.rules is not None:
        ids = [p.project for p in activity]
        alarms = ctx.rules.alarms.open_by_project(ids)
        feedback = ctx.rules.alarms.feedback_counts(ids, since=quality.since_us(now))
    usage = None
    since = now - RATE_WINDOW_S * 1_000_000
    since -= since % 60_000_000  # stores count recent points per whole minute
    if isinstance(ctx.store, UsageReader):
        usage = ctx.store.usage(since)
    return activity, alarms, (usage, (now - since) / 1e6), feedback


def _rows(
    activity: Iterable[ProjectActivity],
    alarms: Any,
    usage_rate: Any,
    feedback: list[quality.Count] | None,
    key: str,
) -> dict[str, dict[str, Any]]:
    usage, rate_s = usage_rate
    judged = None if feedback is None else quality.by(feedback, lambda c: c[0])
    out: dict[str, dict[str, Any]] = {}
    for p in activity:
        row = out.setdefault(getattr(p, key), {**_empty_row(), "_last": None})
        _add(
            row,
            p,
            None if alarms is None else alarms.get(p.project, {}),
            None if usage is None else usage.get(p.project),
            rate_s,
            usage is not None,
            None if judged is None else judged.get(p.project, quality.empty()),
        )
    return out


def _meta(who: Principal) -> dict[str, Any]:
    return {
        "generated_at": iso(time.time_ns() // 1000),
        "scope": "platform" if who.platform_admin else "tenant",
        "online_window_s": ONLINE_WINDOW_S,
        "rate_window_s": RATE_WINDOW_S,
        "point_bytes": POINT_BYTES,
    }


@router.get("/lab/overview", summary="Every enterprise you may see, with its health at a glance")
def overview(who: Viewer, ctx: Ctx) -> dict:
    """Per enterprise: projects, devices (online/total), open alarms by severity, ingest rate
    (points/s over about the last 5 min), points stored (and their size at 16 B a point),
    last activity; and the totals. The platform admin gets every enterprise, anyone else their
    own. ``alarms`` is null without the rules service, ``points`` without a store that counts."""
    tenants = visible_tenants(ctx, who)
    ids = [t.id for t in tenants]
    activity, alarms, usage, feedback = _activity(ctx, ids)
    rows = _rows(activity, alarms, usage, feedback, "tenant")
    total = {**_empty_row(), "_last": None, "enterprises": len(tenants)}
    enterprises = []
    for t in tenants:
        row = rows.get(t.id) or {
            **_empty_row(),
            "_last": None,
            **({"alarms": None, "open_alarms": None} if alarms is None else {}),
            **({"points": 0, "bytes": 0, "ingest_rate": 0.0} if usage[0] is not None else {}),
            **({"quality": None} if feedback is None else {}),
        }
        for k in ("projects", "devices", "online"):
            total[k] += row[k]
        for k in ("open_alarms", "points", "bytes", "ingest_rate"):
            if row[k] is not None:
                total[k] = round((total[k] or 0) + row[k], 3)
        if row["alarms"] is not None:
            for sev, n in row["alarms"].items():
                total["alarms"][sev] += n
        else:
            total["alarms"] = total["open_alarms"] = None
        if row["quality"] is None:
            total["quality"] = None
        elif total["quality"] is not None:
            quality.merge(total["quality"], row["quality"])
        total["_last"] = max(filter(None, (total["_last"], row["_last"])), default=None)
        enterprises.append({"id": t.id, "name": t.name, **_finish(row)})
    now = time.time_ns() // 1000
    return {
        **_meta(who),
        "totals": _finish(total),
        "quality_weeks": None
        if feedback is None
        else quality.weekly(feedback, now, quality.QUALITY_WEEKS),
        "enterprises": enterprises,
    }


@router.get(
    "/lab/enterprises/{tenant}", summary="One enterprise and each of its projects at a glance"
)
def enterprise(tenant: str, who: Viewer, ctx: Ctx) -> dict:
    """The same figures as ``/lab/overview``, for one enterprise and per project of it."""
    (tenant,) = _tenant_ids(ctx, who, [tenant])
    t = ctx.registry.get_tenant(tenant)
    activity, alarms, usage, feedback = _activity(ctx, [tenant])
    per_project = _rows(activity, alarms, usage, feedback, "project")
    whole = _rows(activity, alarms, usage, feedback, "tenant").get(tenant) or {
        **_empty_row(),
        "_last": None,
    }
    projects = []
    for p in activity:
        row = _finish(per_project[p.project])
        del row["projects"]
        projects.append({"id": p.project, "name": p.name, **row})
    now = time.time_ns() // 1000
    names = {p.project: p.name for p in activity}
    return {
        **_meta(who),
        "enterprise": {"id": t.id, "name": t.name, **_finish(whole)},
        "projects": projects,
        # What GET /tenants/{t}/quotas answers: the page's quota bars need no request of their own.
        "quotas": quotas_out(
            ctx, tenant, ctx.registry.quotas(tenant), held=whole.get("points") or 0
        ).model_dump(),
        "quality_weeks": None
        if feedback is None
        else quality.weekly(feedback, now, quality.QUALITY_WEEKS),
        "rules": None
        if feedback is None
        else quality.per_rule(feedback, names, now, quality.QUALITY_WEEKS),
    }


@router.get("/lab/projects", summary="Every project you may see, of every enterprise")
def lab_projects(who: Viewer, ctx: Ctx) -> dict:
    """``{"scope", "projects": [project]}`` in one query: what the console's project picker
    lists. The platform admin gets every tenant's projects (``GET /projects`` answers one
    tenant's), anyone else their own tenant's."""
    if who.platform_admin:
        projects = ctx.registry.list_projects(None)
    else:
        projects = ctx.registry.list_projects(who.tenant)
    return {
        "scope": "platform" if who.platform_admin else "tenant",
        "projects": [ProjectOut.of(p).model_dump() for p in projects],
    }


# --------------------------------------------------------------------------- alarm console


def _scope(ctx: Any, who: Principal, enterprise: list[str], project: list[str]) -> dict[str, Any]:
    """The projects (with their tenant and name) the alarm console may show, narrowed by the
    filters; a named enterprise or project the caller may not see is 404."""
    tenants = set(_tenant_ids(ctx, who, enterprise))
    projects = {
        p.id: p
        for p in ctx.registry.list_projects(next(iter(tenants)) if len(tenants) == 1 else None)
        if p.tenant in tenants
    }
    wanted = [x for v in project for x in v.split(",") if x.strip()]
    for x in wanted:
        if x not in projects:
            raise NotFound(f"project {x!r} not found")
    if wanted:
        projects = {x: projects[x] for x in wanted}
    return projects


def _filters(
    ctx: Any,
    who: Principal,
    enterprise: list[str],
    project: list[str],
    severity: list[str],
    status: list[str],
    rule: str | None,
    device: str | None,
    since: str | None,
    until: str | None,
    assignee: str | None = None,
    feedback: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    projects = _scope(ctx, who, enterprise, project)
    verdicts = [f.strip() for v in feedback or () for f in v.split(",") if f.strip()] or None
    for f in verdicts or ():
        if f not in (*FEEDBACK, "none"):
            raise InvalidInput(
                f"feedback: unknown value {f!r}", hint="use real, false, unsure or none"
            )
    sev = [s.strip() for v in severity for s in v.split(",") if s.strip()] or None
    for s in sev or ():
        if s not in SEVERITIES:
            raise InvalidInput(
                f"severity: unknown value {s!r}", hint=f"use {', '.join(SEVERITIES)}"
            )
    now = service(ctx).clock.now_us()
    return projects, {
        "projects": list(projects),
        "status": _statuses(status),
        "rule_id": rule or None,
        "device": device or None,
        "severity": sev,
        "since": parse_time(since, now) if since else None,
        "until": parse_time(until, now) if until else None,
        "assignee": assignee_filter(who, assignee),
        "feedback": verdicts,
    }


def _lab_alarm(a: Alarm, projects: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    p = projects.get(a.project)
    tenant = p.tenant if p else None
    return {
        **alarm_out(a),
        "tenant": tenant,
        "tenant_name": names.get(tenant or "", tenant),
        "project_name": p.name if p else a.project,
    }


_FILTER_DOC = {
    "enterprise": Query([], description="tenant id(s); repeat or comma-separate"),
    "project": Query([], description="project id(s); repeat or comma-separate"),
    "severity": Query([], description="info | warning | minor | major | critical"),
    "status": Query(["open"], description="active | acknowledged | cleared | open | all"),
    "assignee": Query(None, max_length=128, description=ASSIGNEE_DOC),
    "feedback": Query([], description="real | false | unsure | none (not judged yet)"),
}


@router.get("/lab/alarms", summary="Alarms across every enterprise and project you may see")
def lab_alarms(
    who: Viewer,
    ctx: Ctx,
    response: Response,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    severity: list[str] = _FILTER_DOC["severity"],
    status: list[str] = _FILTER_DOC["status"],
    rule: str | None = Query(None, description="rule id"),
    device: str | None = None,
    since: str | None = Query(None, description="raised at or after (ISO-8601, epoch ms, -7d)"),
    until: str | None = None,
    assignee: str | None = _FILTER_DOC["assignee"],
    feedback: list[str] = _FILTER_DOC["feedback"],
    order: Literal["newest", "severity"] = Query(
        "newest", description="newest first, or highest severity first (then newest)"
    ),
    limit: int = Query(100, ge=1, le=5000),
    offset: Offset = 0,
) -> list[dict]:
    """Newest first, each with its tenant and project names; ``X-Total-Count`` says how many
    match. ``status`` defaults to open (active or acknowledged)."""
    projects, filters = _filters(
        ctx,
        who,
        enterprise,
        project,
        severity,
        status,
        rule,
        device,
        since,
        until,
        assignee,
        feedback,
    )
    book = service(ctx).alarms
    response.headers["X-Total-Count"] = str(book.count(**filters))
    names = {t.id: t.name for t in visible_tenants(ctx, who)}
    rows = book.list(**filters, limit=limit, offset=offset, worst_first=order == "severity")
    return [_lab_alarm(a, projects, names) for a in rows]


CSV_COLUMNS = (
    "id",
    "tenant",
    "tenant_name",
    "project",
    "project_name",
    "device",
    "rule_id",
    "rule_name",
    "metric",
    "severity",
    "status",
    "acknowledged",
    "value",
    "detail",
    "raised_at",
    "acknowledged_at",
    "acknowledged_by",
    "cleared_at",
    "cleared_by",
    "assignee",
    "feedback",
    "feedback_by",
)


@router.get(
    "/lab/alarms.csv",
    summary="The same alarms as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def lab_alarms_csv(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    severity: list[str] = _FILTER_DOC["severity"],
    status: list[str] = _FILTER_DOC["status"],
    rule: str | None = None,
    device: str | None = None,
    since: str | None = None,
    until: str | None = None,
    assignee: str | None = _FILTER_DOC["assignee"],
    feedback: list[str] = _FILTER_DOC["feedback"],
    order: Literal["newest", "severity"] = "newest",
    limit: int = Query(MAX_EXPORT, ge=1, le=MAX_EXPORT),
) -> Response:
    """Filters as ``GET /lab/alarms``; at most 50,000 rows, newest first."""
    projects, filters = _filters(
        ctx,
        who,
        enterprise,
        project,
        severity,
        status,
        rule,
        device,
        since,
        until,
        assignee,
        feedback,
    )
    names = {t.id: t.name for t in visible_tenants(ctx, who)}
    alarms = service(ctx).alarms.list(**filters, limit=limit, worst_first=order == "severity")
    rows = (_lab_alarm(a, projects, names) for a in alarms)
    return csv_download(CSV_COLUMNS, rows, "atoll-alarms.csv")


class BulkIn(BaseModel):
    ids: list[Annotated[int, Field(ge=-MAX_DB_INT, le=MAX_DB_INT)]] = Field(
        min_length=1, max_length=MAX_BULK, description="alarm ids"
    )
    comment: str | None = Field(None, max_length=4000)


async def _bulk(ctx: Any, who: Principal, body: BulkIn, action: str) -> dict:
    svc = service(ctx)
    projects = _scope(ctx, who, [], [])
    done: list[int] = []
    skipped: list[dict[str, Any]] = []
    for alarm_id in dict.fromkeys(body.ids):
        try:
            alarm = svc.alarms.get(alarm_id)
            p = projects.get(alarm.project)
            if p is None:
                raise NotFound(f"alarm {alarm_id} not found")
            # The action happens in the alarm's tenant, audited there, like a call made in it.
            inside = act_in_tenant(ctx.registry, who, p.tenant)
            if action == "ack":
                await svc.acknowledge(alarm_id, username(inside), body.comment)
            else:
                await svc.clear(alarm_id, username(inside), body.comment)
            audit(ctx, inside, f"alarm.{action}", f"alarm:{alarm_id}", {"bulk": True})
            done.append(alarm_id)
        except AtollError as e:
            skipped.append({"id": alarm_id, "reason": e.message})
    return {"done": done, "skipped": skipped}


@router.post("/lab/alarms/ack", summary="Acknowledge many alarms at once")
async def bulk_acknowledge(body: BulkIn, who: Operator, ctx: Ctx) -> dict:
    """``{"done": [ids], "skipped": [{"id", "reason"}]}``: an alarm already acknowledged, or
    one you may not see ("not found"), is skipped with the reason; the others are done."""
    return await _bulk(ctx, who, body, "ack")


@router.post("/lab/alarms/clear", summary="Clear many alarms at once")
async def bulk_clear(body: BulkIn, who: Operator, ctx: Ctx) -> dict:
    """As ``/lab/alarms/ack``, clearing."""
    return await _bulk(ctx, who, body, "clear")


@router.get("/lab/quality", summary="Detection precision from alarm feedback, per rule and week")
def lab_quality(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    weeks: int = Query(quality.QUALITY_WEEKS, ge=1, le=104, description="how many weeks back"),
) -> dict:
    """Of the alarms raised in the last ``weeks`` weeks that operators judged (``PUT
    /alarms/{id}/feedback``): counts of ``real``, ``false`` and ``unsure`` and the precision
    ``real / (real + false)`` (null before any such verdict), for the whole scope, per project
    and per rule, each also week by week."""
    projects = _scope(ctx, who, enterprise, project)
    now = time.time_ns() // 1000
    counts = service(ctx).alarms.feedback_counts(list(projects), since=quality.since_us(now, weeks))
    names = {p.id: p.name for p in projects.values()}
    total = quality.empty()
    for c in counts:
        quality.add(total, c[4], c[5])
    per_project = quality.by(counts, lambda c: c[0])
    return {
        "since": iso(quality.since_us(now, weeks)),
        "total": {**total, "weeks": quality.weekly(counts, now, weeks)},
        "projects": [
            {
                "project": pid,
                "project_name": names.get(pid, pid),
                "tenant": projects[pid].tenant,
                **q,
                "weeks": quality.weekly([c for c in counts if c[0] == pid], now, weeks),
            }
            for pid, q in sorted(per_project.items())
        ],
        "rules": quality.per_rule(counts, names, now, weeks),
    }


# -- usage metering (atoll.registry.usage) ------------------------------------------------------
#: Days one usage request covers by default (ending today), and at most.
USAGE_DAYS = 30
MAX_USAGE_DAYS = 731
USAGE_COLUMNS = (
    "day",
    "enterprise",
    "enterprise_name",
    "project",
    "project_name",
    "messages",
    "points",
    "api_calls",
    "storage_points",
    "storage_bytes",
)


def _day(value: str | None, what: str) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a day like 2026-12-01, not {value!r}") from None


def _usage_rows(
    ctx: Any,
    who: Principal,
    enterprise: list[str],
    project: list[str],
    since: str | None,
    until: str | None,
) -> tuple[list[dict[str, Any]], str, str]:
    tenants = _tenant_ids(ctx, who, enterprise)
    names = {t.id: t.name for t in visible_tenants(ctx, who)}
    wanted = [x for v in project for x in v.split(",") if x.strip()]
    projects = _scope(ctx, who, enterprise, project) if wanted else None
    last = _day(until, "until") or dt.datetime.now(dt.UTC).date()
    first = _day(since, "since") or last - dt.timedelta(days=USAGE_DAYS - 1)
    if first > last:
        raise InvalidInput(f"since ({first}) is after until ({last})")
    if (last - first).days >= MAX_USAGE_DAYS:
        raise InvalidInput(f"at most {MAX_USAGE_DAYS} days per request; narrow since/until")
    days = ctx.registry.usage(
        tenants,
        projects=list(projects) if projects is not None else None,
        since=first.isoformat(),
        until=last.isoformat(),
    )
    one = tenants[0] if len(tenants) == 1 else None
    pnames = {p.id: p.name for p in ctx.registry.list_projects(one)}
    rows = [
        {
            "day": u.day,
            "enterprise": u.tenant,
            "enterprise_name": names.get(u.tenant, u.tenant),
            "project": u.project or None,
            "project_name": pnames.get(u.project, u.project) if u.project else None,
            "messages": u.messages,
            "points": u.points,
            "api_calls": u.api_calls,
            "storage_points": u.storage_points,
            "storage_bytes": None if u.storage_points is None else u.storage_points * POINT_BYTES,
        }
        for u in days
    ]
    return rows, first.isoformat(), last.isoformat()


@router.get("/lab/usage", summary="Metered use per enterprise, project and day")
def lab_usage(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    since: str | None = Query(None, description="first day (YYYY-MM-DD, UTC); 30 days back"),
    until: str | None = Query(None, description="last day (YYYY-MM-DD, UTC); today"),
) -> dict:
    """Per UTC day, enterprise and project: telemetry messages and points stored, and the
    largest number of points the project held (sampled hourly; bytes at 16 per point, a lower
    bound). API calls belong to the enterprise (``project`` null). ``totals`` sums the days per
    enterprise (storage: its latest day's); at most 731 days per request."""
    rows, first, last = _usage_rows(ctx, who, enterprise, project, since, until)
    totals: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str | None], tuple[str, int]] = {}
    for r in rows:
        t = totals.setdefault(
            r["enterprise"],
            {
                "enterprise": r["enterprise"],
                "enterprise_name": r["enterprise_name"],
                "messages": 0,
                "points": 0,
                "api_calls": 0,
                "storage_points": None,
            },
        )
        for k in ("messages", "points", "api_calls"):
            t[k] += r[k]
        if r["storage_points"] is not None:
            key = (r["enterprise"], r["project"])
            if key not in latest or latest[key][0] < r["day"]:
                latest[key] = (r["day"], r["storage_points"])
    for (tenant, _), (_, n) in latest.items():
        t = totals[tenant]
        t["storage_points"] = (t["storage_points"] or 0) + n
    for t in totals.values():
        n = t["storage_points"]
        t["storage_bytes"] = None if n is None else n * POINT_BYTES
    return {
        "since": first,
        "until": last,
        "days": rows,
        "totals": sorted(totals.values(), key=lambda t: t["enterprise"]),
    }


@router.get(
    "/lab/usage.csv",
    summary="The same usage as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def lab_usage_csv(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    since: str | None = Query(None, description="first day (YYYY-MM-DD, UTC); 30 days back"),
    until: str | None = Query(None, description="last day (YYYY-MM-DD, UTC); today"),
) -> Response:
    """One row per day, enterprise and project (the enterprise's own API calls: empty
    project), as ``GET /lab/usage``."""
    rows, first, last = _usage_rows(ctx, who, enterprise, project, since, until)
    return csv_download(USAGE_COLUMNS, rows, f"atoll-usage-{first}-{last}.csv")


# -- trends over 24 h and 7 days ------------------------------------------------------------------
HOUR_US = 3_600_000_000
TREND_WINDOWS = {"24h": (24, HOUR_US), "7d": (7, 24 * HOUR_US)}


@router.get("/lab/trends", summary="Telemetry and alarms per hour (24 h) or per day (7 d)")
def lab_trends(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    window: Literal["24h", "7d"] = Query("24h", description="24h: per hour; 7d: per UTC day"),
) -> dict:
    """For each enterprise you may see (or those named), and in total: messages and points
    stored and alarms raised per bucket, oldest first, the last bucket being the one under way
    (hours from the usage meter's hourly counters, days from its daily ones)."""
    n, size = TREND_WINDOWS[window]
    tenants = _tenant_ids(ctx, who, enterprise)
    names = {t.id: t.name for t in visible_tenants(ctx, who)}
    now = time.time_ns() // 1000
    end = (now // size + 1) * size  # the end of the bucket under way (UTC hours and days)
    start = end - n * size
    keys = [dt.datetime.fromtimestamp((start + i * size) / 1e6, dt.UTC) for i in range(n)]
    labels = [k.strftime("%Y-%m-%dT%H") if window == "24h" else k.date().isoformat() for k in keys]
    at = {label: i for i, label in enumerate(labels)}
    series = {t: {"messages": [0] * n, "points": [0] * n, "alarms": [0] * n} for t in tenants}
    if window == "24h":
        rows = ctx.registry.usage_hourly(tenants, labels[0], labels[-1])
        counted = [(r[0], r[2], r[3], r[4]) for r in rows]
    else:
        days = ctx.registry.usage(tenants, since=labels[0], until=labels[-1])
        counted = [(u.tenant, u.day, u.messages, u.points) for u in days]
    for tenant, label, messages, points in counted:
        i = at.get(label)
        if i is not None and tenant in series:
            series[tenant]["messages"][i] += messages
            series[tenant]["points"][i] += points
    owners = {
        p.id: p.tenant for p in ctx.registry.list_projects(None if len(tenants) > 1 else tenants[0])
    }
    projects = [p for p, t in owners.items() if t in series]
    if projects:
        for project, i, count in service(ctx).alarms.raised_histogram(projects, start, end, size):
            if 0 <= i < n:
                series[owners[project]]["alarms"][i] += count
    total = {
        k: [sum(s[k][i] for s in series.values()) for i in range(n)]
        for k in ("messages", "points", "alarms")
    }
    return {
        "window": window,
        "buckets": [iso(start + i * size) for i in range(n)],
        "total": total,
        "enterprises": [
            {"enterprise": t, "enterprise_name": names.get(t, t), **series[t]}
            for t in sorted(series)
        ],
    }
