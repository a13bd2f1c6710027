"""Maintenance records: failures, repairs, replacements and inspections per device.

A failure ends a device's run; the history between failures is what RUL models learn from.
Record one at a time, list per device or per project (JSON or CSV), delete a mistake, or import
a whole history as CSV (all rows or none, every bad line named).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Operator, Viewer, actor, audit
from atoll.api.files import csv_download
from atoll.api.schemas import iso
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import InvalidInput
from atoll.registry import maintenance as _maintenance
from atoll.registry.models import MaintenanceEvent
from atoll.registry.tokens import now_us

router = APIRouter(tags=["maintenance"])
Kind = Literal["failure", "repair", "replacement", "inspection"]


class MaintenanceIn(BaseModel):
    kind: Kind = Field(description="failure ends the device's run; repair/replacement start one")
    at: str | None = Field(
        None, description=f"when it happened (default now); {TIME_HELP}", examples=["now-2h"]
    )
    part: str | None = Field(None, max_length=200, examples=["drive-end bearing 6205"])
    cost: float | None = Field(None, ge=0, examples=[420.0])
    note: str | None = Field(None, max_length=2000, examples=["outer race spalling"])


class MaintenanceOut(BaseModel):
    id: str
    device: str
    kind: str
    at: str
    part: str | None = None
    cost: float | None = None
    note: str = ""
    recorded_by: str
    created_at: str

    @classmethod
    def of(cls, e: MaintenanceEvent) -> MaintenanceOut:
        return cls(
            id=e.id,
            device=e.device,
            kind=e.kind,
            at=iso(e.at) or "",
            part=e.part,
            cost=e.cost,
            note=e.note,
            recorded_by=e.recorded_by,
            created_at=iso(e.created_at) or "",
        )


class ImportOut(BaseModel):
    imported: int


@router.post(
    "/devices/{device}/maintenance",
    response_model=MaintenanceOut,
    status_code=201,
    summary="Record a failure, repair, replacement or inspection",
)
async def record_maintenance(device: str, body: MaintenanceIn, who: Operator, ctx: Ctx):
    at = parse_time(body.at, now_us(), default=now_us())
    event = await run_in_threadpool(
        ctx.registry.record_maintenance,
        device,
        body.kind,
        at,
        actor=actor(who),
        part=body.part,
        cost=body.cost,
        note=body.note,
        tenant=who.tenant,
    )
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "maintenance.record",
        f"device:{device}",
        {"id": event.id, "kind": event.kind},
    )
    return MaintenanceOut.of(event)


def _window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    now = now_us()
    return (
        parse_time(since, now) if since else None,
        parse_time(until, now) if until else None,
    )


@router.get(
    "/devices/{device}/maintenance",
    response_model=list[MaintenanceOut],
    summary="A device's maintenance records, newest first",
)
def list_device_maintenance(
    device: str,
    who: Viewer,
    ctx: Ctx,
    kind: Kind | None = None,
    since: str | None = Query(None, description=TIME_HELP),
    until: str | None = Query(None, description=TIME_HELP),
    limit: int = Query(1000, ge=1, le=10_000),
):
    lo, hi = _window(since, until)
    events = ctx.registry.list_maintenance(
        device, tenant=who.tenant, kind=kind, since=lo, until=hi, limit=limit
    )
    return [MaintenanceOut.of(e) for e in events]


@router.delete(
    "/devices/{device}/maintenance/{event_id}",
    status_code=204,
    summary="Delete a maintenance record entered by mistake",
)
async def delete_maintenance(device: str, event_id: str, who: Operator, ctx: Ctx):
    event = await run_in_threadpool(ctx.registry.delete_maintenance, device, event_id, who.tenant)
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "maintenance.delete",
        f"device:{device}",
        {"id": event.id, "kind": event.kind},
    )
    return Response(status_code=204)


@router.get(
    "/projects/{project}/maintenance",
    response_model=list[MaintenanceOut],
    summary="Every device's maintenance records in a project, newest first (JSON or CSV)",
    responses={200: {"content": {"text/csv": {}}}},
)
def list_project_maintenance(
    project: str,
    who: Viewer,
    ctx: Ctx,
    kind: Kind | None = None,
    since: str | None = Query(None, description=TIME_HELP),
    until: str | None = Query(None, description=TIME_HELP),
    limit: int = Query(10_000, ge=1, le=100_000),
    format: Literal["json", "csv"] = Query("json", description="csv: the import's columns"),
):
    lo, hi = _window(since, until)
    events = ctx.registry.list_maintenance(
        project=project, tenant=who.tenant, kind=kind, since=lo, until=hi, limit=limit
    )
    if format == "json":
        return [MaintenanceOut.of(e) for e in events]
    rows = (
        [e.device, iso(e.at), e.kind, e.part, None if e.cost is None else f"{e.cost:g}", e.note]
        for e in events
    )
    return csv_download(_maintenance.CSV_COLUMNS, rows, "maintenance.csv")


@router.post(
    "/projects/{project}/maintenance/import",
    response_model=ImportOut,
    status_code=201,
    summary="Import maintenance history as CSV (all rows or none)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "device,at,kind,part,cost,note\n"
                    "press-1,2026-11-02T08:15:00Z,failure,main bearing,,seized\n",
                }
            },
        }
    },
)
async def import_maintenance(project: str, request: Request, who: Operator, ctx: Ctx):
    """Columns ``device,at,kind[,part,cost,note]`` (a header row first); ``device`` is the
    stored id or the name chosen in your tenant; ``at`` ISO-8601 or epoch milliseconds."""
    raw = await request.body()  # at most the API's body limit (max_payload_bytes): split larger
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV is not UTF-8 text") from None
    now = now_us()
    rows = _maintenance.parse_csv(text, lambda v: parse_time(v, now))
    n = await run_in_threadpool(
        ctx.registry.import_maintenance, project, rows, actor=actor(who), tenant=who.tenant
    )
    await run_in_threadpool(
        audit, ctx, who, "maintenance.import", f"project:{project}", {"rows": n}
    )
    return ImportOut(imported=n)
