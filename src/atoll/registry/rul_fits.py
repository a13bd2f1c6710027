"""RUL fit jobs: a fit runs off the request, and its state is kept here so any node can answer.

A job is ``queued`` when asked for, ``running`` once a node's RUL service starts it, then
``done`` (``model``: the draft version it registered) or ``failed`` (``error``: the refusal's
code, message and hint, as an API error would say them). ``trigger`` says who asked: ``api`` (an
operator), ``schedule`` or ``failure`` (retraining, ``atoll.rul.retrain``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from atoll.core.errors import NotFound
from atoll.registry import tables as t
from atoll.registry.models import RulFit
from atoll.registry.tokens import new_id, now_us

FIT_STATES = ("queued", "running", "done", "failed")
TRIGGERS = ("api", "schedule", "failure")


def _fit(row: Any) -> RulFit:
    return RulFit(
        id=row.id,
        project=row.project,
        device_type=row.device_type,
        state=row.state,
        trigger=row.trigger,
        params=dict(row.params or {}),
        requested_by=row.requested_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        model=row.model,
        error=dict(row.error) if row.error else None,
        outcome=dict(row.outcome) if row.outcome else None,
        progress=row.progress,
    )


def create(
    conn: Connection,
    tenant: str,
    project: str,
    device_type: str,
    *,
    params: dict[str, Any],
    requested_by: str,
    trigger: str = "api",
) -> RulFit:
    fid = new_id("fit")
    conn.execute(
        insert(t.rul_fits).values(
            id=fid,
            tenant=tenant,
            project=project,
            device_type=device_type,
            state="queued",
            trigger=trigger,
            params=params,
            requested_by=requested_by,
            created_at=now_us(),
        )
    )
    return get(conn, project, fid)


def get(conn: Connection, project: str, fit_id: str) -> RulFit:
    row = conn.execute(
        select(t.rul_fits).where(and_(t.rul_fits.c.id == fit_id, t.rul_fits.c.project == project))
    ).first()
    if row is None:
        raise NotFound(f"RUL fit {fit_id!r} not found in project {project!r}")
    return _fit(row)


def list_(
    conn: Connection, project: str, device_type: str | None = None, limit: int = 100
) -> list[RulFit]:
    q = select(t.rul_fits).where(t.rul_fits.c.project == project)
    if device_type is not None:
        q = q.where(t.rul_fits.c.device_type == device_type)
    q = q.order_by(t.rul_fits.c.created_at.desc(), t.rul_fits.c.id.desc()).limit(limit)
    return [_fit(r) for r in conn.execute(q)]


def set_state(
    conn: Connection,
    fit_id: str,
    state: str,
    *,
    model: str | None = None,
    error: dict[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    progress: str | None = None,
) -> None:
    values: dict[str, Any] = {"state": state}
    if progress is not None:
        values["progress"] = progress[:200]
    if state == "running":
        values["started_at"] = func.coalesce(t.rul_fits.c.started_at, now_us())
    if state in ("done", "failed"):
        values["finished_at"] = now_us()
    if model is not None:
        values["model"] = model
    if error is not None:
        values["error"] = error
    if outcome is not None:
        values["outcome"] = outcome
    conn.execute(update(t.rul_fits).where(t.rul_fits.c.id == fit_id).values(**values))
