"""Console users of a tenant."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from atoll.api.deps import Admin, Ctx, audit
from atoll.api.schemas import iso
from atoll.registry import User

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=10, description="at least 10 characters")
    role: Literal["admin", "operator", "viewer"] = "viewer"


class UserOut(BaseModel):
    username: str
    tenant: str
    role: str
    created_at: str
    disabled: bool = Field(False, description="a disabled user cannot log in")

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            username=u.username,
            tenant=u.tenant,
            role=u.role,
            created_at=iso(u.created_at),
            disabled=u.disabled,
        )


@router.get("/users", response_model=list[UserOut], summary="List your tenant's console users")
def list_users(who: Admin, ctx: Ctx):
    return [UserOut.of(u) for u in ctx.registry.list_users(who.tenant)]


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a console user")
def create_user(body: UserIn, who: Admin, ctx: Ctx):
    u = ctx.registry.create_user(who.tenant, body.username, body.password, body.role)
    audit(ctx, who, "user.create", f"user:{u.username}", {"role": u.role})
    return UserOut.of(u)


class UserPatch(BaseModel):
    role: Literal["admin", "operator", "viewer"] | None = None
    disabled: bool | None = Field(None, description="a disabled user cannot log in")
    password: str | None = Field(None, min_length=10, description="set a new password")


@router.patch(
    "/users/{username}", response_model=UserOut, summary="Change a user's role, status or password"
)
def update_user(username: str, body: UserPatch, who: Admin, ctx: Ctx):
    """The user's open console sessions end; they log in again."""
    if body.password is not None:
        ctx.registry.set_password(who.tenant, username, body.password)
    u = ctx.registry.update_user(who.tenant, username, role=body.role, disabled=body.disabled)
    audit(
        ctx,
        who,
        "user.update",
        f"user:{username}",
        body.model_dump(exclude_unset=True, exclude={"password"})
        | ({"password": "changed"} if body.password is not None else {}),
    )
    return UserOut.of(u)


@router.delete("/users/{username}", status_code=204, summary="Delete a console user")
def delete_user(username: str, who: Admin, ctx: Ctx):
    ctx.registry.delete_user(who.tenant, username)
    audit(ctx, who, "user.delete", f"user:{username}")
    return Response(status_code=204)
