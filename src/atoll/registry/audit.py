"""Append-only audit log: who did what to which target,
when, in which tenant. Nothing here updates or deletes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select

from atoll.registry import tables as t
from atoll.registry.models import AuditEntry
from atoll.registry.tokens import now_us


def record(
    conn: Connection,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            tenant=tenant,
            actor=actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
            at=now_us(),
        )
    )


def list_(
    conn: Connection,
    tenant: str,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    """Newest first. Page with ``before_id`` (the smallest id of the previous page)."""
    q = select(t.audit_log).where(t.audit_log.c.tenant == tenant)
    if before_id is not None:
        q = q.where(t.audit_log.c.id < before_id)
    if action is not None:
        q = q.where(t.audit_log.c.action == action)
    if target is not None:
        q = q.where(t.audit_log.c.target == target)
    q = q.order_by(t.audit_log.c.id.desc()).limit(limit)
    return [
        AuditEntry(r.id, r.tenant, r.actor, r.action, r.target, r.at, dict(r.detail or {}))
        for r in conn.execute(q)
    ]
