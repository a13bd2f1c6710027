"""Per-tenant count quotas (devices, API keys), set by the platform operator and enforced
where the registry makes things, inside the same transaction (docs/SECURITY.md, "Quotas")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from atoll.core.errors import InvalidInput, QuotaExceeded
from atoll.registry import tables as t
from atoll.registry.keys import SESSION_PREFIX
from atoll.registry.tenants import get_tenant

KINDS = {"devices": "max_devices", "api_keys": "max_api_keys"}
WHAT = {"devices": "device", "api_keys": "API key"}
RATE = "ingest_rate"  # points/s; enforced by ingest (atoll.ingest.quota), not counted here
#: Points held in the store; counted by the store, enforced by ingest (``IngestPipeline``).
STORAGE = "storage_points"


@dataclass(frozen=True, slots=True)
class Usage:
    limit: int | None  # None: no limit
    used: int


def limits(conn: Connection, tenant: str) -> dict[str, int | None]:
    row = conn.execute(select(t.tenant_quotas).where(t.tenant_quotas.c.tenant == tenant)).first()
    return {k: (getattr(row, col) if row is not None else None) for k, col in KINDS.items()}


def ingest_rate(conn: Connection, tenant: str) -> float | None:
    q = select(t.tenant_quotas.c.ingest_rate).where(t.tenant_quotas.c.tenant == tenant)
    return conn.execute(q).scalar_one_or_none()


def storage_limit(conn: Connection, tenant: str) -> int | None:
    q = select(t.tenant_quotas.c.max_points).where(t.tenant_quotas.c.tenant == tenant)
    return conn.execute(q).scalar_one_or_none()


def storage_limits(conn: Connection) -> dict[str, int]:
    """Every tenant's storage quota (points) that is set."""
    q = select(t.tenant_quotas.c.tenant, t.tenant_quotas.c.max_points).where(
        t.tenant_quotas.c.max_points.is_not(None)
    )
    return {r.tenant: int(r.max_points) for r in conn.execute(q)}


def ingest_rates(conn: Connection) -> dict[str, float]:
    """Every tenant's ingest rate quota that is set."""
    q = select(t.tenant_quotas.c.tenant, t.tenant_quotas.c.ingest_rate).where(
        t.tenant_quotas.c.ingest_rate.is_not(None)
    )
    return {r.tenant: float(r.ingest_rate) for r in conn.execute(q)}


def used(conn: Connection, tenant: str, kind: str) -> int:
    if kind == "devices":
        q = (
            select(func.count())
            .select_from(t.devices.join(t.projects, t.devices.c.project == t.projects.c.id))
            .where(t.projects.c.tenant == tenant)
        )
    else:  # API keys people made: not console sessions, not revoked
        q = (
            select(func.count())
            .select_from(t.api_keys)
            .where(
                t.api_keys.c.tenant == tenant,
                t.api_keys.c.revoked.is_(False),
                t.api_keys.c.name.not_like(SESSION_PREFIX + "%"),
            )
        )
    return int(conn.execute(q).scalar_one())


def usage(conn: Connection, tenant: str) -> dict[str, Usage]:
    get_tenant(conn, tenant)
    return {k: Usage(lim, used(conn, tenant, k)) for k, lim in limits(conn, tenant).items()}


def set_(conn: Connection, tenant: str, values: dict[str, int | float | None]) -> dict[str, Usage]:
    """Set the quotas named in ``values`` (``None``: no limit); the others stay."""
    get_tenant(conn, tenant)
    values = dict(values)
    rate = values.pop(RATE) if RATE in values else ingest_rate(conn, tenant)
    if rate is not None and not (isinstance(rate, int | float) and rate > 0):
        raise InvalidInput("quota ingest_rate must be > 0 points/s, or null for no limit")
    points = values.pop(STORAGE) if STORAGE in values else storage_limit(conn, tenant)
    if points is not None and not (isinstance(points, int) and points >= 0):
        raise InvalidInput("quota storage_points must be a whole number >= 0, or null")
    unknown = set(values) - set(KINDS)
    if unknown:
        raise InvalidInput(f"unknown quota(s): {', '.join(sorted(unknown))}")
    for k, v in values.items():
        if v is not None and (not isinstance(v, int) or v < 0):
            raise InvalidInput(f"quota {k} must be a whole number >= 0, or null for no limit")
    merged = limits(conn, tenant) | values
    conn.execute(delete(t.tenant_quotas).where(t.tenant_quotas.c.tenant == tenant))
    conn.execute(
        insert(t.tenant_quotas).values(
            tenant=tenant,
            ingest_rate=rate,
            max_points=points,
            **{KINDS[k]: merged[k] for k in KINDS},
        )
    )
    return usage(conn, tenant)


def check(conn: Connection, tenant: str, kind: str, adding: int = 1) -> None:
    """Raise ``QuotaExceeded`` if ``adding`` more of ``kind`` would pass the tenant's quota."""
    limit = limits(conn, tenant)[kind]
    if limit is None:
        return
    n = used(conn, tenant, kind)
    if n + adding > limit:
        raise QuotaExceeded(
            f"enterprise {tenant!r} is at its {WHAT[kind]} quota: {n} of {limit} used"
            + (f", {adding} more asked" if adding > 1 else ""),
            hint=(
                f"delete unused {WHAT[kind]}s, or ask the platform operator to raise the "
                f"'{kind}' quota (console: Lab > {tenant} > Quotas; "
                f"`atoll tenants quota {tenant} --{kind.replace('_', '-')} N`)"
            ),
        )
