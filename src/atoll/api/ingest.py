"""Device-facing HTTP: the same contract as MQTT, authenticated with Basic auth (device id, secret).

``curl -u DEVICE:SECRET -d '{"values": {"temperature": 21.5}}' http://HOST/api/v1/ingest/telemetry``
A 2xx answer means the points are durable.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Device
from atoll.api.schemas import CommandOut, TwinOut
from atoll.core import acl, topics
from atoll.core.errors import Forbidden, Unavailable
from atoll.ingest import gateway
from atoll.ingest.dispatch import ACL_PUBLISH
from atoll.registry import Twin

router = APIRouter(prefix="/ingest", tags=["device ingest"])

_READING = {
    "type": "object",
    "required": ["values"],
    "properties": {
        "ts": {
            "description": "ISO-8601 or epoch milliseconds; server time if missing",
            "oneOf": [{"type": "string"}, {"type": "number"}],
        },
        "values": {
            "type": "object",
            "additionalProperties": {"oneOf": [{"type": "number"}, {"type": "boolean"}]},
        },
    },
}
_TELEMETRY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_READING, {"type": "array", "items": _READING}]},
                "examples": {
                    "one": {
                        "value": {"ts": "2026-11-23T10:00:00Z", "values": {"temperature": 21.5}}
                    },
                    "batch": {
                        "value": [
                            {"ts": 1795428000000, "values": {"temperature": 21.5}},
                            {"ts": 1795428001000, "values": {"temperature": 21.6}},
                        ]
                    },
                },
            }
        },
    }
}
_GATEWAY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "child device id (as chosen, no tenant prefix) → one reading "
                    "or a batch",
                    "additionalProperties": {
                        "oneOf": [_READING, {"type": "array", "items": _READING}]
                    },
                },
                "example": {
                    "press-1": {"ts": 1795428000000, "values": {"temperature": 21.5}},
                    "press-2": [{"ts": 1795428000000, "values": {"temperature": 19.0}}],
                },
            }
        },
    }
}
_OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {"firmware": "1.4.2", "interval_s": 10},
            }
        },
    }
}
_ACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"status": {"enum": ["ok", "error"]}, "result": {}},
                },
                "example": {"status": "ok", "result": {"rebooted": True}},
            }
        },
    }
}


class Accepted(BaseModel):
    accepted: int = Field(description="points stored durably")


class RefusedPart(BaseModel):
    reason: str = Field(description="the code counted in the rejections (gateway's or child's)")
    message: str


class GatewayAccepted(BaseModel):
    accepted: dict[str, int] = Field(description="points stored durably, per child")
    refused: dict[str, RefusedPart] = Field(description="the children's parts not stored, and why")


class Desired(BaseModel):
    desired: dict[str, Any]
    version: int


def _ingest(ctx):
    if ctx.ingest is None:
        raise Unavailable("ingest is not running on this server")
    return ctx.ingest


@router.post(
    "/telemetry",
    response_model=Accepted,
    summary="Send telemetry (device)",
    openapi_extra=_TELEMETRY_BODY,
)
async def telemetry(request: Request, identity: Device, ctx: Ctx):
    """One reading ``{"ts"?, "values": {...}}`` or a JSON array of them. 4xx answers say why;
    429 (with ``Retry-After``) while the device or its tenant is over its rate limit."""
    ingest = _ingest(ctx)
    ingest.admit(identity, "http")
    body = await request.body()
    n = await ingest.submit_telemetry(identity, body, "http")
    return Accepted(accepted=n)


@router.post(
    "/gateway/telemetry",
    response_model=GatewayAccepted,
    summary="Send telemetry for child devices (gateway)",
    openapi_extra=_GATEWAY_BODY,
)
async def gateway_telemetry(request: Request, identity: Device, ctx: Ctx):
    """A gateway's ``{child: reading or batch, ...}``, the same as MQTT ``gateway/telemetry``:
    each child's part is stored as the child's own message, or refused on its own (named in
    ``refused``; a device that is not this gateway's child is ``gateway_child``). A 2xx answer
    means the accepted parts are durable. 403 if the device is not a gateway."""
    ingest = _ingest(ctx)
    ingest.admit(identity, "http")
    if not acl.may_publish(
        identity.device, topics.gateway_telemetry(identity.device), identity.kind
    ):
        msg = f"device {identity.device!r} is not a gateway"
        ingest.reject(identity.device, "http", ACL_PUBLISH, msg)
        raise Forbidden(
            msg,
            hint='only a device registered with "kind": "gateway" sends for child devices '
            "(docs/DEVICES.md, Gateways)",
        )
    body = await request.body()
    result = await gateway.telemetry(ingest, identity, body, "http")
    return GatewayAccepted(
        accepted=result.accepted,
        refused={k: RefusedPart(**v) for k, v in result.refused.items()},
    )


@router.put(
    "/twin/reported",
    response_model=TwinOut,
    summary="Report twin properties (device)",
    openapi_extra=_OBJECT_BODY,
)
async def twin_reported(request: Request, identity: Device, ctx: Ctx):
    """JSON merge patch of the reported half; ``null`` deletes a key."""
    ingest = _ingest(ctx)
    ingest.admit(identity, "http")
    body = await request.body()
    result = await ingest.twin_reported(identity, body, "http")
    twin = (
        result
        if isinstance(result, Twin)
        else await run_in_threadpool(ctx.registry.get_twin, identity.device)
    )
    return TwinOut.of(twin)


@router.get(
    "/twin/desired", response_model=Desired, summary="Read desired twin properties (device)"
)
def twin_desired(identity: Device, ctx: Ctx):
    twin = ctx.registry.get_twin(identity.device)
    return Desired(desired=twin.desired, version=twin.desired_version)


@router.get("/commands", response_model=list[CommandOut], summary="Fetch pending commands (device)")
def pending_commands(identity: Device, ctx: Ctx, limit: int = Query(20, ge=1, le=100)):
    """For devices without MQTT: returns commands not yet delivered and marks them ``delivered``."""
    out = []
    for cmd in reversed(ctx.registry.list_commands(identity.device, status="pending", limit=limit)):
        out.append(ctx.registry.mark_command_delivered(identity.device, cmd.id))
    return [CommandOut.of(c) for c in out]


@router.post(
    "/commands/{command_id}/ack",
    response_model=CommandOut,
    summary="Acknowledge a command (device)",
    openapi_extra=_ACK_BODY,
)
async def ack(command_id: str, request: Request, identity: Device, ctx: Ctx):
    ingest = _ingest(ctx)
    ingest.admit(identity, "http")
    body = await request.body()
    await ingest.command_ack(identity, command_id, body, "http")
    cmd = await run_in_threadpool(ctx.registry.get_command, identity.device, command_id)
    return CommandOut.of(cmd)
