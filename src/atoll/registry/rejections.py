"""Per-device counters of refused messages, by transport and reason."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, bindparam, insert, select, update

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


_BUMP = (
    update(t.rejections)
    .where(
        t.rejections.c.device == bindparam("b_device"),
        t.rejections.c.transport == bindparam("b_transport"),
        t.rejections.c.reason == bindparam("b_reason"),
    )
    .values(
        count=t.rejections.c.count + bindparam("b_n"),
        last_at=bindparam("b_at"),
        last_message=bindparam("b_message"),
    )
)
#: Devices per look-up of the counters that exist (under every database's parameter limit).
_CHUNK = 500


def record_many(
    conn: Connection, counts: Mapping[tuple[str, str, str], tuple[int, int, str]]
) -> None:
    """``record`` for many ``(device, transport, reason) -> (count, last_at, message)`` at once:
    one look-up per few hundred devices, then one statement for the counters that exist and one
    for the new ones, each executed for all rows (a fleet over its rate limit has a counter per
    device: one statement each cost a few percent of the broker's CPU with 10,000 devices)."""
    if not counts:
        return
    devices = sorted({k[0] for k in counts})
    cols = (t.rejections.c.device, t.rejections.c.transport, t.rejections.c.reason)
    existing: set[tuple[str, str, str]] = set()
    for i in range(0, len(devices), _CHUNK):
        q = select(*cols).where(t.rejections.c.device.in_(devices[i : i + _CHUNK]))
        existing.update((r[0], r[1], r[2]) for r in conn.execute(q))
    bump, new = [], []
    for (device, transport, reason), (n, at, message) in counts.items():
        if (device, transport, reason) in existing:
            bump.append(
                {
                    "b_device": device,
                    "b_transport": transport,
                    "b_reason": reason,
                    "b_n": n,
                    "b_at": at,
                    "b_message": message[:500],
                }
            )
        else:
            new.append(
                {
                    "device": device,
                    "transport": transport,
                    "reason": reason,
                    "count": n,
                    "last_at": at,
                    "last_message": message[:500],
                }
            )
    if bump:
        conn.execute(_BUMP, bump)
    if new:
        conn.execute(insert(t.rejections), new)


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
