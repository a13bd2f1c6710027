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
                t.devices.c.kind,
                t.devices.c.parent,
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
            identity = _identity(row, metrics)
            out[row.id] = (row.secret_hash, bool(row.disabled), identity)
    return out


def _identity(row, metrics: dict | None) -> DeviceIdentity:
    return DeviceIdentity(
        row.id, row.project, row.tenant, row.device_type, metrics, row.kind or "device", row.parent
    )


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
            t.devices.c.kind,
            t.devices.c.parent,
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
    identity = _identity(row, metrics)
    return row.secret_hash, bool(row.disabled), identity


class AuthCache:
    """Positive lookups only, so a wrong secret always costs a database read.

    Entries expire after ``ttl`` seconds so changes made by another process (a second ingest worker)
    take effect within that time; in-process changes invalidate immediately.
    """

    def __init__(
        self, ttl: float = 30.0, max_entries: int = 100_000, unknown_ttl: float = 1.0
    ) -> None:
        self.ttl = ttl
        self.unknown_ttl = min(ttl, unknown_ttl)
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._known: dict[str, tuple[float, DeviceIdentity | None]] = {}
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

    def known(self, device_id: str) -> tuple[bool, DeviceIdentity | None]:
        """A device's identity looked up by id alone (the devices a gateway speaks for, which
        authenticate nothing themselves): ``(True, identity or None if unknown)`` while
        remembered, else ``(False, None)``."""
        hit = self._known.get(device_id)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def remember(self, device_id: str, identity: DeviceIdentity | None) -> None:
        """Remember a look-up by id (``None``: no such device, for ``unknown_ttl`` only, so a
        device registered by another process is known soon)."""
        ttl = self.ttl if identity is not None else self.unknown_ttl
        with self._lock:
            if len(self._known) >= self.max_entries:
                self._known.clear()
            self._known[device_id] = (time.monotonic() + ttl, identity)

    def invalidate(self, device_id: str | None = None) -> None:
        with self._lock:
            if device_id is None:
                self._entries.clear()
                self._known.clear()
            else:
                self._entries.pop(device_id, None)
                self._known.pop(device_id, None)
