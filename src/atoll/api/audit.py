"""The tenant's audit log (append-only), newest first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from atoll.api.deps import Admin, Ctx
from atoll.api.schemas import MAX_DB_INT, iso

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    at: str
    detail: dict[str, Any]


@router.get("/audit", response_model=list[AuditOut], summary="Read the audit log")
def audit_log(
    who: Admin,
    ctx: Ctx,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(
        None, ge=-MAX_DB_INT, le=MAX_DB_INT, description="page: smallest id of the previous page"
    ),
    action: str | None = None,
    target: str | None = None,
):
    return [
        AuditOut(
            id=e.id, actor=e.actor, action=e.action, target=e.target, at=iso(e.at), detail=e.detail
        )
        for e in ctx.registry.audit_log(
            who.tenant, limit=limit, before_id=before_id, action=action, target=target
        )
    ]
