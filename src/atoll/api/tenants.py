"""Tenants (enterprises). Creating one needs the platform admin key made at first start."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from pydantic import BaseModel, Field

from atoll.api.deps import Admin, Ctx, Viewer, actor, audit
from atoll.api.schemas import ApiKeyOut, NewApiKeyOut, TenantOut
from atoll.core.errors import Forbidden, NotFound
from atoll.ingest import quota_changes
from atoll.store.port import UsageReader

router = APIRouter(tags=["tenants"])


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(None, description="optional id (lower-case letters, digits, - and _)")


class TenantCreated(BaseModel):
    tenant: TenantOut
    admin_key: NewApiKeyOut = Field(description="the new tenant's first admin key; shown only here")


@router.get("/tenants", response_model=list[TenantOut], summary="List tenants you can see")
def list_tenants(who: Viewer, ctx: Ctx):
    """The platform admin sees every tenant; everyone else sees their own."""
    if who.platform_admin:
        return [TenantOut.of(t) for t in ctx.registry.list_tenants()]
    return [TenantOut.of(ctx.registry.get_tenant(who.tenant))]


@router.post("/tenants", response_model=TenantCreated, status_code=201, summary="Create a tenant")
def create_tenant(body: TenantIn, who: Admin, ctx: Ctx):
    """Create an enterprise and its first admin API key (the token is shown once)."""
    if not who.platform_admin:
        raise Forbidden("only the platform admin key can create tenants")
    tenant = ctx.registry.create_tenant(body.name, body.id)
    key = ctx.registry.create_api_key(tenant.id, "tenant admin", "admin")
    audit(ctx, who, "tenant.create", f"tenant:{tenant.id}", {"name": tenant.name})
    ctx.registry.audit(
        tenant.id,
        f"{who.name} ({who.key_id})",
        "tenant.create",
        f"tenant:{tenant.id}",
        source=who.source,
    )
    return TenantCreated(
        tenant=TenantOut.of(tenant),
        admin_key=NewApiKeyOut(key=ApiKeyOut.of(key.key), token=key.token),
    )


@router.get("/tenants/{tenant}", response_model=TenantOut, summary="Get a tenant")
def get_tenant(tenant: str, who: Viewer, ctx: Ctx):
    if tenant != who.tenant and not who.platform_admin:
        raise NotFound(f"tenant {tenant!r} not found")
    return TenantOut.of(ctx.registry.get_tenant(tenant))


class QuotaOut(BaseModel):
    limit: int | None = Field(description="null: no limit")
    used: int


class QuotasOut(BaseModel):
    tenant: str
    devices: QuotaOut
    api_keys: QuotaOut = Field(description="API keys people made (console sessions don't count)")
    ingest_rate: float | None = Field(
        description="points/s the enterprise's devices may send together; null: the configured"
        " default (ATOLL_QUOTA_TENANT_RATE)"
    )
    storage_points: QuotaOut = Field(
        description="points its projects hold in the store (derived series included); at the"
        " limit telemetry is refused (checked about once a minute)"
    )


class QuotasIn(BaseModel):
    devices: int | None = Field(None, ge=0, le=10_000_000, description="null: no limit")
    api_keys: int | None = Field(None, ge=0, le=100_000, description="null: no limit")
    ingest_rate: float | None = Field(
        None, gt=0, le=1e9, description="points/s; null: the configured default"
    )
    storage_points: int | None = Field(
        None, ge=0, le=10**15, description="points held in the store; null: no limit"
    )


def quotas_out(ctx, tenant: str, usage, held: int | None = None) -> QuotasOut:
    """A tenant's quotas and usage (``usage``: ``Registry.quotas``), as GET answers them;
    ``held``: the points its projects hold, if the caller has counted them already."""
    store = ctx.store
    if held is None:
        held = 0
        if isinstance(store, UsageReader):
            points = {p: u.points for p, u in store.usage(since=time.time_ns() // 1000).items()}
            held = ctx.registry.storage_by_tenant(points).get(tenant, 0)
    return QuotasOut(
        tenant=tenant,
        ingest_rate=ctx.registry.ingest_rate(tenant),
        storage_points=QuotaOut(limit=ctx.registry.storage_limit(tenant), used=held),
        **{k: QuotaOut(limit=u.limit, used=u.used) for k, u in usage.items()},
    )


@router.get(
    "/tenants/{tenant}/quotas", response_model=QuotasOut, summary="A tenant's quotas and usage"
)
def get_quotas(tenant: str, who: Viewer, ctx: Ctx):
    if tenant != who.tenant and not who.platform_admin:
        raise NotFound(f"tenant {tenant!r} not found")
    return quotas_out(ctx, tenant, ctx.registry.quotas(tenant))


@router.put("/tenants/{tenant}/quotas", response_model=QuotasOut, summary="Set a tenant's quotas")
async def set_quotas(tenant: str, body: QuotasIn, who: Admin, ctx: Ctx):
    """Platform admin only. The quotas named in the body are set (null: no limit); the others
    stay. Lowering a quota below what is used refuses only new devices or keys. The ingest
    rate and the storage quota apply on this node before it answers, on the others as soon
    as they hear of it on the bus (within a minute if they miss it)."""
    if not who.platform_admin:
        if tenant != who.tenant:
            raise NotFound(f"tenant {tenant!r} not found")
        raise Forbidden("only the platform admin sets quotas", hint="ask the platform operator")
    values = body.model_dump(exclude_unset=True)
    usage = await asyncio.to_thread(ctx.registry.set_quotas, tenant, values)
    if {"ingest_rate", "storage_points"} & values.keys():
        if ctx.ingest is not None:
            await ctx.ingest.refresh_quotas()  # this node before it answers
        await quota_changes.announce(ctx.bus, tenant)  # the others as they hear it
    await asyncio.to_thread(
        ctx.registry.audit,
        tenant,
        actor(who),
        "tenant.quotas",
        f"tenant:{tenant}",
        values,
        source=who.source,
    )
    return await asyncio.to_thread(quotas_out, ctx, tenant, usage)
