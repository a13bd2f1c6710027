"""The project portfolio (``tables.project_portfolio``): each project's stage (idea → proof of
concept → pilot → production), owner and goals, and the failures its devices had, for the lab
home's funnel and the quarterly report (docs/CONSOLE.md, "Portfolio")."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, insert, select, update

from atoll.core.errors import InvalidInput
from atoll.registry import tables as t
from atoll.registry.models import STAGES, Portfolio, Project

_UNSET: object = object()


def _row(project: Project, row) -> Portfolio:  # noqa: ANN001 - a SQLAlchemy Row or None
    if row is None:
        return Portfolio(project.id, "idea", None, "", project.created_at, None, None)
    return Portfolio(
        project.id,
        row.stage,
        row.owner,
        row.goals,
        row.stage_since,
        row.updated_by,
        row.updated_at,
    )


def get_many(conn: Connection, projects: Iterable[Project]) -> dict[str, Portfolio]:
    """Every project's portfolio entry (never placed: an idea), in one query."""
    projects = list(projects)
    c = t.project_portfolio.c
    rows = {
        r.project: r
        for r in conn.execute(
            select(t.project_portfolio).where(c.project.in_([p.id for p in projects]))
        )
    }
    return {p.id: _row(p, rows.get(p.id)) for p in projects}


def put(
    conn: Connection,
    project: Project,
    *,
    actor: str,
    at: int,
    stage: str | None = None,
    owner: str | None | object = _UNSET,
    goals: str | None = None,
) -> tuple[Portfolio, Portfolio]:
    """Change what is given; ``(before, after)``. A new stage restarts ``stage_since``."""
    if stage is not None and stage not in STAGES:
        raise InvalidInput(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    before = get_many(conn, [project])[project.id]
    after = Portfolio(
        project.id,
        stage or before.stage,  # type: ignore[arg-type]
        before.owner if owner is _UNSET else owner,  # type: ignore[arg-type]
        before.goals if goals is None else goals,
        at if stage is not None and stage != before.stage else before.stage_since,
        actor,
        at,
    )
    values = {
        "stage": after.stage,
        "owner": after.owner,
        "goals": after.goals,
        "stage_since": after.stage_since,
        "updated_by": actor,
        "updated_at": at,
    }
    done = conn.execute(
        update(t.project_portfolio)
        .where(t.project_portfolio.c.project == project.id)
        .values(values)
    )
    if not done.rowcount:
        conn.execute(insert(t.project_portfolio).values(project=project.id, **values))
    return before, after


def failures(
    conn: Connection, projects: Iterable[str], since: int, until: int
) -> list[tuple[str, str, int]]:
    """``(project, device, at)`` of every failure recorded for the projects' devices in
    ``[since, until)``, in one query."""
    m, d = t.maintenance.c, t.devices.c
    q = (
        select(d.project, m.device, m.at)
        .join_from(t.maintenance, t.devices, m.device == d.id)
        .where(d.project.in_(list(projects)), m.kind == "failure", m.at >= since, m.at < until)
        .order_by(m.at)
    )
    return [(r[0], r[1], int(r[2])) for r in conn.execute(q)]
