"""Maintenance records: failures, repairs, part replacements and inspections per device.

A failure ends a device's run; the history between two failures (or from the device's first
reading to its first failure) is one run-to-failure trajectory, what RUL models learn from.
Records are validated here, where they enter the registry; a bulk import is all or nothing, and
its errors name the line.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from atoll.core.errors import InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.models import MAINTENANCE_KINDS, MaintenanceEvent
from atoll.registry.tokens import new_id, now_us

MAX_NOTE = 2000
MAX_PART = 200
MAX_IMPORT_ROWS = 50_000
CSV_COLUMNS = ("device", "at", "kind", "part", "cost", "note")
KINDS_HINT = f"kind is one of {', '.join(MAINTENANCE_KINDS)}"


def _event(row: Any) -> MaintenanceEvent:
    return MaintenanceEvent(
        row.id,
        row.device,
        row.kind,
        row.at,
        row.created_at,
        row.recorded_by,
        row.part,
        row.cost,
        row.note,
    )


def check(
    kind: str, at: int, part: str | None, cost: float | None, note: str | None
) -> dict[str, Any]:
    """The columns of a valid record (``InvalidInput`` with the reason otherwise)."""
    if kind not in MAINTENANCE_KINDS:
        raise InvalidInput(f"unknown maintenance kind {kind!r}", hint=KINDS_HINT)
    if at > now_us() + 86_400_000_000:
        raise InvalidInput("a maintenance record cannot be more than a day in the future")
    if part is not None and (not part.strip() or len(part) > MAX_PART):
        raise InvalidInput(f"part must have 1-{MAX_PART} characters (or be left out)")
    if cost is not None and (not math.isfinite(cost) or cost < 0):
        raise InvalidInput("cost must be a finite number >= 0")
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"note is longer than {MAX_NOTE} characters")
    return {"kind": kind, "at": at, "part": part, "cost": cost, "note": note or ""}


def record(conn: Connection, device: str, actor: str, **fields: Any) -> MaintenanceEvent:
    row = {
        "id": new_id("mt-", 8),
        "device": device,
        "recorded_by": actor,
        "created_at": now_us(),
        **check(**fields),
    }
    conn.execute(insert(t.maintenance).values(**row))
    return MaintenanceEvent(**row)


def list_(
    conn: Connection,
    devices: Iterable[str],
    *,
    kind: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 1000,
) -> list[MaintenanceEvent]:
    """Records of ``devices``, newest first."""
    m = t.maintenance.c
    q = select(t.maintenance).where(m.device.in_(list(devices)))
    if kind is not None:
        if kind not in MAINTENANCE_KINDS:
            raise InvalidInput(f"unknown maintenance kind {kind!r}", hint=KINDS_HINT)
        q = q.where(m.kind == kind)
    if since is not None:
        q = q.where(m.at >= since)
    if until is not None:
        q = q.where(m.at < until)
    rows = conn.execute(q.order_by(m.at.desc(), m.id).limit(limit)).all()
    return [_event(r) for r in rows]


def remove(conn: Connection, device: str, event_id: str) -> MaintenanceEvent:
    m = t.maintenance.c
    row = conn.execute(
        select(t.maintenance).where(and_(m.device == device, m.id == event_id))
    ).first()
    if row is None:
        raise NotFound(f"maintenance record {event_id!r} of device {device!r} not found")
    conn.execute(delete(t.maintenance).where(m.id == event_id))
    return _event(row)


def parse_csv(text: str, parse_at: Any) -> list[dict[str, Any]]:
    """Rows of a maintenance CSV (header ``device,at,kind[,part,cost,note]``), each checked;
    ``parse_at(str) -> µs`` reads the times. Every bad line is reported (up to 20), none kept."""
    try:
        return _parse_csv(text, parse_at)
    except csv.Error as exc:
        raise InvalidInput(
            f"not a readable CSV: {exc}", hint=f"header: {','.join(CSV_COLUMNS)}"
        ) from None


def _parse_csv(text: str, parse_at: Any) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("device", "at", "kind") if c not in header]
    if missing:
        raise InvalidInput(
            f"the CSV has no {', '.join(missing)} column",
            hint=f"header: {','.join(CSV_COLUMNS)} (part, cost and note may be empty)",
        )
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"unknown CSV columns {unknown}", hint=f"columns: {','.join(CSV_COLUMNS)}"
        )
    rows, errors = [], []
    for line, raw in enumerate(reader, start=2):
        r = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        try:
            if not r.get("device"):
                raise InvalidInput("device is empty")
            cost = r.get("cost") or None
            fields = check(
                r.get("kind", ""),
                parse_at(r.get("at", "")),
                r.get("part") or None,
                float(cost) if cost is not None else None,
                r.get("note") or None,
            )
        except (InvalidInput, ValueError) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else f"not a number: {exc}"
            errors.append(f"line {line}: {msg}")
            if len(errors) == 20:
                break
            continue
        rows.append({"device": r["device"], **fields})
        if len(rows) > MAX_IMPORT_ROWS:
            raise InvalidInput(f"more than {MAX_IMPORT_ROWS} rows: split the file")
    if errors:
        raise InvalidInput(
            f"{len(errors)} bad line(s), nothing imported: " + "; ".join(errors),
            hint=f"header: {','.join(CSV_COLUMNS)}; {KINDS_HINT}",
        )
    if not rows:
        raise InvalidInput("the CSV has no rows")
    return rows


def insert_many(conn: Connection, rows: list[dict[str, Any]], actor: str) -> int:
    now = now_us()
    conn.execute(
        insert(t.maintenance),
        [{"id": new_id("mt-", 8), "recorded_by": actor, "created_at": now, **r} for r in rows],
    )
    return len(rows)
