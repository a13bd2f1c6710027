"""Console login: a username and password buy a short-lived bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Viewer
from atoll.api.schemas import iso
from atoll.api.throttle import LoginThrottle
from atoll.core.errors import Forbidden, InvalidInput, Unauthenticated
from atoll.registry.keys import SESSION_PREFIX

router = APIRouter(tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class Session(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    expires_at: str
    username: str
    tenant: str
    role: str


class Me(BaseModel):
    tenant: str
    role: str
    key_id: str
    name: str
    platform_admin: bool


def _throttles(request: Request) -> tuple[LoginThrottle, LoginThrottle]:
    state = request.app.state
    if not hasattr(state, "login_throttles"):
        # Per user: stops guessing one password. Per address, looser: stops spraying many users.
        state.login_throttles = (LoginThrottle(max_failures=5), LoginThrottle(max_failures=20))
    return state.login_throttles


@router.post("/auth/login", response_model=Session, summary="Log in to the console")
def login(body: LoginIn, request: Request, ctx: Ctx):
    """After 5 failures in 5 minutes for a username (20 for a client address), logins wait (429)."""
    by_user, by_addr = _throttles(request)
    user_key, addr_key = body.username, request.client.host if request.client else "?"
    by_user.check(user_key)
    by_addr.check(addr_key)
    found = ctx.registry.login(body.username, body.password)
    if found is None:
        by_user.failed(user_key)
        by_addr.failed(addr_key)
        raise Unauthenticated("wrong username or password")
    by_user.succeeded(user_key)
    user, key = found
    ctx.registry.audit(
        user.tenant, user.username, "auth.login", f"user:{user.username}", source=addr_key
    )
    return Session(
        token=key.token,
        expires_at=iso(key.key.expires_at),
        username=user.username,
        tenant=user.tenant,
        role=user.role,
    )


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000, description="at least 10 characters")


@router.post("/auth/password", status_code=204, summary="Change your console password")
def change_password(body: PasswordChange, who: Viewer, ctx: Ctx):
    """For console sessions. Every other session of the user ends; this one goes on.

    400 if the new password breaks the policy (at least 10 characters, not the current one),
    403 if the current password is wrong."""
    if not who.name.startswith(SESSION_PREFIX):
        raise InvalidInput(
            "API keys have no password", hint="log in with POST /api/v1/auth/login first"
        )
    username = who.name[len(SESSION_PREFIX) :]
    if not ctx.registry.change_password(
        username, body.current_password, body.new_password, keep_session=who.key_id
    ):
        raise Forbidden("the current password is wrong")
    ctx.registry.audit(
        who.acting_from or who.tenant,
        username,
        "auth.password",
        f"user:{username}",
        source=who.source,
    )
    return Response(status_code=204)


@router.post("/auth/logout", status_code=204, summary="End this console session")
def logout(who: Viewer, ctx: Ctx):
    """Revokes the session token used for this call. API
    keys are left alone (revoke them under /keys)."""
    if who.name.startswith(SESSION_PREFIX):
        home = who.acting_from or who.tenant  # the session lives in its own tenant
        ctx.registry.revoke_api_key(home, who.key_id)
        ctx.registry.audit(
            home,
            who.name[len(SESSION_PREFIX) :],
            "auth.logout",
            f"key:{who.key_id}",
            source=who.source,
        )
    return Response(status_code=204)


@router.get("/auth/me", response_model=Me, summary="Who am I")
def me(who: Viewer):
    return Me(
        tenant=who.tenant,
        role=who.role,
        key_id=who.key_id,
        name=who.name,
        platform_admin=who.platform_admin,
    )
