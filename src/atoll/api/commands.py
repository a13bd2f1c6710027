"""Commands to devices: create (delivered over MQTT when a sender is attached) and track."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.schemas import CommandOut
from atoll.core.errors import AtollError

log = logging.getLogger(__name__)
router = APIRouter(tags=["commands"])


class CommandIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["reboot"])
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"delay_s": 5}])
    ttl_s: float = Field(300, gt=0, le=7 * 86400, description="expire if not acknowledged in time")


@router.post(
    "/devices/{device}/commands",
    response_model=CommandOut,
    status_code=201,
    summary="Send a command to a device",
)
async def create_command(device: str, body: CommandIn, who: Operator, ctx: Ctx):
    """Stored as ``pending``, then published on ``atoll/v1/devices/{device}/commands/{id}``
    (``delivered``). The device's ack makes it ``acked`` or ``failed``; else it ``expired``."""
    cmd = await run_in_threadpool(
        ctx.registry.create_command,
        device,
        body.name,
        body.args,
        ttl_s=body.ttl_s,
        tenant=who.tenant,
    )
    await run_in_threadpool(
        audit, ctx, who, "command.create", f"device:{device}", {"command": cmd.id, "name": cmd.name}
    )
    if ctx.commands is not None:
        try:
            await ctx.commands.send_command(cmd)
        except AtollError as e:  # e.g. device offline: stays pending (HTTP poll or redelivery)
            log.info("command %s to %s stays pending: %s", cmd.id, device, e.message)
        except Exception:
            log.exception("could not publish command %s to %s", cmd.id, device)
        else:
            try:
                cmd = await run_in_threadpool(ctx.registry.mark_command_delivered, device, cmd.id)
            except AtollError:  # a fast device acked before we marked it
                cmd = await run_in_threadpool(ctx.registry.get_command, device, cmd.id)
    return CommandOut.of(cmd)


CommandStatus = Literal["pending", "delivered", "acked", "failed", "expired"]


@router.get("/devices/{device}/commands", response_model=list[CommandOut], summary="List commands")
def list_commands(
    who: Viewer,
    ctx: Ctx,
    device: str,
    status: CommandStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
):
    return [
        CommandOut.of(c)
        for c in ctx.registry.list_commands(device, who.tenant, status=status, limit=limit)
    ]


@router.get(
    "/devices/{device}/commands/{command_id}", response_model=CommandOut, summary="Get a command"
)
def get_command(device: str, command_id: str, who: Viewer, ctx: Ctx):
    return CommandOut.of(ctx.registry.get_command(device, command_id, who.tenant))
