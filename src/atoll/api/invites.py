"""Invitations: an admin invites someone to their tenant with a role; the invitee opens the
one-time link in the console, sets a password and is logged in (docs/SECURITY.md, "Invites").

The platform admin invites into any tenant the same way it does anything there: with
``X-Atoll-Tenant`` (``deps.act_in_tenant``), so the one role check of ``deps.require`` applies.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from atoll.api.auth import Session
from atoll.api.deps import Admin, Ctx, actor, audit
from atoll.api.schemas import iso
from atoll.core.errors import NotFound
from atoll.registry import Invite
from atoll.registry.tokens import now_us

router = APIRouter(tags=["users"])

CONSOLE_INVITE_PATH = "/invite#"
GONE = "this invite link is unknown, used, revoked or expired"
GONE_HINT = "ask whoever invited you for a new link"


class InviteIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "operator", "viewer"] = "viewer"
    ttl_hours: float = Field(168, ge=1, le=720, description="how long the link works (hours)")


class InviteOut(BaseModel):
    id: str
    tenant: str
    username: str
    role: str
    created_by: str
    created_at: str
    expires_at: str
    used_at: str | None = None
    state: Literal["pending", "used", "revoked", "expired"]

    @classmethod
    def of(cls, i: Invite) -> InviteOut:
        return cls(
            id=i.id,
            tenant=i.tenant,
            username=i.username,
            role=i.role,
            created_by=i.created_by,
            created_at=iso(i.created_at) or "",
            expires_at=iso(i.expires_at) or "",
            used_at=iso(i.used_at),
            state=i.state(now_us()),
        )


class NewInviteOut(BaseModel):
    invite: InviteOut
    token: str = Field(description="the one-time token; shown only here")
    path: str = Field(description="console path of the link: prefix it with the console's address")


@router.post(
    "/invites", response_model=NewInviteOut, status_code=201, summary="Invite a console user"
)
def create_invite(body: InviteIn, who: Admin, ctx: Ctx):
    """The link (token) is shown once. It works once, until ``ttl_hours`` have passed or it is
    revoked. A platform admin invites into another tenant with ``X-Atoll-Tenant``."""
    new = ctx.registry.create_invite(
        who.tenant, body.username, body.role, actor(who), body.ttl_hours * 3600
    )
    audit(
        ctx,
        who,
        "invite.create",
        f"user:{new.invite.username}",
        {"invite": new.invite.id, "role": body.role, "expires_at": iso(new.invite.expires_at)},
    )
    return NewInviteOut(
        invite=InviteOut.of(new.invite), token=new.token, path=CONSOLE_INVITE_PATH + new.token
    )


@router.get("/invites", response_model=list[InviteOut], summary="List your tenant's invites")
def list_invites(who: Admin, ctx: Ctx):
    return [InviteOut.of(i) for i in ctx.registry.list_invites(who.tenant)]


@router.delete("/invites/{invite_id}", response_model=InviteOut, summary="Revoke an invite")
def revoke_invite(invite_id: str, who: Admin, ctx: Ctx):
    invite = ctx.registry.revoke_invite(who.tenant, invite_id)
    audit(ctx, who, "invite.revoke", f"user:{invite.username}", {"invite": invite.id})
    return InviteOut.of(invite)


class TokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class InviteInfo(BaseModel):
    tenant: str
    tenant_name: str
    username: str
    role: str
    expires_at: str


@router.post("/auth/invite", response_model=InviteInfo, summary="Look at an invite")
def show_invite(body: TokenIn, ctx: Ctx):
    """What a pending invite link offers (no API key: the token is the credential). The token
    travels in the body, never in a URL a proxy would log."""
    invite = ctx.registry.invite_for_token(body.token)
    if invite is None:
        raise NotFound(GONE, hint=GONE_HINT)
    return InviteInfo(
        tenant=invite.tenant,
        tenant_name=ctx.registry.get_tenant(invite.tenant).name,
        username=invite.username,
        role=invite.role,
        expires_at=iso(invite.expires_at) or "",
    )


class AcceptIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000, description="at least 10 characters")


@router.post(
    "/auth/invite/accept", response_model=Session, status_code=201, summary="Accept an invite"
)
def accept_invite(body: AcceptIn, request: Request, ctx: Ctx):
    """Set the password, become the invited user and get a console session. Works once."""
    found = ctx.registry.accept_invite(body.token, body.password)
    if found is None:
        raise NotFound(GONE, hint=GONE_HINT)
    user, key = found
    ctx.registry.audit(
        user.tenant,
        user.username,
        "invite.accept",
        f"user:{user.username}",
        {"role": user.role},
        source=request.client.host if request.client else None,
    )
    return Session(
        token=key.token,
        expires_at=iso(key.key.expires_at) or "",
        username=user.username,
        tenant=user.tenant,
        role=user.role,
    )
