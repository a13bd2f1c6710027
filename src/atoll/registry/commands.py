"""Cloud-to-device commands: pending → delivered → acked | failed | expired."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import Connection, and_, insert, select, update

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.models import COMMAND_FINAL, Command
from atoll.registry.tokens import new_id, now_us


@runtime_checkable
class CommandSender(Protocol):
    async def send_command(self, command: Command) -> None:
        """Publish ``{"name", "args"}`` on the device's
        command topic. Raise if it could not be handed over."""

    async def publish_desired(self, device: str, desired: dict[str, Any], version: int) -> None:
        """Publish the whole desired document (retained) on the device's ``twin/desired`` topic."""


DEFAULT_TTL_S = 300
MAX_TTL_S = 7 * 86400
MAX_ARGS_BYTES = 16 * 1024
# Which status may follow which. An ack may overtake the "delivered" mark (fast devices).
_NEXT = {
    "pending": {"delivered", "acked", "failed", "expired"},
    "delivered": {"acked", "failed", "expired"},
}


def _cmd(row) -> Command:
    return Command(
        row.id,
        row.device,
        row.name,
        dict(row.args),
        row.status,
        row.created_at,
        row.updated_at,
        row.expires_at,
        row.result,
    )


def create(
    conn: Connection,
    device_id: str,
    name: str,
    args: Mapping[str, Any] | None,
    ttl_s: float = DEFAULT_TTL_S,
) -> Command:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidInput("command name must have 1-200 characters")
    args = dict(args or {})
    try:
        size = len(orjson.dumps(args))
    except TypeError as exc:  # e.g. an integer beyond 64 bits: it could not be stored or sent
        raise InvalidInput(f"command args are not JSON-serialisable: {exc}") from None
    if size > MAX_ARGS_BYTES:
        raise InvalidInput(f"command args exceed {MAX_ARGS_BYTES} bytes")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise InvalidInput(f"ttl must be between 0 and {MAX_TTL_S} seconds")
    now = now_us()
    row: dict[str, Any] = {
        "id": new_id("c-", 8),
        "device": device_id,
        "name": name,
        "args": args,
        "status": "pending",
        "result": None,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + int(ttl_s * 1e6),
    }
    conn.execute(insert(t.commands).values(**row))
    return Command(**{k: v for k, v in row.items()})


def expire(conn: Connection, now: int | None = None, device_id: str | None = None) -> int:
    now = now or now_us()
    cond = and_(t.commands.c.status.in_(("pending", "delivered")), t.commands.c.expires_at < now)
    if device_id is not None:
        cond = and_(cond, t.commands.c.device == device_id)
    res = conn.execute(update(t.commands).where(cond).values(status="expired", updated_at=now))
    return res.rowcount or 0


def get(conn: Connection, device_id: str, command_id: str) -> Command:
    row = conn.execute(
        select(t.commands).where(t.commands.c.id == command_id, t.commands.c.device == device_id)
    ).first()
    if row is None:
        raise NotFound(f"command {command_id!r} not found for device {device_id!r}")
    return _cmd(row)


def list_(
    conn: Connection, device_id: str, *, status: str | None = None, limit: int = 100
) -> list[Command]:
    expire(conn, device_id=device_id)
    q = select(t.commands).where(t.commands.c.device == device_id)
    if status is not None:
        q = q.where(t.commands.c.status == status)
    q = q.order_by(t.commands.c.created_at.desc(), t.commands.c.id).limit(limit)
    return [_cmd(r) for r in conn.execute(q)]


def set_status(
    conn: Connection, device_id: str, command_id: str, status: str, result: Any = None
) -> Command:
    """Move a command on. Late or repeated acks for a finished command raise ``Conflict``."""
    expire(conn, device_id=device_id)
    cmd = get(conn, device_id, command_id)
    if status == cmd.status and status in COMMAND_FINAL:
        raise Conflict(f"command {command_id!r} is already {cmd.status}")
    if status not in _NEXT.get(cmd.status, ()):
        raise Conflict(f"command {command_id!r} is {cmd.status}; it cannot become {status}")
    values: dict[str, Any] = {"status": status, "updated_at": now_us()}
    if status in ("acked", "failed"):
        values["result"] = result
    conn.execute(update(t.commands).where(t.commands.c.id == command_id).values(**values))
    return get(conn, device_id, command_id)
