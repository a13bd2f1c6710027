"""Device twins: read both halves; change the desired
half (the device gets it over MQTT, retained)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.schemas import TwinOut

log = logging.getLogger(__name__)
router = APIRouter(tags=["twins"])


@router.get("/devices/{device}/twin", response_model=TwinOut, summary="Get a device twin")
def get_twin(device: str, who: Viewer, ctx: Ctx):
    return TwinOut.of(ctx.registry.get_twin(device, who.tenant))


@router.patch(
    "/devices/{device}/twin/desired", response_model=TwinOut, summary="Change desired properties"
)
async def patch_desired(
    who: Operator,
    ctx: Ctx,
    device: str,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="JSON merge patch (RFC 7386): null deletes a key",
            examples=[{"interval_s": 10, "led": None}],
        ),
    ],
):
    """Merges the patch, bumps ``desired_version`` and publishes the whole desired document."""
    twin = await run_in_threadpool(ctx.registry.patch_desired, device, patch, who.tenant)
    await run_in_threadpool(
        audit, ctx, who, "twin.desired.patch", f"device:{device}", {"version": twin.desired_version}
    )
    if ctx.commands is not None:
        try:
            await ctx.commands.publish_desired(device, twin.desired, twin.desired_version)
        except Exception:  # stored anyway; the device also reads it over HTTP or on reconnect
            log.exception("could not publish desired twin of %s", device)
    return TwinOut.of(twin)
