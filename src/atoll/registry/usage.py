"""Usage metering: per enterprise, project and UTC day, messages and points stored, API calls,
and the store's size (``tables.usage_daily``).

Counting happens in memory where the work is done (the ingest pipeline's commit, the API's
authentication) and reaches the database about once a second as additions, so several nodes
metering the same project add up instead of overwriting each other. A counter is created by the
first addition of its day; two nodes creating the same one at once is resolved by retrying the
loser as an addition (``add_many`` raises ``IntegrityError`` for its transaction to be redone).

>>> day_of(1_795_428_000_000_000)
'2026-11-23'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from atoll.registry import tables as t
from atoll.registry.models import UsageDay

#: ``(tenant, project, day)``: one counter row.
Key = tuple[str, str, str]


def day_of(ts_us: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a timestamp in µs."""
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).date().isoformat()


def _existing(conn: Connection, keys: Iterable[Key]) -> set[Key]:
    keys = list(keys)
    c = t.usage_daily.c
    found: set[Key] = set()
    for i in range(0, len(keys), 300):
        chunk = keys[i : i + 300]
        q = select(c.tenant, c.project, c.day).where(
            or_(*(and_(c.tenant == a, c.project == b, c.day == d) for a, b, d in chunk))
        )
        found.update((r[0], r[1], r[2]) for r in conn.execute(q))
    return found


_ADD = (
    update(t.usage_daily)
    .where(
        t.usage_daily.c.tenant == bindparam("k_tenant"),
        t.usage_daily.c.project == bindparam("k_project"),
        t.usage_daily.c.day == bindparam("k_day"),
    )
    .values(
        messages=t.usage_daily.c.messages + bindparam("k_messages"),
        points=t.usage_daily.c.points + bindparam("k_points"),
        api_calls=t.usage_daily.c.api_calls + bindparam("k_api_calls"),
    )
)


def add_many(conn: Connection, counts: Mapping[Key, tuple[int, int, int]]) -> None:
    """Add ``(messages, points, api_calls)`` to each key's counters, creating missing rows."""
    if not counts:
        return
    existing = _existing(conn, counts)
    bump, new = [], []
    for key, (messages, points, api_calls) in counts.items():
        if key in existing:
            bump.append(
                {
                    "k_tenant": key[0],
                    "k_project": key[1],
                    "k_day": key[2],
                    "k_messages": messages,
                    "k_points": points,
                    "k_api_calls": api_calls,
                }
            )
        else:
            new.append(
                {
                    "tenant": key[0],
                    "project": key[1],
                    "day": key[2],
                    "messages": messages,
                    "points": points,
                    "api_calls": api_calls,
                    "storage_points": None,
                }
            )
    if bump:
        conn.execute(_ADD, bump)
    if new:
        conn.execute(insert(t.usage_daily), new)


def set_storage(conn: Connection, day: str, held: Mapping[tuple[str, str], int]) -> None:
    """Record ``{(tenant, project): points held}`` as a sample of ``day``: the day keeps its
    largest sample."""
    if not held:
        return
    keys = {(tenant, project, day) for tenant, project in held}
    existing = _existing(conn, keys)
    c = t.usage_daily.c
    for (tenant, project), n in held.items():
        if (tenant, project, day) in existing:
            conn.execute(
                update(t.usage_daily)
                .where(
                    c.tenant == tenant,
                    c.project == project,
                    c.day == day,
                    or_(c.storage_points.is_(None), c.storage_points < n),
                )
                .values(storage_points=n)
            )
        else:
            conn.execute(
                insert(t.usage_daily).values(
                    tenant=tenant,
                    project=project,
                    day=day,
                    messages=0,
                    points=0,
                    api_calls=0,
                    storage_points=n,
                )
            )


def query(
    conn: Connection,
    tenants: Iterable[str],
    *,
    projects: Iterable[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> list[UsageDay]:
    """The rows of ``tenants`` (and ``projects``, ``""`` being the enterprise's own), from day
    ``since`` to day ``until`` inclusive, oldest day first."""
    c = t.usage_daily.c
    q = select(t.usage_daily).where(c.tenant.in_(list(tenants)))
    if projects is not None:
        q = q.where(c.project.in_(list(projects)))
    if since is not None:
        q = q.where(c.day >= since)
    if until is not None:
        q = q.where(c.day <= until)
    q = q.order_by(c.day, c.tenant, c.project)
    if limit is not None:
        q = q.limit(limit)
    return [
        UsageDay(
            tenant=r.tenant,
            project=r.project,
            day=r.day,
            messages=r.messages,
            points=r.points,
            api_calls=r.api_calls,
            storage_points=r.storage_points,
        )
        for r in conn.execute(q)
    ]


__all__ = ["Key", "add_many", "day_of", "query", "set_storage"]
