"""Tenant-scoped API keys. A token is ``atk_<key
id>_<secret>``; only the secret's SHA-256 is kept."""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, insert, select, update

from atoll.core.errors import InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.models import ROLES, ApiKey, NewApiKey, Principal
from atoll.registry.tenants import get_tenant
from atoll.registry.tokens import hash_secret, new_id, new_secret, now_us

PREFIX = "atk_"


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _key(row) -> ApiKey:
    return ApiKey(
        row.id,
        row.tenant,
        row.name,
        row.role,
        bool(row.platform_admin),
        row.created_at,
        row.expires_at,
        bool(row.revoked),
    )


def create(
    conn: Connection,
    tenant: str,
    name: str,
    role: str,
    *,
    platform_admin: bool = False,
    expires_at: int | None = None,
) -> NewApiKey:
    get_tenant(conn, tenant)
    check_role(role)
    key_id = new_id("", 8)
    secret = new_secret()
    row: dict[str, Any] = {
        "id": key_id,
        "tenant": tenant,
        "name": name or key_id,
        "role": role,
        "platform_admin": platform_admin,
        "created_at": now_us(),
        "expires_at": expires_at,
        "revoked": False,
    }
    conn.execute(insert(t.api_keys).values(secret_hash=hash_secret(secret), **row))
    return NewApiKey(ApiKey(**row), f"{PREFIX}{key_id}_{secret}")


def authenticate(conn: Connection, token: str) -> Principal | None:
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
    if row is None or row.revoked:
        return None
    if not hmac.compare_digest(hash_secret(secret), row.secret_hash):
        return None
    if row.expires_at is not None and row.expires_at < now_us():
        return None
    return Principal(row.tenant, row.role, row.id, row.name, bool(row.platform_admin))


def list_(conn: Connection, tenant: str) -> list[ApiKey]:
    q = select(t.api_keys).where(t.api_keys.c.tenant == tenant).order_by(t.api_keys.c.created_at)
    return [_key(r) for r in conn.execute(q)]


def revoke(conn: Connection, tenant: str, key_id: str) -> ApiKey:
    row = conn.execute(
        select(t.api_keys).where(t.api_keys.c.id == key_id, t.api_keys.c.tenant == tenant)
    ).first()
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked=True))
    return replace(_key(row), revoked=True)


SESSION_PREFIX = "session:"


def revoke_sessions(
    conn: Connection, tenant: str, username: str, *, keep: str | None = None
) -> int:
    """End a console user's sessions (password, role or status changed, or user deleted),
    all but the session ``keep`` (a key id) if given."""
    q = update(t.api_keys).where(
        t.api_keys.c.tenant == tenant,
        t.api_keys.c.name == SESSION_PREFIX + username,
        t.api_keys.c.revoked.is_(False),
    )
    if keep is not None:
        q = q.where(t.api_keys.c.id != keep)
    res = conn.execute(q.values(revoked=True))
    return res.rowcount or 0
