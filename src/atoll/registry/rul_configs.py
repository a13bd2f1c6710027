"""RUL configuration per device type: how its model is fitted and when it is retrained.

Retraining (``atoll.rul.retrain``) reads every configuration with a schedule or ``on_failure``,
and claims one by moving its ``last_fit`` and ``failures_seen`` from the values it read to new
ones in one statement: when two nodes look at once, one update matches and the other does not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from atoll.core.errors import NotFound
from atoll.registry import tables as t
from atoll.registry.models import RulConfig
from atoll.registry.tokens import now_us

_C = t.rul_configs


def _config(row: Any) -> RulConfig:
    return RulConfig(
        row.project,
        row.device_type,
        row.cycle,
        row.cap,
        row.retrain_every,
        bool(row.on_failure),
        bool(row.auto_activate),
        row.updated_by,
        row.updated_at,
        row.last_fit,
        row.failures_seen,
    )


def get(conn: Connection, project: str, device_type: str) -> RulConfig:
    row = conn.execute(
        select(_C).where(and_(_C.c.project == project, _C.c.device_type == device_type))
    ).first()
    if row is None:
        raise NotFound(
            f"device type {device_type!r} has no RUL configuration in project {project!r}",
            hint="PUT /projects/{p}/rul/config/{device_type} sets one",
        )
    return _config(row)


def put(
    conn: Connection,
    tenant: str,
    project: str,
    device_type: str,
    *,
    cycle: int,
    cap: float,
    retrain_every: int | None,
    on_failure: bool,
    auto_activate: bool,
    actor: str,
) -> RulConfig:
    values = {
        "cycle": cycle,
        "cap": cap,
        "retrain_every": retrain_every,
        "on_failure": on_failure,
        "auto_activate": auto_activate,
        "updated_by": actor,
        "updated_at": now_us(),
    }
    where = and_(_C.c.project == project, _C.c.device_type == device_type)
    if conn.execute(update(_C).where(where).values(**values)).rowcount == 0:
        # A new configuration knows the failures recorded so far: only later ones retrain.
        seen = newest_failure(conn, project, device_type)
        conn.execute(
            insert(_C).values(
                project=project,
                device_type=device_type,
                tenant=tenant,
                failures_seen=seen,
                last_fit=now_us(),
                **values,
            )
        )
    return get(conn, project, device_type)


def with_retraining(conn: Connection) -> list[RulConfig]:
    """Every configuration with a schedule or ``on_failure``."""
    q = select(_C).where(or_(_C.c.retrain_every.is_not(None), _C.c.on_failure.is_(True)))
    return [_config(r) for r in conn.execute(q)]


def newest_failure(conn: Connection, project: str, device_type: str) -> int | None:
    """When the newest ``failure`` record of the type's devices in ``project`` was recorded."""
    m, d = t.maintenance, t.devices
    q = (
        select(func.max(m.c.created_at))
        .select_from(m.join(d, d.c.id == m.c.device))
        .where(and_(d.c.project == project, d.c.device_type == device_type, m.c.kind == "failure"))
    )
    return conn.execute(q).scalar()


def claim(conn: Connection, cfg: RulConfig, *, last_fit: int, failures_seen: int | None) -> bool:
    """Move ``cfg``'s ``last_fit``/``failures_seen`` from what it read to the new values; whether
    this caller won (another node may have claimed it first)."""

    def same(col: Any, value: int | None) -> Any:
        return col.is_(None) if value is None else col == value

    where = and_(
        _C.c.project == cfg.project,
        _C.c.device_type == cfg.device_type,
        same(_C.c.last_fit, cfg.last_fit),
        same(_C.c.failures_seen, cfg.failures_seen),
    )
    values = {"last_fit": last_fit, "failures_seen": failures_seen}
    return conn.execute(update(_C).where(where).values(**values)).rowcount == 1
