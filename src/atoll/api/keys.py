"""Tenant-scoped API keys for people and programs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from atoll.api.deps import Admin, Ctx, audit
from atoll.api.schemas import MAX_TTL_S, ApiKeyOut, NewApiKeyOut

router = APIRouter(tags=["api keys"])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "operator", "viewer"] = "viewer"
    ttl_s: float | None = Field(
        None,
        gt=0,
        le=MAX_TTL_S,
        description="lifetime in seconds (at most 100 years); omit for no expiry",
    )


@router.get("/keys", response_model=list[ApiKeyOut], summary="List your tenant's API keys")
def list_keys(who: Admin, ctx: Ctx):
    return [ApiKeyOut.of(k) for k in ctx.registry.list_api_keys(who.tenant)]


@router.post("/keys", response_model=NewApiKeyOut, status_code=201, summary="Create an API key")
def create_key(body: KeyIn, who: Admin, ctx: Ctx):
    """The token is in this answer only; Atoll keeps its SHA-256."""
    key = ctx.registry.create_api_key(who.tenant, body.name, body.role, ttl_s=body.ttl_s)
    audit(ctx, who, "key.create", f"key:{key.key.id}", {"name": body.name, "role": body.role})
    return NewApiKeyOut(key=ApiKeyOut.of(key.key), token=key.token)


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_key(key_id: str, who: Admin, ctx: Ctx):
    key = ctx.registry.revoke_api_key(who.tenant, key_id)
    audit(ctx, who, "key.revoke", f"key:{key_id}")
    return ApiKeyOut.of(key)
