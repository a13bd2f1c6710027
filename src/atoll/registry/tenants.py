"""Tenants (enterprises) and their projects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, select, update

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.models import Project, ProjectActivity, Tenant
from atoll.registry.namespaces import qualify_id
from atoll.registry.tokens import new_id, now_us, valid_id

_UNSET = object()


def check_id(kind: str, value: str) -> None:
    if not valid_id(value):
        raise InvalidInput(
            f"invalid {kind} id {value!r}",
            hint="use 1-64 characters: lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit",
        )


def _tenant(row) -> Tenant:
    return Tenant(row.id, row.name, row.created_at)


def _project(row) -> Project:
    return Project(row.id, row.tenant, row.name, row.retention_days, row.created_at)


def create_tenant(conn: Connection, name: str, tenant_id: str | None = None) -> Tenant:
    tenant_id = tenant_id or new_id("t-")
    check_id("tenant", tenant_id)
    if conn.execute(select(t.tenants.c.id).where(t.tenants.c.id == tenant_id)).first():
        raise Conflict(f"tenant {tenant_id!r} already exists")
    row: dict[str, Any] = {"id": tenant_id, "name": name or tenant_id, "created_at": now_us()}
    conn.execute(insert(t.tenants).values(**row))
    return Tenant(**row)


def get_tenant(conn: Connection, tenant_id: str) -> Tenant:
    row = conn.execute(select(t.tenants).where(t.tenants.c.id == tenant_id)).first()
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return _tenant(row)


def list_tenants(conn: Connection) -> list[Tenant]:
    return [_tenant(r) for r in conn.execute(select(t.tenants).order_by(t.tenants.c.id))]


def check_retention(days: int | None) -> None:
    if days is not None and (not isinstance(days, int) or days < 1):
        raise InvalidInput("retention_days must be a positive integer or null (keep forever)")


def create_project(
    conn: Connection,
    tenant: str,
    name: str,
    project_id: str | None = None,
    retention_days: int | None = None,
) -> Project:
    get_tenant(conn, tenant)
    project_id = qualify_id("project", tenant, project_id) if project_id else new_id("p-")
    check_retention(retention_days)
    # Project ids are global because series keys carry the project id alone; a chosen id is in
    # the tenant's namespace, so "taken" can only mean taken by this tenant.
    if conn.execute(select(t.projects.c.id).where(t.projects.c.id == project_id)).first():
        raise Conflict(f"project id {project_id!r} is taken", hint="choose another id or omit it")
    row: dict[str, Any] = {
        "id": project_id,
        "tenant": tenant,
        "name": name or project_id,
        "retention_days": retention_days,
        "created_at": now_us(),
    }
    conn.execute(insert(t.projects).values(**row))
    return Project(**row)


def get_project(conn: Connection, project_id: str, tenant: str | None = None) -> Project:
    """A project; ``NotFound`` also when it belongs to another tenant (existence must not leak)."""
    q = select(t.projects).where(t.projects.c.id == project_id)
    if tenant is not None:
        q = q.where(t.projects.c.tenant == tenant)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"project {project_id!r} not found")
    return _project(row)


def list_projects(conn: Connection, tenant: str | None = None) -> list[Project]:
    q = select(t.projects).order_by(t.projects.c.id)
    if tenant is not None:
        q = q.where(t.projects.c.tenant == tenant)
    return [_project(r) for r in conn.execute(q)]


def project_activity(
    conn: Connection, tenant: str | None, online_since: int
) -> list[ProjectActivity]:
    """Every project (of ``tenant``, or of all tenants) with its device counts, in one grouped
    query: what the lab home draws for 400 projects without a query per project."""
    p, d = t.projects, t.devices
    online = case((and_(d.c.last_seen >= online_since, d.c.disabled.is_(False)), 1), else_=0)
    q = (
        select(
            p.c.id,
            p.c.tenant,
            p.c.name,
            func.count(d.c.id),
            func.coalesce(func.sum(online), 0),
            func.max(d.c.last_seen),
        )
        .select_from(p.outerjoin(d, d.c.project == p.c.id))
        .group_by(p.c.id, p.c.tenant, p.c.name)
        .order_by(p.c.id)
    )
    if tenant is not None:
        q = q.where(p.c.tenant == tenant)
    return [
        ProjectActivity(pid, ten, name, int(n), int(on), seen)
        for pid, ten, name, n, on, seen in conn.execute(q)
    ]


def update_project(
    conn: Connection,
    project_id: str,
    tenant: str | None = None,
    *,
    name: str | None = None,
    retention_days=_UNSET,
) -> Project:
    get_project(conn, project_id, tenant)
    values = {}
    if name is not None:
        values["name"] = name
    if retention_days is not _UNSET:
        check_retention(retention_days)
        values["retention_days"] = retention_days
    if values:
        conn.execute(update(t.projects).where(t.projects.c.id == project_id).values(**values))
    return get_project(conn, project_id, tenant)


def delete_project(conn: Connection, project_id: str, tenant: str | None = None) -> list[str]:
    """Delete a project and everything in it; returns the ids of the devices that went."""
    get_project(conn, project_id, tenant)
    ids = [
        r.id for r in conn.execute(select(t.devices.c.id).where(t.devices.c.project == project_id))
    ]
    # Explicit child deletes: foreign-key cascades are off on SQLite files opened by other tools.
    if ids:
        conn.execute(delete(t.twins).where(t.twins.c.device.in_(ids)))
        conn.execute(delete(t.commands).where(t.commands.c.device.in_(ids)))
        conn.execute(delete(t.rejections).where(t.rejections.c.device.in_(ids)))
    conn.execute(delete(t.devices).where(t.devices.c.project == project_id))
    conn.execute(delete(t.device_types).where(t.device_types.c.project == project_id))
    conn.execute(delete(t.projects).where(t.projects.c.id == project_id))
    return ids
