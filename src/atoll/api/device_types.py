"""Device types: the telemetry a kind of device declares (checked on every message) and the
detectors bound to it (``detectors``: what judges its devices' series, with the episode-decision
settings; a sector template sets them). Changing the bindings makes the detection service start
the affected series again with the new detector, fitted on their stored history where it can."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext
from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.schemas import DetectorBindingIO, DeviceTypeOut, Metric
from atoll.detect.service import check_binding

router = APIRouter(tags=["device types"])


class DeviceTypeIn(BaseModel):
    id: str = Field(description="id within the project (lower-case letters, digits, - and _)")
    name: str | None = None
    metrics: list[Metric] = Field(description="declared telemetry; other metric names are rejected")
    detectors: list[DetectorBindingIO] = Field(
        default_factory=list,
        description="detectors bound to its metrics; none: each series gets the default",
    )


class DeviceTypePatch(BaseModel):
    name: str | None = None
    metrics: list[Metric] | None = None
    detectors: list[DetectorBindingIO] | None = Field(
        None, description="replaces every binding of the type ([] unbinds them all)"
    )


def _bindings(detectors: list[DetectorBindingIO]) -> list[dict]:
    """The bindings as the registry keeps them, each checked as the detection service would
    use it (422 with the fix otherwise)."""
    out = []
    for b in detectors:
        check_binding(
            b.detector, b.metrics or None, b.params, b.jointly, b.threshold, b.decision, b.fleet
        )
        out.append(b.model_dump())
    return out


async def rebind(ctx: ApiContext, project: str, type_id: str) -> None:
    if ctx.detection is not None:
        await ctx.detection.rebind(project, type_id)


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
async def create_type(project: str, body: DeviceTypeIn, who: Operator, ctx: Ctx):
    bindings = _bindings(body.detectors)
    t = await run_in_threadpool(
        ctx.registry.create_device_type,
        project,
        body.id,
        [m.model_dump() for m in body.metrics],
        name=body.name,
        tenant=who.tenant,
        detectors=bindings,
    )
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "device_type.create",
        f"device_type:{project}/{t.id}",
        {"metrics": len(t.metrics), "detectors": bindings},
    )
    if t.detectors:
        await rebind(ctx, project, t.id)  # series met before the type existed
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
    summary="Rename, redeclare telemetry or rebind detectors",
)
async def update_type(project: str, type_id: str, body: DeviceTypePatch, who: Operator, ctx: Ctx):
    """``metrics`` replaces the whole list. Devices of this type are checked against it at once.
    ``detectors`` replaces every binding; the series they change start again with the new
    detector."""
    metrics = None if body.metrics is None else [m.model_dump() for m in body.metrics]
    bindings = None if body.detectors is None else _bindings(body.detectors)
    t = await run_in_threadpool(
        ctx.registry.update_device_type,
        project,
        type_id,
        name=body.name,
        metrics=metrics,
        tenant=who.tenant,
        detectors=bindings,
    )
    if bindings is not None:
        await rebind(ctx, project, type_id)
    await run_in_threadpool(
        audit,
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
