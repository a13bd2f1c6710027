"""Device types: the telemetry a kind of device declares (checked on every message)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.schemas import DeviceTypeOut, Metric

router = APIRouter(tags=["device types"])


class DeviceTypeIn(BaseModel):
    id: str = Field(description="id within the project (lower-case letters, digits, - and _)")
    name: str | None = None
    metrics: list[Metric] = Field(description="declared telemetry; other metric names are rejected")


class DeviceTypePatch(BaseModel):
    name: str | None = None
    metrics: list[Metric] | None = None


@router.get(
    "/projects/{project}/device-types",
    response_model=list[DeviceTypeOut],
    summary="List device types",
)
def list_types(project: str, who: Viewer, ctx: Ctx):
    return [DeviceTypeOut.of(t) for t in ctx.registry.list_device_types(project, who.tenant)]


@router.post(
    "/projects/{project}/device-types",
    response_model=DeviceTypeOut,
    status_code=201,
    summary="Declare a device type",
)
def create_type(project: str, body: DeviceTypeIn, who: Operator, ctx: Ctx):
    t = ctx.registry.create_device_type(
        project, body.id, [m.model_dump() for m in body.metrics], name=body.name, tenant=who.tenant
    )
    audit(
        ctx, who, "device_type.create", f"device_type:{project}/{t.id}", {"metrics": len(t.metrics)}
    )
    return DeviceTypeOut.of(t)


@router.get(
    "/projects/{project}/device-types/{type_id}",
    response_model=DeviceTypeOut,
    summary="Get a device type",
)
def get_type(project: str, type_id: str, who: Viewer, ctx: Ctx):
    return DeviceTypeOut.of(ctx.registry.get_device_type(project, type_id, who.tenant))


@router.patch(
    "/projects/{project}/device-types/{type_id}",
    response_model=DeviceTypeOut,
    summary="Rename or redeclare telemetry",
)
def update_type(project: str, type_id: str, body: DeviceTypePatch, who: Operator, ctx: Ctx):
    """``metrics`` replaces the whole list. Devices of this type are checked against it at once."""
    metrics = None if body.metrics is None else [m.model_dump() for m in body.metrics]
    t = ctx.registry.update_device_type(
        project, type_id, name=body.name, metrics=metrics, tenant=who.tenant
    )
    audit(
        ctx,
        who,
        "device_type.update",
        f"device_type:{project}/{type_id}",
        body.model_dump(exclude_unset=True),
    )
    return DeviceTypeOut.of(t)


@router.delete(
    "/projects/{project}/device-types/{type_id}",
    status_code=204,
    summary="Delete an unused device type",
)
def delete_type(project: str, type_id: str, who: Operator, ctx: Ctx):
    ctx.registry.delete_device_type(project, type_id, who.tenant)
    audit(ctx, who, "device_type.delete", f"device_type:{project}/{type_id}")
    return Response(status_code=204)
