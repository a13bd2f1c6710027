"""Remaining useful life in the platform: fit a device type's RUL model from the fleet's
history, and the fleet's "due for maintenance" list (docs/PREDICTIVE_MAINTENANCE.md).

``POST /projects/{p}/rul/fit`` fits on the type's run-to-failure trajectories (stored telemetry cut
by ``failure`` maintenance records) and registers the model as a draft; too few failures is a 400
that says how many there are. ``GET /projects/{p}/maintenance/due`` lists the devices the active
RUL models judged, lowest ``rul_lo`` first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext, RulPort
from atoll.api.deps import Ctx, Operator, Viewer, actor, audit
from atoll.api.models import ModelOut
from atoll.api.schemas import iso
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.events import RUL_METRICS
from atoll.core.time import DURATION_HELP, parse_duration
from atoll.registry.tokens import now_us

router = APIRouter(tags=["rul"])
_US_PER_HOUR = 3_600_000_000


class FitIn(BaseModel):
    device_type: str = Field(min_length=1, max_length=100, examples=["motor"])
    cycle: str = Field(
        "1h",
        max_length=40,
        description=f"one cycle: the time bucket of the mean readings ({DURATION_HELP})",
    )
    since: str | None = Field(None, max_length=100, description=f"history from; {TIME_HELP}")
    until: str | None = Field(None, max_length=100, description=f"history until; {TIME_HELP}")
    cap: float = Field(
        125.0, gt=0, le=100_000, description="RUL target cap in cycles (early wear is unseen)"
    )


def _service(ctx: ApiContext) -> RulPort:
    svc = ctx.rul
    if svc is None:
        raise Unavailable(
            "the RUL service is not running in this process",
            hint="start Atoll with `atoll up`, which runs it",
        )
    return svc


@router.post(
    "/projects/{project}/rul/fit",
    response_model=ModelOut,
    response_model_exclude_none=True,
    status_code=201,
    summary="Fit a device type's RUL model on the fleet's run-to-failure history (a draft)",
)
async def fit_rul(project: str, body: FitIn, who: Operator, ctx: Ctx):
    svc = _service(ctx)
    now = now_us()
    cycle = parse_duration(body.cycle, positive=True)  # InvalidTime is a 400
    if cycle < 1_000_000:
        raise InvalidInput("the cycle must be at least 1s")
    since = parse_time(body.since, now) if body.since is not None else None
    until = parse_time(body.until, now) if body.until is not None else None
    await run_in_threadpool(ctx.registry.get_project, project, who.tenant)
    model = await svc.fit(
        project,
        body.device_type,
        actor=actor(who),
        tenant=who.tenant,
        cycle=cycle,
        since=since,
        until=until,
        cap=body.cap,
    )
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "model.register",
        f"model:{model.id}",
        {"kind": model.kind, "scope": model.scope, "version": model.version},
    )
    return ModelOut.of(model, card=True)


class ModelRefOut(BaseModel):
    id: str | None = Field(None, description="null when that version is no longer registered")
    version: int


class DueOut(BaseModel):
    device: str
    device_type: str | None = None
    at: str = Field(description="the end of the last complete cycle judged")
    rul_hours: float
    rul_lo_hours: float
    rul_hi_hours: float
    rul_days: float
    rul_lo_days: float
    rul_cycles: float | None = Field(None, description="when the model's cycle is known")
    cycle_seconds: float | None = None
    model: ModelRefOut | None = None


def due_list(
    ctx: ApiContext,
    project: str,
    tenant: str | None,
    device_type: str | None,
    within: int | None,
    limit: int,
    device: str | None = None,
) -> list[DueOut]:
    ctx.registry.get_project(project, tenant)
    types = {d: t for d, (t, _) in ctx.registry.device_profiles(project).items()}
    rul_name, lo_name, hi_name, version_name = RUL_METRICS
    per: dict[str, dict[str, tuple[int, float]]] = {}
    latest = ctx.store.latest(project, device) if device is not None else ctx.store.latest(project)
    for key, point in latest.items():
        if key.metric in RUL_METRICS and key.device in types:
            per.setdefault(key.device, {})[key.metric] = point
    models: dict[tuple[str, int], Any] = {
        (m.scope, m.version): m for m in ctx.registry.list_models(project, kind="rul")
    }
    out = []
    for dev, series in per.items():
        if device_type is not None and types[dev] != device_type:
            continue
        if not all(n in series for n in (rul_name, lo_name, hi_name)):
            continue
        at = series[rul_name][0]
        rul, lo, hi = (series[n][1] for n in (rul_name, lo_name, hi_name))
        if within is not None and lo * _US_PER_HOUR > within:
            continue
        ref, cycle_s = None, None
        if version_name in series:
            version = int(series[version_name][1])
            m = models.get((f"type:{types[dev]}", version))
            ref = ModelRefOut(id=m.id if m else None, version=version)
            if m is not None:
                cycle_s = (m.params or {}).get("cycle_seconds")
        out.append(
            DueOut(
                device=dev,
                device_type=types[dev],
                at=iso(at) or "",
                rul_hours=round(rul, 3),
                rul_lo_hours=round(lo, 3),
                rul_hi_hours=round(hi, 3),
                rul_days=round(rul / 24, 3),
                rul_lo_days=round(lo / 24, 3),
                rul_cycles=round(rul * 3600 / cycle_s, 3) if cycle_s else None,
                cycle_seconds=cycle_s,
                model=ref,
            )
        )
    out.sort(key=lambda d: (d.rul_lo_hours, d.rul_hours, d.device))
    return out[:limit]


@router.get(
    "/projects/{project}/maintenance/due",
    response_model=list[DueOut],
    response_model_exclude_none=True,
    summary="Devices by remaining useful life, most at risk (lowest rul_lo) first",
)
def maintenance_due(
    project: str,
    who: Viewer,
    ctx: Ctx,
    device_type: str | None = Query(None, max_length=100),
    device: str | None = Query(None, max_length=200, description="only this device"),
    within: str | None = Query(
        None, max_length=40, description=f"only rul_lo within this long ({DURATION_HELP})"
    ),
    limit: int = Query(100, ge=1, le=10_000),
):
    horizon = parse_duration(within, positive=True) if within is not None else None
    return due_list(ctx, project, who.tenant, device_type, horizon, limit, device)
