"""A lease in the rules database: at most one holder at a time, taken over once it expires.

Every rules process of a deployment shares the rules database. The timer pass (time-based
conditions, escalation, repeats, scheduled reports) runs only in the process holding the
``timers`` lease, so two processes never send one escalation twice. The holder renews it on
each pass; when it stops (or dies) another process takes it over (at once after a clean stop,
after ``ttl`` otherwise). Taking and renewing are one conditional write each (compare and
set on the holder and expiry), so they work on SQLite and PostgreSQL alike. Expiry uses the
processes' clocks: their skew must stay well under ``ttl``.
"""

from __future__ import annotations

import os
import socket
import uuid

import sqlalchemy as sa

from atoll.rules import db as _db


def holder_id() -> str:
    """Unique per process start: host, pid and a random part."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, engine: sa.Engine, name: str, holder: str, ttl_us: int) -> None:
        self.engine, self.name, self.holder, self.ttl_us = engine, name, holder, ttl_us

    def acquire(self, now_us: int) -> bool:
        """Take or renew the lease at ``now_us``; whether this process holds it now."""
        t = _db.leases
        with self.engine.begin() as c:
            taken = c.execute(
                sa.update(t)
                .where(t.c.name == self.name)
                .where(sa.or_(t.c.holder == self.holder, t.c.expires_at <= now_us))
                .values(holder=self.holder, expires_at=now_us + self.ttl_us)
            ).rowcount
        if taken == 1:
            return True
        try:  # nobody ever held it: the first insert wins, a concurrent one fails
            with self.engine.begin() as c:
                c.execute(
                    sa.insert(t).values(
                        name=self.name, holder=self.holder, expires_at=now_us + self.ttl_us
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def release(self) -> None:
        """Give it up now (a clean stop), if this process holds it."""
        t = _db.leases
        with self.engine.begin() as c:
            c.execute(
                sa.update(t)
                .where(t.c.name == self.name, t.c.holder == self.holder)
                .values(expires_at=0)
            )
