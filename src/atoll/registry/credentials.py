"""Per-device secrets and the fast ``authenticate_device`` path with its positive cache."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from atoll.registry import device_types
from atoll.registry import tables as t
from atoll.registry.models import DeviceCredentials, DeviceIdentity
from atoll.registry.tokens import hash_secret, new_secret


def issue(conn: Connection, device_id: str) -> DeviceCredentials:
    """Give the device a new secret (registration or rotation); the old one stops working."""
    secret = new_secret()
    conn.execute(
        update(t.devices).where(t.devices.c.id == device_id).values(secret_hash=hash_secret(secret))
    )
    return DeviceCredentials(device_id, secret)


def revoke(conn: Connection, device_id: str) -> None:
    conn.execute(update(t.devices).where(t.devices.c.id == device_id).values(secret_hash=None))


def load_many(
    conn: Connection, device_ids: list[str]
) -> dict[str, tuple[str | None, bool, DeviceIdentity]]:
    """``load`` of many devices: one query per 500 of them, each device type read once."""
    out: dict[str, tuple[str | None, bool, DeviceIdentity]] = {}
    schemas: dict[tuple[str, str], dict | None] = {}
    for i in range(0, len(device_ids), 500):
        rows = conn.execute(
            select(
                t.devices.c.id,
                t.devices.c.project,
                t.devices.c.device_type,
                t.devices.c.secret_hash,
                t.devices.c.disabled,
                t.projects.c.tenant,
            )
            .join(t.projects, t.projects.c.id == t.devices.c.project)
            .where(t.devices.c.id.in_(device_ids[i : i + 500]))
        )
        for row in rows:
            metrics = None
            if row.device_type is not None:
                kind = (row.project, row.device_type)
                if kind not in schemas:
                    dt = device_types.get_or_none(conn, *kind)
                    schemas[kind] = None if dt is None else {m.name: m for m in dt.metrics}
                metrics = schemas[kind]
            identity = DeviceIdentity(row.id, row.project, row.tenant, row.device_type, metrics)
            out[row.id] = (row.secret_hash, bool(row.disabled), identity)
    return out


@dataclass(frozen=True, slots=True)
class _Entry:
    secret_hash: str
    identity: DeviceIdentity
    expires: float


def load(conn: Connection, device_id: str) -> tuple[str | None, bool, DeviceIdentity] | None:
    """``(secret_hash, disabled, identity)`` of a device, or ``None`` if unknown."""
    row = conn.execute(
        select(
            t.devices.c.id,
            t.devices.c.project,
            t.devices.c.device_type,
            t.devices.c.secret_hash,
            t.devices.c.disabled,
            t.projects.c.tenant,
        )
        .join(t.projects, t.projects.c.id == t.devices.c.project)
        .where(t.devices.c.id == device_id)
    ).first()
    if row is None:
        return None
    metrics = None
    if row.device_type is not None:
        dt = device_types.get_or_none(conn, row.project, row.device_type)
        if dt is not None:
            metrics = {m.name: m for m in dt.metrics}
    identity = DeviceIdentity(row.id, row.project, row.tenant, row.device_type, metrics)
    return row.secret_hash, bool(row.disabled), identity


class AuthCache:
    """Positive lookups only, so a wrong secret always costs a database read.

    Entries expire after ``ttl`` seconds so changes made by another process (a second ingest worker)
    take effect within that time; in-process changes invalidate immediately.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def check(self, device_id: str, secret: str) -> DeviceIdentity | None:
        entry = self._entries.get(device_id)
        if entry is None or entry.expires < time.monotonic():
            return None
        if hmac.compare_digest(hash_secret(secret), entry.secret_hash):
            return entry.identity
        return None

    def put(self, secret_hash: str, identity: DeviceIdentity) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[identity.device] = _Entry(
                secret_hash, identity, time.monotonic() + self.ttl
            )

    def invalidate(self, device_id: str | None = None) -> None:
        with self._lock:
            if device_id is None:
                self._entries.clear()
            else:
                self._entries.pop(device_id, None)
