"""Per-device counters of refused messages, by transport and reason."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from atoll.registry import tables as t
from atoll.registry.models import Rejection


def record(
    conn: Connection, device_id: str, transport: str, reason: str, message: str, at: int, n: int = 1
) -> None:
    message = message[:500]
    res = conn.execute(
        update(t.rejections)
        .where(
            t.rejections.c.device == device_id,
            t.rejections.c.transport == transport,
            t.rejections.c.reason == reason,
        )
        .values(count=t.rejections.c.count + n, last_at=at, last_message=message)
    )
    if not res.rowcount:
        conn.execute(
            insert(t.rejections).values(
                device=device_id,
                transport=transport,
                reason=reason,
                count=n,
                last_at=at,
                last_message=message,
            )
        )


def list_(conn: Connection, device_id: str) -> list[Rejection]:
    q = (
        select(t.rejections)
        .where(t.rejections.c.device == device_id)
        .order_by(t.rejections.c.transport, t.rejections.c.reason)
    )
    return [
        # ``count`` by key: as an attribute, Row's type is tuple's count() method.
        Rejection(r.device, r.transport, r.reason, r._mapping["count"], r.last_at, r.last_message)
        for r in conn.execute(q)
    ]
