"""Console login: a username and password buy a short-lived bearer token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Viewer
from atoll.api.schemas import iso
from atoll.core.errors import Unauthenticated

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


@router.post("/auth/login", response_model=Session, summary="Log in to the console")
def login(body: LoginIn, ctx: Ctx):
    found = ctx.registry.login(body.username, body.password)
    if found is None:
        raise Unauthenticated("wrong username or password")
    user, key = found
    ctx.registry.audit(user.tenant, user.username, "auth.login", f"user:{user.username}")
    return Session(token=key.token, expires_at=iso(key.key.expires_at), username=user.username,
                   tenant=user.tenant, role=user.role)


@router.get("/auth/me", response_model=Me, summary="Who am I")
def me(who: Viewer):
    return Me(tenant=who.tenant, role=who.role, key_id=who.key_id, name=who.name,
              platform_admin=who.platform_admin)
