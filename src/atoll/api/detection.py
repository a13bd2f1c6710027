"""A device's detection: what judges each of its series, refit on demand, accept as new normal.

The detection service is ``ctx.detection`` (a ``DetectionPort``); without it these routes answer
503. Reads need the viewer role, changes the operator role; both are audited. Times in answers
are ISO-8601 UTC; ``from``/``to`` take what query times take (ISO-8601, epoch milliseconds,
``now``, ``-1h``).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext, DetectionPort
from atoll.api.deps import Ctx, Operator, Viewer, actor, audit
from atoll.api.schemas import iso
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import InvalidInput, NotFound, Unavailable
from atoll.core.lineage import ModelRecord, SeriesDetection
from atoll.registry import Principal

router = APIRouter(tags=["detection"])
_TIMES = ("fitted_at", "history_from", "history_to", "accepted_from", "accepted_to")
#: Latest time a range may name (µs): far beyond any reading, well inside 64 bits.
_LAST = 2**62


class Unprocessable(InvalidInput):
    """The request is well-formed but cannot be done (an empty range, too little history)."""

    status = 422


class AcceptIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    metric: str = Field(min_length=1, max_length=400, description="a metric, or a judged group")
    from_: str | int = Field(alias="from", description=f"start of the range; {TIME_HELP}")
    to: str | int = Field(description="end of the range (exclusive)")
    comment: str | None = Field(None, max_length=2000, description="why; kept in the audit log")


class RefitIn(BaseModel):
    metric: str | None = Field(
        None, min_length=1, max_length=400, description="one metric; every one when omitted"
    )


def _service(ctx: ApiContext) -> DetectionPort:
    svc = ctx.detection
    if svc is None:
        raise Unavailable(
            "the detection service is not running in this process",
            hint="start Atoll with `atoll up`, which runs it",
        )
    return svc


async def _device(ctx: ApiContext, who: Principal, project: str, device: str) -> None:
    """404 unless ``device`` is in ``project`` of the caller's tenant."""
    dev = await run_in_threadpool(ctx.registry.get_device, device, who.tenant)
    if dev.project != project:
        raise NotFound(f"device {device!r} not found in project {project!r}")


def record_out(r: ModelRecord | None) -> dict[str, Any] | None:
    """A model record as the API answers it: its fields, times as ISO-8601."""
    if r is None:
        return None
    d = msgspec.to_builtins(r)
    for k in ("project", "device"):
        d.pop(k, None)
    for k in _TIMES:
        if k in d:
            d[k] = iso(d[k])
    return d


def _series_out(s: SeriesDetection) -> dict[str, Any]:
    return {
        "metric": s.metric,
        "metrics": list(s.metrics),
        "detector": s.detector,
        "chosen": s.chosen,
        "model": record_out(s.model),
        "condition": {"flagged": s.flagged, "since": iso(s.flagged_since)},
        "last_reading": iso(s.last_ts),
        "fitting": s.fitting,
    }


@router.get(
    "/projects/{project}/devices/{device}/detection",
    summary="What judges each series of a device: detector, model, condition",
)
async def get_detection(project: str, device: str, who: Viewer, ctx: Ctx) -> dict:
    svc = _service(ctx)
    await _device(ctx, who, project, device)
    series = await svc.detection(project, device)
    return {"project": project, "device": device, "series": [_series_out(s) for s in series]}


@router.post(
    "/projects/{project}/devices/{device}/detection/accept",
    summary="Accept a range of stored readings as the new normal",
)
async def accept(
    project: str,
    device: str,
    who: Operator,
    ctx: Ctx,
    body: AcceptIn,
) -> dict:
    """The readings of ``metric`` in ``[from, to)`` are learned as normal: the fitted model
    takes them in (its forecast's level is refitted on them), the flag clears, and a new model
    version (reason ``accept``) and an audit entry record who did it and for which range."""
    svc = _service(ctx)
    await _device(ctx, who, project, device)
    now = time.time_ns() // 1000
    try:
        start = parse_time(str(body.from_), now)
        end = parse_time(str(body.to), now)
    except InvalidInput as exc:
        raise Unprocessable(exc.message, hint=exc.hint) from None
    if not (0 <= start <= _LAST and 0 <= end <= _LAST):
        raise Unprocessable("from and to must lie between 1970 and the year 146,000")
    if start >= end:
        raise Unprocessable(
            f"the range is empty: from ({iso(start)}) must be before to ({iso(end)})"
        )
    try:
        record = await svc.accept(project, device, body.metric, start, end, actor=actor(who))
    except InvalidInput as exc:
        raise Unprocessable(exc.message, hint=exc.hint) from None
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "detection.accept",
        f"device:{device}",
        {
            "project": project,
            "metric": body.metric,
            "from": iso(start),
            "to": iso(end),
            "model": record.id,
            "version": record.version,
            "rows": record.rows,
            **({"comment": body.comment} if body.comment else {}),
        },
    )
    return record_out(record) or {}


@router.post(
    "/projects/{project}/devices/{device}/detection/refit",
    summary="Refit a device's models on their stored history now",
)
async def refit(
    project: str,
    device: str,
    who: Operator,
    ctx: Ctx,
    body: RefitIn | None = Body(None),
) -> dict:
    """Each refitted series gets a new model version (reason ``manual``), fitted on its stored
    history without the readings a model flagged. With ``metric``, a series that cannot be
    refitted (a detector that learns online, too little history) answers 422 with the reason;
    without it, such series are listed under ``skipped``."""
    svc = _service(ctx)
    await _device(ctx, who, project, device)
    metric = body.metric if body is not None else None
    try:
        done, skipped = await svc.refit(project, device, metric, actor=actor(who))
    except InvalidInput as exc:
        raise Unprocessable(exc.message, hint=exc.hint) from None
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "detection.refit",
        f"device:{device}",
        {
            "project": project,
            "metric": metric,
            "models": [f"{r.id}" for r in done],
            "skipped": [m for m, _ in skipped],
        },
    )
    return {
        "refitted": [record_out(r) for r in done],
        "skipped": [{"metric": m, "reason": why} for m, why in skipped],
    }
