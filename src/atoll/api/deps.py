"""FastAPI dependencies shared by every router: context, caller identity, roles, audit.

Other teams' routers (rules, alarms) use them the same way::

    @router.post("/projects/{project}/rules")
    def create(..., who: Principal = Depends(require("operator")), ctx = Depends(get_ctx)): ...
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from anyio import from_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext
from atoll.core.errors import Forbidden, NotFound, Unauthenticated
from atoll.registry import DeviceIdentity, Principal
from atoll.registry.keys import SESSION_PREFIX

TENANT_HEADER = "X-Atoll-Tenant"

_bearer = HTTPBearer(auto_error=False, description="API key or console session token")
_basic = HTTPBasic(auto_error=False, description="Device id and secret")


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def disconnect_device(ctx: ApiContext, device: str, reason: str, *, forget: bool = False) -> None:
    """Close a device's live connections and wait for it, from a sync route (FastAPI runs
    those in a worker thread of the event loop that owns the connections)."""
    if ctx.sessions is not None:
        from_thread.run(functools.partial(ctx.sessions.disconnect, device, reason, forget=forget))


def _principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None:
        raise Unauthenticated("missing API key", hint="send 'Authorization: Bearer <api key>'")
    principal = get_ctx(request).registry.authenticate_key(creds.credentials)
    if principal is None:
        raise Unauthenticated("invalid, expired or revoked API key")
    # Metered to the caller's own enterprise (a platform admin acting inside another one
    # makes its calls, not that enterprise): docs/CONSOLE.md, "Usage".
    get_ctx(request).registry.count_api_call(principal.tenant)
    principal = act_in_tenant(
        get_ctx(request).registry, principal, request.headers.get(TENANT_HEADER)
    )
    if request.client is not None:
        principal = dataclasses.replace(principal, source=request.client.host)
    request.state.principal = principal
    return principal


def act_in_tenant(registry, principal: Principal, tenant: str | None) -> Principal:
    """The caller as seen inside ``tenant`` (the ``X-Atoll-Tenant`` header or ``?tenant=``).

    A platform admin becomes a key of that tenant with its own role, so every route's
    ``who.tenant`` scoping applies unchanged. Anyone else may only name their own tenant;
    another one is "not found" (404, not 403) so that tenant ids don't leak.
    """
    if not tenant or tenant == principal.tenant:
        return principal
    if not principal.platform_admin:
        raise NotFound(f"tenant {tenant!r} not found")
    registry.get_tenant(tenant)  # NotFound for an unknown tenant
    return dataclasses.replace(principal, tenant=tenant, acting_from=principal.tenant)


def require(role: str) -> Callable[..., Principal]:
    """Dependency: the caller, who must hold at least ``role`` (admin > operator > viewer)."""

    def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.can(role):
            raise Forbidden(f"this needs the {role} role; your key is {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


viewer = require("viewer")
operator = require("operator")
admin = require("admin")


def audit(
    ctx: ApiContext,
    who: Principal,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    ctx.registry.audit(who.tenant, actor(who), action, target, detail, who.source)


def actor(who: Principal) -> str:
    """Who to name in the audit log; a platform admin acting in a tenant says so."""
    if who.acting_from is None:
        return f"{who.name} ({who.key_id})"
    name = who.name.removeprefix(SESSION_PREFIX)
    return f"{name} (platform) via {who.acting_from} ({who.key_id})"


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthenticated(
            "device credentials missing", hint="use HTTP Basic auth: curl -u DEVICE_ID:SECRET"
        )
    try:
        device, sep, secret = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed Basic auth header") from None
    if not sep:
        raise Unauthenticated("malformed Basic auth header", hint="use DEVICE_ID:SECRET")
    return device, secret


async def device(request: Request, _doc: Annotated[object, Depends(_basic)]) -> DeviceIdentity:
    """Dependency for device-facing routes: Basic auth with the device id and secret.

    Async on purpose: the usual answer comes from the registry's in-memory cache, so a thread
    hop per telemetry request would cost more than the lookup.
    """
    device_id, secret = _basic_credentials(request)
    registry = get_ctx(request).registry
    identity = registry.authenticate_device(device_id, secret)
    if identity is not None:
        return identity
    return await run_in_threadpool(_refuse_device, registry, device_id, secret)


def _refuse_device(registry, device_id: str, secret: str) -> DeviceIdentity:
    if registry.device_disabled(device_id, secret):
        registry.record_rejection(device_id, "http", "disabled", "request from a disabled device")
        raise Forbidden(f"device {device_id!r} is disabled", hint="an operator can enable it again")
    # Counted for known devices only (a wrong or revoked secret); unknown ids are not stored.
    registry.record_rejection(
        device_id, "http", "unauthenticated", "wrong, rotated or revoked secret"
    )
    raise Unauthenticated(
        "unknown device or wrong secret",
        hint="check the device id and secret; rotated or revoked secrets stop working",
    )


# Annotated shorthands for route signatures: ``def route(who: Operator, ctx: Ctx)``.
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]
Admin = Annotated[Principal, Depends(admin)]
Device = Annotated[DeviceIdentity, Depends(device)]
