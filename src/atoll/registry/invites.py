"""One-time invitations: a random token (stored as SHA-256) that lets one person set their
password and become a console user of a tenant, once, before it expires (docs/SECURITY.md)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, select, update

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.keys import check_role
from atoll.registry.models import Invite, NewInvite, Role
from atoll.registry.namespaces import MAX_USERNAME, qualify_username
from atoll.registry.tenants import get_tenant
from atoll.registry.tokens import hash_secret, new_id, new_secret, now_us

DEFAULT_TTL_S = 7 * 24 * 3600
MAX_TTL_S = 30 * 24 * 3600
TOKEN_PREFIX = "inv_"


def _invite(row) -> Invite:
    return Invite(
        row.id,
        row.tenant,
        row.username,
        row.role,
        row.created_by,
        row.created_at,
        row.expires_at,
        row.used_at,
        bool(row.revoked),
    )


def _username_taken(conn: Connection, username: str) -> bool:
    q = select(t.users.c.username).where(t.users.c.username == username)
    return conn.execute(q).first() is not None


def create(
    conn: Connection,
    tenant: str,
    username: str,
    role: str,
    created_by: str,
    ttl_s: float = DEFAULT_TTL_S,
) -> NewInvite:
    get_tenant(conn, tenant)
    check_role(role)
    if not username or len(username) > MAX_USERNAME:
        raise InvalidInput(f"username must have 1-{MAX_USERNAME} characters")
    if not 60 <= ttl_s <= MAX_TTL_S:
        raise InvalidInput(f"an invite lasts between 1 minute and {MAX_TTL_S // 86400} days")
    username = qualify_username(tenant, username)
    if _username_taken(conn, username):
        raise Conflict(f"user {username!r} already exists")
    now = now_us()
    pending = conn.execute(
        select(t.invites.c.id).where(
            t.invites.c.username == username,
            t.invites.c.used_at.is_(None),
            t.invites.c.revoked.is_(False),
            t.invites.c.expires_at > now,
        )
    ).first()
    if pending is not None:
        raise Conflict(
            f"user {username!r} has a pending invite ({pending.id})",
            hint="revoke it first to send a new link",
        )
    token = TOKEN_PREFIX + new_secret()
    invite = Invite(
        new_id("inv-"),
        tenant,
        username,
        cast(Role, role),  # checked above
        created_by,
        now,
        now + int(ttl_s * 1e6),
    )
    conn.execute(
        t.invites.insert().values(
            id=invite.id,
            tenant=tenant,
            username=username,
            role=role,
            token_hash=hash_secret(token),
            created_by=created_by[:200],
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            used_at=None,
            revoked=False,
        )
    )
    return NewInvite(invite, token)


def list_(conn: Connection, tenant: str) -> list[Invite]:
    q = select(t.invites).where(t.invites.c.tenant == tenant).order_by(t.invites.c.created_at)
    return [_invite(r) for r in conn.execute(q)]


def revoke(conn: Connection, tenant: str, invite_id: str) -> Invite:
    row = conn.execute(
        select(t.invites).where(t.invites.c.id == invite_id, t.invites.c.tenant == tenant)
    ).first()
    if row is None:
        raise NotFound(f"invite {invite_id!r} not found")
    if row.used_at is not None:
        raise Conflict(f"invite {invite_id!r} was used already", hint="disable the user instead")
    conn.execute(update(t.invites).where(t.invites.c.id == invite_id).values(revoked=True))
    return _invite_by_id(conn, invite_id)


def _invite_by_id(conn: Connection, invite_id: str) -> Invite:
    row = conn.execute(select(t.invites).where(t.invites.c.id == invite_id)).first()
    assert row is not None
    return _invite(row)


def usable(conn: Connection, token: str) -> Invite | None:
    """The pending invite of ``token``; ``None`` for an unknown, used, revoked or expired one
    (the caller cannot tell which: a guessed token learns nothing)."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(
        select(t.invites).where(t.invites.c.token_hash == hash_secret(token))
    ).first()
    if row is None:
        return None
    invite = _invite(row)
    return invite if invite.state(now_us()) == "pending" else None


def mark_used(conn: Connection, invite: Invite) -> bool:
    """Claim the invite; ``False`` if someone else claimed it first (single use)."""
    res = conn.execute(
        update(t.invites)
        .where(t.invites.c.id == invite.id, t.invites.c.used_at.is_(None))
        .values(used_at=now_us())
    )
    return (res.rowcount or 0) == 1
