"""Append-only audit log: who did what to which target,
when, from where, in which tenant. Nothing here updates or deletes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select

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
    source: str | None = None,
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            tenant=tenant,
            actor=actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
            at=now_us(),
            source=source,
        )
    )


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching itself literally (``\\`` escapes)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(
    tenant: str,
    *,
    before_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> list[Any]:
    a = t.audit_log
    where: list[Any] = [a.c.tenant == tenant]
    if before_id is not None:
        where.append(a.c.id < before_id)
    if action is not None:
        # "alarm." or "alarm.*" means every alarm action; anything else one action.
        if action.endswith(".") or action.endswith(".*"):
            where.append(a.c.action.like(_like(action.rstrip("*")) + "%", escape="\\"))
        else:
            where.append(a.c.action == action)
    if target is not None:
        where.append(a.c.target == target)
    if actor is not None:
        where.append(func.lower(a.c.actor).like("%" + _like(actor.lower()) + "%", escape="\\"))
    if since is not None:
        where.append(a.c.at >= since)
    if until is not None:
        where.append(a.c.at < until)
    return where


def list_(
    conn: Connection,
    tenant: str,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> list[AuditEntry]:
    """Newest first. Page with ``before_id`` (the smallest id of the previous page).
    ``actor`` matches part of the actor (any case), ``action`` ending in ``.`` a prefix."""
    where = _where(
        tenant,
        before_id=before_id,
        action=action,
        target=target,
        actor=actor,
        since=since,
        until=until,
    )
    q = select(t.audit_log).where(*where).order_by(t.audit_log.c.id.desc()).limit(limit)
    return [
        AuditEntry(
            r.id, r.tenant, r.actor, r.action, r.target, r.at, dict(r.detail or {}), r.source
        )
        for r in conn.execute(q)
    ]


def count(conn: Connection, tenant: str, **filters: Any) -> int:
    """How many entries ``list_`` pages through with the same filters."""
    q = select(func.count()).select_from(t.audit_log).where(*_where(tenant, **filters))
    return int(conn.execute(q).scalar_one())


def actions(conn: Connection, tenant: str) -> list[str]:
    """The actions the tenant's log holds, for a filter's choices."""
    a = t.audit_log
    q = select(a.c.action).where(a.c.tenant == tenant).group_by(a.c.action).order_by(a.c.action)
    return [r[0] for r in conn.execute(q)]
