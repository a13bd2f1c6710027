"""The tenant's audit log (append-only), newest first: who did what, to what, when and from
where. Admins only; a platform admin reads the tenant it acts in."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from atoll.api.deps import Admin, Ctx
from atoll.api.files import csv_download
from atoll.api.schemas import MAX_DB_INT, iso
from atoll.api.times import parse_time
from atoll.registry import Principal

router = APIRouter(tags=["audit"])
MAX_EXPORT = 50_000


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    at: str
    detail: dict[str, Any]
    source: str | None = None


_DOC = {
    "action": Query(
        None, max_length=100, description="one action, or a prefix ending in '.' (alarm.)"
    ),
    "target": Query(None, max_length=300),
    "actor": Query(None, max_length=200, description="part of the actor's name (any case)"),
    "since": Query(None, description="at or after (ISO-8601, epoch ms, -7d)"),
    "until": Query(None, description="before (ISO-8601, epoch ms, -1h)"),
}


def _filters(
    action: str | None,
    target: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    now = time.time_ns() // 1000
    return {
        "action": action or None,
        "target": target or None,
        "actor": actor or None,
        "since": parse_time(since, now) if since else None,
        "until": parse_time(until, now) if until else None,
    }


def _out(e: Any) -> AuditOut:
    return AuditOut(
        id=e.id,
        actor=e.actor,
        action=e.action,
        target=e.target,
        at=iso(e.at),
        detail=e.detail,
        source=e.source,
    )


@router.get("/audit", response_model=list[AuditOut], summary="Read the audit log")
def audit_log(
    who: Admin,
    ctx: Ctx,
    response: Response,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(
        None, ge=-MAX_DB_INT, le=MAX_DB_INT, description="page: smallest id of the previous page"
    ),
    action: str | None = _DOC["action"],
    target: str | None = _DOC["target"],
    actor: str | None = _DOC["actor"],
    since: str | None = _DOC["since"],
    until: str | None = _DOC["until"],
):
    """Newest first; ``X-Total-Count`` says how many entries match the filters (all pages)."""
    filters = _filters(action, target, actor, since, until)
    response.headers["X-Total-Count"] = str(ctx.registry.audit_count(who.tenant, **filters))
    return [
        _out(e)
        for e in ctx.registry.audit_log(who.tenant, limit=limit, before_id=before_id, **filters)
    ]


@router.get("/audit/actions", summary="The actions the audit log holds")
def audit_actions(who: Admin, ctx: Ctx) -> list[str]:
    """Sorted, for a filter's choices."""
    return ctx.registry.audit_actions(who.tenant)


CSV_COLUMNS = ("id", "at", "actor", "action", "target", "source", "detail")


@router.get(
    "/audit.csv",
    summary="The audit log as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def audit_csv(
    who: Admin,
    ctx: Ctx,
    action: str | None = _DOC["action"],
    target: str | None = _DOC["target"],
    actor: str | None = _DOC["actor"],
    since: str | None = _DOC["since"],
    until: str | None = _DOC["until"],
    limit: int = Query(MAX_EXPORT, ge=1, le=MAX_EXPORT),
) -> Response:
    """Filters as ``GET /audit``; newest first, at most 50,000 rows."""
    return _csv(ctx, who, _filters(action, target, actor, since, until), limit)


def _csv(ctx: Any, who: Principal, filters: dict[str, Any], limit: int) -> Response:
    rows = (
        [
            e.id,
            iso(e.at),
            e.actor,
            e.action,
            e.target,
            e.source,
            orjson.dumps(e.detail, option=orjson.OPT_SORT_KEYS).decode() if e.detail else "",
        ]
        for e in ctx.registry.audit_log(who.tenant, limit=limit, **filters)
    )
    return csv_download(CSV_COLUMNS, rows, "atoll-audit.csv")
