"""Devices: register (credentials shown once), list, get, update, disable, delete, rejections."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Operator, Viewer, audit, disconnect_device
from atoll.api.schemas import CredentialsOut, DeviceOut, Offset, RegisteredDevice, RejectionOut, iso
from atoll.core.events import EXPECTED_SUFFIXES, SCORE_SUFFIX

#: Series of the detection service, not the device's own metrics.
DERIVED_SUFFIXES = (SCORE_SUFFIX, *EXPECTED_SUFFIXES.values())

router = APIRouter(tags=["devices"])
#: A device counts as online when it sent something this recently (the console uses the same).
ONLINE_WINDOW_S = 300.0


Kind = Literal["device", "gateway"]


class DeviceIn(BaseModel):
    id: str | None = Field(None, description="optional global id; it is the MQTT username")
    name: str | None = Field(None, max_length=200)
    device_type: str | None = Field(None, description="a device type of this project")
    labels: dict[str, str] = Field(default_factory=dict)
    kind: Kind = Field("device", description="'gateway': it speaks for child devices")
    parent: str | None = Field(
        None, max_length=200, description="the gateway (of this project) the device speaks through"
    )


class DevicePatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    device_type: str | None = None
    labels: dict[str, str] | None = None
    disabled: bool | None = Field(None, description="a disabled device cannot connect or send")
    kind: Kind | None = Field(None, description="a gateway with children cannot stop being one")
    parent: str | None = Field(
        None, max_length=200, description="attach to a gateway of the project; null detaches"
    )


@router.get("/projects/{project}/devices", response_model=list[DeviceOut], summary="List devices")
def list_devices(
    who: Viewer,
    ctx: Ctx,
    project: str,
    response: Response,
    device_type: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
    offset: Offset = 0,
    q: str | None = Query(None, max_length=200, description="substring of id, name or type"),
    status: Literal["online", "offline"] | None = Query(
        None, description=f"online = seen in the last {ONLINE_WINDOW_S:.0f} s"
    ),
    latest: bool = Query(False, description="add each device's last value per metric"),
    parent: str | None = Query(None, max_length=200, description="a gateway's children"),
    kind: Kind | None = Query(None, description="only gateways, or only other devices"),
):
    """One page of devices by id; ``X-Total-Count``
    says how many match (the console pages with it). ``latest=true`` adds each metric's last
    value (derived series of detection, ``*.anomaly_score`` and the expected band, left out),
    read from the store in one call for the page."""
    seen: dict[str, Any] = {"parent": parent, "kind": kind}
    if status is not None:
        cutoff = time.time_ns() // 1000 - int(ONLINE_WINDOW_S * 1e6)
        seen["seen_since" if status == "online" else "not_seen_since"] = cutoff
    ctx.registry.get_project(project, who.tenant)
    response.headers["X-Total-Count"] = str(
        ctx.registry.count_devices(project, device_type=device_type, search=q, **seen)
    )
    rows = [
        DeviceOut.of(d)
        for d in ctx.registry.list_devices(
            project,
            who.tenant,
            limit=limit,
            offset=offset,
            device_type=device_type,
            search=q,
            **seen,
        )
    ]
    if latest and rows:
        values: dict[str, dict[str, float]] = {r.id: {} for r in rows}
        for key, (_, value) in sorted(ctx.store.latest(project).items()):
            got = values.get(key.device)
            if got is not None and not key.metric.endswith(DERIVED_SUFFIXES):
                got[key.metric] = value
        for r in rows:
            r.latest = values[r.id]
    return rows


@router.post(
    "/projects/{project}/devices",
    response_model=RegisteredDevice,
    status_code=201,
    summary="Register a device",
)
def register_device(project: str, body: DeviceIn, who: Operator, ctx: Ctx):
    """Creates the device and its credentials. The secret is in this answer only."""
    dev, creds = ctx.registry.register_device(
        project,
        device_id=body.id,
        name=body.name,
        device_type=body.device_type,
        labels=body.labels,
        tenant=who.tenant,
        kind=body.kind,
        parent=body.parent,
    )
    audit(
        ctx,
        who,
        "device.create",
        f"device:{dev.id}",
        {"project": project, "device_type": dev.device_type, "kind": dev.kind},
    )
    return RegisteredDevice(device=DeviceOut.of(dev), credentials=CredentialsOut.of(creds))


MAX_BATCH = 1000


class DeviceBatchIn(BaseModel):
    devices: list[DeviceIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post(
    "/projects/{project}/devices/batch",
    response_model=list[RegisteredDevice],
    status_code=201,
    summary="Register many devices at once",
)
def register_devices(project: str, body: DeviceBatchIn, who: Operator, ctx: Ctx):
    """All or nothing, in one transaction (up to 1000).
    Each answer holds a secret shown only here."""
    done = ctx.registry.register_devices(
        project,
        [
            {
                "device_id": d.id,
                "name": d.name,
                "device_type": d.device_type,
                "labels": d.labels,
                "kind": d.kind,
                "parent": d.parent,
            }
            for d in body.devices
        ],
        tenant=who.tenant,
    )
    audit(
        ctx,
        who,
        "device.create_batch",
        f"project:{project}",
        {"count": len(done), "devices": [d.id for d, _ in done[:50]]},
    )
    return [
        RegisteredDevice(device=DeviceOut.of(d), credentials=CredentialsOut.of(c)) for d, c in done
    ]


@router.get("/devices/{device}", response_model=DeviceOut, summary="Get a device")
def get_device(device: str, who: Viewer, ctx: Ctx):
    return DeviceOut.of(ctx.registry.get_device(device, who.tenant))


@router.patch("/devices/{device}", response_model=DeviceOut, summary="Update or disable a device")
def update_device(device: str, body: DevicePatch, who: Operator, ctx: Ctx):
    """Disabling a device, or making it a gateway or a plain device again (``kind``), closes
    its live MQTT connections before this answers; it reconnects as what it is now."""
    kw: dict[str, Any] = {
        f: getattr(body, f) for f in ("device_type", "parent") if f in body.model_fields_set
    }
    before = ctx.registry.get_device(device, who.tenant).kind if body.kind is not None else None
    dev = ctx.registry.update_device(
        device,
        who.tenant,
        name=body.name,
        labels=body.labels,
        disabled=body.disabled,
        kind=body.kind,
        **kw,
    )
    if body.disabled:
        disconnect_device(ctx, device, "disabled")
    elif before is not None and before != dev.kind:
        # Its live connections were made as the other kind: they reconnect as the new one.
        disconnect_device(ctx, device, "kind changed")
    audit(ctx, who, "device.update", f"device:{device}", body.model_dump(exclude_unset=True))
    return DeviceOut.of(dev)


@router.delete("/devices/{device}", status_code=204, summary="Delete a device")
def delete_device(device: str, who: Operator, ctx: Ctx):
    """The device can no longer connect, and its live connections are closed before this
    answers. Its stored telemetry stays until the project's retention removes it. A gateway
    with child devices is refused (409): delete or detach its children first."""
    ctx.registry.delete_device(device, who.tenant)
    disconnect_device(ctx, device, "deleted", forget=True)
    audit(ctx, who, "device.delete", f"device:{device}")
    return Response(status_code=204)


@router.get(
    "/devices/{device}/rejections",
    response_model=list[RejectionOut],
    summary="Refused messages by transport and reason",
)
def rejections(device: str, who: Viewer, ctx: Ctx):
    return [
        RejectionOut(
            transport=r.transport,
            reason=r.reason,
            count=r.count,
            last_at=iso(r.last_at),
            last_message=r.last_message,
        )
        for r in ctx.registry.rejections(device, who.tenant)
    ]
