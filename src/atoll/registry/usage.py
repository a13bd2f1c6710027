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

from sqlalchemy import (
    Connection,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from atoll.registry import tables as t
from atoll.registry.models import UsageDay

#: ``(tenant, project, day)``: one counter row.
Key = tuple[str, str, str]


def day_of(ts_us: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a timestamp in µs."""
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).date().isoformat()


def hour_of(ts_us: int) -> str:
    """The UTC hour (``YYYY-MM-DDTHH``) of a timestamp in µs.

    >>> hour_of(1_795_428_000_000_000)
    '2026-11-23T10'
    """
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H")


def _existing(conn: Connection, table: Table, period: str, keys: Iterable[Key]) -> set[Key]:
    keys = list(keys)
    c = table.c
    found: set[Key] = set()
    for i in range(0, len(keys), 300):
        chunk = keys[i : i + 300]
        q = select(c.tenant, c.project, c[period]).where(
            or_(*(and_(c.tenant == a, c.project == b, c[period] == d) for a, b, d in chunk))
        )
        found.update((r[0], r[1], r[2]) for r in conn.execute(q))
    return found


def _add(table: Table, period: str) -> Update:
    c = table.c
    return (
        update(table)
        .where(
            c.tenant == bindparam("k_tenant"),
            c.project == bindparam("k_project"),
            c[period] == bindparam("k_period"),
        )
        .values(
            messages=c.messages + bindparam("k_messages"),
            points=c.points + bindparam("k_points"),
            api_calls=c.api_calls + bindparam("k_api_calls"),
        )
    )


_ADD = {"day": _add(t.usage_daily, "day"), "hour": _add(t.usage_hourly, "hour")}


def add_many(
    conn: Connection, counts: Mapping[Key, tuple[int, int, int]], *, hourly: bool = False
) -> None:
    """Add ``(messages, points, api_calls)`` to each key's counters, creating missing rows; the
    keys' periods are days (``usage_daily``) or, ``hourly``, hours (``usage_hourly``)."""
    if not counts:
        return
    table, period = (t.usage_hourly, "hour") if hourly else (t.usage_daily, "day")
    existing = _existing(conn, table, period, counts)
    bump, new = [], []
    for key, (messages, points, api_calls) in counts.items():
        if key in existing:
            bump.append(
                {
                    "k_tenant": key[0],
                    "k_project": key[1],
                    "k_period": key[2],
                    "k_messages": messages,
                    "k_points": points,
                    "k_api_calls": api_calls,
                }
            )
        else:
            row = {
                "tenant": key[0],
                "project": key[1],
                period: key[2],
                "messages": messages,
                "points": points,
                "api_calls": api_calls,
            }
            new.append(row if hourly else {**row, "storage_points": None})
    if bump:
        conn.execute(_ADD[period], bump)
    if new:
        conn.execute(insert(table), new)


def hourly(
    conn: Connection, tenants: Iterable[str], since: str, until: str
) -> list[tuple[str, str, str, int, int, int]]:
    """``(tenant, project, hour, messages, points, api_calls)`` from hour ``since`` to hour
    ``until`` inclusive."""
    c = t.usage_hourly.c
    q = (
        select(c.tenant, c.project, c.hour, c.messages, c.points, c.api_calls)
        .where(c.tenant.in_(list(tenants)), c.hour >= since, c.hour <= until)
        .order_by(c.hour)
    )
    return [(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in conn.execute(q)]


def prune_hourly(conn: Connection, before: str) -> int:
    """Forget the hourly counters of hours before ``before``; how many rows went."""
    return int(conn.execute(delete(t.usage_hourly).where(t.usage_hourly.c.hour < before)).rowcount)


def set_storage(conn: Connection, day: str, held: Mapping[tuple[str, str], int]) -> None:
    """Record ``{(tenant, project): points held}`` as a sample of ``day``: the day keeps its
    largest sample."""
    if not held:
        return
    keys = {(tenant, project, day) for tenant, project in held}
    existing = _existing(conn, t.usage_daily, "day", keys)
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


#: Days the hourly counters are kept (the lab's 24-hour trends need one).
HOURLY_DAYS = 8

__all__ = [
    "HOURLY_DAYS",
    "Key",
    "add_many",
    "day_of",
    "hour_of",
    "hourly",
    "prune_hourly",
    "query",
    "set_storage",
]
