"""Tenants, API keys, console users, sessions and the audit log (``Client``'s part)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """``token`` is set only in the answer that created the key."""

    id: str
    name: str
    role: str
    token: str | None = field(default=None, repr=False)
    tenant: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Invite:
    """A one-time invitation; ``token`` and ``path`` are set only in the answer that made it
    (the console link is the server's address followed by ``path``)."""

    id: str
    tenant: str
    username: str
    role: str
    state: str
    created_by: str = ""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    used_at: datetime | None = None
    token: str | None = field(default=None, repr=False)
    path: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class User:
    username: str
    tenant: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class Identity:
    """Who the credentials are, as the server sees them (``tenant`` is the one acted in)."""

    tenant: str
    role: str
    key_id: str
    name: str
    platform_admin: bool


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    target: str
    at: datetime
    detail: dict[str, Any]
    #: The client address the action came from, when known.
    source: str | None = None


def _new_key(d: dict[str, Any]) -> ApiKey:
    return build(ApiKey, {**d["key"], "token": d["token"]})


class TenancyCalls(Http):
    def tenants(self) -> list[Tenant]:
        """Every tenant for a platform admin; your own otherwise."""
        return [build(Tenant, t) for t in self._call("GET", "/tenants")]

    def tenant(self, tenant: str) -> Tenant:
        return build(Tenant, self._call("GET", f"/tenants/{tenant}"))

    def create_tenant(self, name: str, *, id: str | None = None) -> tuple[Tenant, ApiKey]:
        """Platform admin only: a new tenant and its first admin key (token shown once)."""
        d = self._call("POST", "/tenants", json={"name": name, "id": id})
        return build(Tenant, d["tenant"]), _new_key(d["admin_key"])

    def api_keys(self) -> list[ApiKey]:
        """The tenant's keys (admin), without their tokens."""
        return [build(ApiKey, k) for k in self._call("GET", "/keys")]

    def create_api_key(
        self, name: str, role: str = "viewer", *, ttl_s: float | None = None
    ) -> ApiKey:
        return _new_key(
            self._call("POST", "/keys", json={"name": name, "role": role, "ttl_s": ttl_s})
        )

    def revoke_api_key(self, key_id: str) -> ApiKey:
        return build(ApiKey, self._call("DELETE", f"/keys/{key_id}"))

    def users(self) -> list[User]:
        """The tenant's console users (admin)."""
        return [build(User, u) for u in self._call("GET", "/users")]

    def create_user(self, username: str, password: str, role: str = "viewer") -> User:
        """A console login of this tenant; ``password``: at least 10 characters."""
        return build(
            User,
            self._call(
                "POST", "/users", json={"username": username, "password": password, "role": role}
            ),
        )

    def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change what is given; the user's open console sessions end."""
        body = {
            k: v
            for k, v in (("role", role), ("disabled", disabled), ("password", password))
            if v is not None
        }
        return build(User, self._call("PATCH", f"/users/{username}", json=body))

    def delete_user(self, username: str) -> None:
        self._call("DELETE", f"/users/{username}")

    def me(self) -> Identity:
        return build(Identity, self._call("GET", "/auth/me"))

    def quotas(self, tenant: str) -> dict[str, Any]:
        """``{"devices": {"limit": 50 | None, "used": 3}, "api_keys": {...}}`` of ``tenant``."""
        got = self._call("GET", f"/tenants/{tenant}/quotas")
        return {k: v for k, v in got.items() if k != "tenant"}

    def set_quotas(self, tenant: str, **limits: int | None) -> dict[str, Any]:
        """Platform admin: set ``devices=``, ``api_keys=``, ``storage_points=`` (points held;
        ``None``: no limit) and/or ``ingest_rate=`` (points/s; ``None``: the configured
        default)."""
        got = self._call("PUT", f"/tenants/{tenant}/quotas", json=limits)
        return {k: v for k, v in got.items() if k != "tenant"}

    def invite(self, username: str, role: str = "viewer", *, ttl_hours: float = 168) -> Invite:
        """Invite ``username`` to this tenant (admin; a platform admin names the tenant with
        ``in_tenant``). The answer carries the one-time ``token`` and console ``path``."""
        got = self._call(
            "POST", "/invites", json={"username": username, "role": role, "ttl_hours": ttl_hours}
        )
        return build(Invite, {**got["invite"], "token": got["token"], "path": got["path"]})

    def invites(self) -> list[Invite]:
        """The tenant's invites, pending, used, revoked and expired (admin)."""
        return [build(Invite, i) for i in self._call("GET", "/invites")]

    def revoke_invite(self, invite_id: str) -> Invite:
        return build(Invite, self._call("DELETE", f"/invites/{invite_id}"))

    def change_password(self, current_password: str, new_password: str) -> None:
        """For a client made by ``Client.login``; the user's other sessions end, this one
        goes on."""
        self._call(
            "POST",
            "/auth/password",
            json={"current_password": current_password, "new_password": new_password},
        )

    def logout(self) -> None:
        """End this console session (an API key is left alone)."""
        self._call("POST", "/auth/logout")

    def audit(
        self,
        *,
        limit: int = 100,
        action: str | None = None,
        target: str | None = None,
        before_id: int | None = None,
        actor: str | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
    ) -> list[AuditEntry]:
        """The tenant's audit log, newest first (admin); ``before_id`` pages. ``action``
        ending in ``.`` is a prefix (``"alarm."``); ``actor`` matches part of the actor."""
        params = {
            "limit": limit,
            "action": action,
            "target": target,
            "before_id": before_id,
            "actor": actor,
            "since": time_param(since),
            "until": time_param(until),
        }
        return [build(AuditEntry, r) for r in self._call("GET", "/audit", params=params)]

    def audit_actions(self) -> list[str]:
        """The actions the tenant's audit log holds (admin)."""
        return list(self._call("GET", "/audit/actions"))

    def audit_csv(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
    ) -> str:
        """The audit log as CSV (admin; filters as ``audit``; up to 50,000 rows)."""
        params = {
            "action": action,
            "target": target,
            "actor": actor,
            "since": time_param(since),
            "until": time_param(until),
        }
        got = self._call("GET", "/audit.csv", params=params)
        return got.decode() if isinstance(got, bytes) else str(got)
