"""Console users with argon2 password hashes."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, insert, select, update

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.keys import check_role
from atoll.registry.models import User
from atoll.registry.namespaces import qualify_username
from atoll.registry.tenants import get_tenant
from atoll.registry.tokens import now_us

MIN_PASSWORD = 10
MAX_PASSWORD = 1000
DEFAULT_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_dummy: dict[int, str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    # Verifying against this keeps "unknown user" as slow as "wrong password".
    key = id(hasher)
    if key not in _dummy:
        _dummy[key] = hasher.hash("atoll-timing-equaliser")
    return _dummy[key]


def _user(row) -> User:
    return User(
        row.username,
        row.tenant,
        row.role,
        row.created_at,
        bool(row.disabled),
        bool(row.platform_admin),
    )


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"password must have at least {MIN_PASSWORD} characters",
            hint="a passphrase of a few words is easiest to remember",
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD} characters")
    if password.strip() == "":
        raise InvalidInput("password must not be only spaces")


def create(
    conn: Connection,
    tenant: str,
    username: str,
    password: str,
    role: str,
    hasher: PasswordHasher = DEFAULT_HASHER,
    *,
    platform_admin: bool = False,
) -> User:
    get_tenant(conn, tenant)
    check_role(role)
    check_password(password)
    if not username or len(username) > 200:
        raise InvalidInput("username must have 1-200 characters")
    # Usernames are global (a login names no tenant): each tenant names users in its namespace.
    username = qualify_username(tenant, username)
    if conn.execute(select(t.users.c.username).where(t.users.c.username == username)).first():
        raise Conflict(f"user {username!r} already exists")
    row: dict[str, Any] = {
        "username": username,
        "tenant": tenant,
        "role": role,
        "created_at": now_us(),
        "disabled": False,
        "platform_admin": platform_admin,
    }
    conn.execute(insert(t.users).values(password_hash=hasher.hash(password), **row))
    return User(**row)


def verify(
    conn: Connection, username: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER
) -> User | None:
    row = conn.execute(select(t.users).where(t.users.c.username == username)).first()
    if row is None:
        try:
            hasher.verify(_dummy_hash(hasher), password or "")
        except VerificationError:
            pass
        return None
    try:
        hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row.disabled:
        return None
    if hasher.check_needs_rehash(row.password_hash):
        conn.execute(
            update(t.users)
            .where(t.users.c.username == username)
            .values(password_hash=hasher.hash(password))
        )
    return _user(row)


def list_(conn: Connection, tenant: str) -> list[User]:
    q = select(t.users).where(t.users.c.tenant == tenant).order_by(t.users.c.username)
    return [_user(r) for r in conn.execute(q)]


def set_password(
    conn: Connection,
    tenant: str,
    username: str,
    password: str,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> None:
    check_password(password)
    res = conn.execute(
        update(t.users)
        .where(t.users.c.username == username, t.users.c.tenant == tenant)
        .values(password_hash=hasher.hash(password))
    )
    if res.rowcount == 0:
        raise NotFound(f"user {username!r} not found")


def get(conn: Connection, tenant: str, username: str) -> User:
    row = conn.execute(
        select(t.users).where(t.users.c.username == username, t.users.c.tenant == tenant)
    ).first()
    if row is None:
        raise NotFound(f"user {username!r} not found")
    return _user(row)


def update_(
    conn: Connection,
    tenant: str,
    username: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
) -> User:
    get(conn, tenant, username)
    values: dict = {}
    if role is not None:
        check_role(role)
        values["role"] = role
    if disabled is not None:
        values["disabled"] = bool(disabled)
    if values:
        conn.execute(update(t.users).where(t.users.c.username == username).values(**values))
    return get(conn, tenant, username)


def delete_(conn: Connection, tenant: str, username: str) -> None:
    res = conn.execute(
        delete(t.users).where(t.users.c.username == username, t.users.c.tenant == tenant)
    )
    if res.rowcount == 0:
        raise NotFound(f"user {username!r} not found")
