"""Remaining useful life in the platform: fit a device type's RUL model from the fleet's
history, and the fleet's "due for maintenance" list (docs/PREDICTIVE_MAINTENANCE.md).

``POST /projects/{p}/rul/fit`` queues a fit on the type's run-to-failure trajectories (stored
telemetry cut by ``failure`` maintenance records) and answers the job (202); the job files the
model as a draft (``GET /projects/{p}/rul/fits/{job}``). Too few failures fails the job with the
400 that says how many there are (``wait=true`` waits and answers it as such).
``GET /projects/{p}/maintenance/due`` lists the devices the active
RUL models judged, lowest ``rul_lo`` first.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext, RulPort
from atoll.api.deps import Ctx, Operator, Viewer, actor, audit
from atoll.api.models import ModelOut
from atoll.api.schemas import iso
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import AtollError, InvalidInput, NotFound, Unavailable
from atoll.core.events import RUL_METRICS
from atoll.core.time import DURATION_HELP, parse_duration
from atoll.registry.models import ModelVersion, RulConfig, RulFit
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


class FitErrorOut(BaseModel):
    error: str
    message: str
    hint: str | None = None


class FitJobOut(BaseModel):
    id: str
    project: str
    device_type: str
    state: Literal["queued", "running", "done", "failed"]
    trigger: str = Field(description="api (asked for), schedule or failure (retraining)")
    cycle_seconds: float
    cap: float
    since: str | None = None
    until: str | None = None
    progress: str | None = None
    requested_by: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    model: ModelOut | None = Field(None, description="when done: the draft version it filed")
    error: FitErrorOut | None = Field(None, description="when failed: why")
    outcome: dict[str, Any] | None = Field(
        None, description="retraining: whether the new version was activated, and why"
    )

    @classmethod
    def of(cls, job: RulFit, model: ModelVersion | None) -> FitJobOut:
        p = job.params
        return cls(
            id=job.id,
            project=job.project,
            device_type=job.device_type,
            state=job.state,
            trigger=job.trigger,
            cycle_seconds=int(p["cycle"]) / 1_000_000,
            cap=float(p["cap"]),
            since=iso(p.get("since")),
            until=iso(p.get("until")),
            progress=job.progress,
            requested_by=job.requested_by,
            created_at=iso(job.created_at) or "",
            started_at=iso(job.started_at),
            finished_at=iso(job.finished_at),
            model=ModelOut.of(model) if model is not None else None,
            error=FitErrorOut(**job.error) if job.error else None,
            outcome=job.outcome,
        )


def _job_out(ctx: ApiContext, job: RulFit) -> FitJobOut:
    model = None
    if job.model is not None:
        with contextlib.suppress(NotFound):  # retired and deleted since
            model = ctx.registry.get_model(job.project, job.model)
    return FitJobOut.of(job, model)


@router.post(
    "/projects/{project}/rul/fit",
    response_model=FitJobOut | ModelOut,
    response_model_exclude_none=True,
    status_code=202,
    summary="Fit a device type's RUL model on the fleet's run-to-failure history (a draft)",
    description="Answers 202 with the fit job at once; poll GET /projects/{p}/rul/fits/{job}. "
    "With wait=true, waits for the fit and answers 201 with the draft model it filed "
    "(the fit's refusal, such as too few failures, as the error it is).",
    responses={201: {"model": ModelOut, "description": "wait=true: the draft model"}},
)
async def fit_rul(
    project: str,
    body: FitIn,
    who: Operator,
    ctx: Ctx,
    response: Response,
    wait: bool = Query(False, description="wait for the fit and answer the model (201)"),
):
    svc = _service(ctx)
    now = now_us()
    cycle = parse_duration(body.cycle, positive=True)  # InvalidTime is a 400
    if cycle < 1_000_000:
        raise InvalidInput("the cycle must be at least 1s")
    since = parse_time(body.since, now) if body.since is not None else None
    until = parse_time(body.until, now) if body.until is not None else None
    job = await run_in_threadpool(
        lambda: svc.submit(
            project,
            body.device_type,
            actor=actor(who),
            tenant=who.tenant,
            cycle=cycle,
            since=since,
            until=until,
            cap=body.cap,
        )
    )
    await run_in_threadpool(
        audit, ctx, who, "rul.fit", f"fit:{job.id}", {"device_type": body.device_type}
    )
    if not wait:
        return _job_out(ctx, job)
    job = await svc.wait(project, job.id)
    if job.state == "failed":
        raise _refusal(job)
    if job.state != "done" or job.model is None:
        raise Unavailable(
            f"RUL fit {job.id} is still {job.state}",
            hint=f"poll GET /projects/{project}/rul/fits/{job.id}",
        )
    response.status_code = 201
    model = await run_in_threadpool(ctx.registry.get_model, project, job.model, who.tenant)
    return ModelOut.of(model, card=True)


def _refusal(job: RulFit) -> AtollError:
    """The failed fit's error as the exception it was (a 400 stays a 400)."""
    e = job.error or {}
    cls = next(
        (c for c in (InvalidInput, NotFound, Unavailable) if c.code == e.get("error")), AtollError
    )
    return cls(str(e.get("message") or "the fit failed"), hint=e.get("hint"))


@router.get(
    "/projects/{project}/rul/fits/{fit_id}",
    response_model=FitJobOut,
    response_model_exclude_none=True,
    summary="One RUL fit job: queued, running (with progress), done (its model) or failed (why)",
)
def get_rul_fit(project: str, fit_id: str, who: Viewer, ctx: Ctx):
    return _job_out(ctx, ctx.registry.get_rul_fit(project, fit_id, who.tenant))


@router.get(
    "/projects/{project}/rul/fits",
    response_model=list[FitJobOut],
    response_model_exclude_none=True,
    summary="The project's RUL fit jobs, newest first",
)
def list_rul_fits(
    project: str,
    who: Viewer,
    ctx: Ctx,
    device_type: str | None = Query(None, max_length=100),
    limit: int = Query(50, ge=1, le=1000),
):
    jobs = ctx.registry.list_rul_fits(project, who.tenant, device_type=device_type, limit=limit)
    return [_job_out(ctx, j) for j in jobs]


class RetrainIn(BaseModel):
    every: str | None = Field(
        None, max_length=40, description=f"fit again this often ({DURATION_HELP}); null: never"
    )
    on_failure: bool = Field(False, description="fit again when a failure of the type is recorded")
    auto_activate: bool = Field(
        False,
        description="activate a retrained version whose CV RMSE is not worse than the active one's",
    )


class RulConfigIn(BaseModel):
    cycle: str = Field("1h", max_length=40, description=f"one cycle ({DURATION_HELP})")
    cap: float = Field(125.0, gt=0, le=100_000, description="RUL target cap in cycles")
    retrain: RetrainIn = Field(default_factory=RetrainIn)


class RetrainOut(BaseModel):
    every: str | None = None
    every_seconds: float | None = None
    on_failure: bool
    auto_activate: bool


class RulConfigOut(BaseModel):
    project: str
    device_type: str
    cycle_seconds: float
    cap: float
    retrain: RetrainOut
    last_fit: str | None = Field(None, description="when the last retraining was started")
    updated_by: str
    updated_at: str

    @classmethod
    def of(cls, c: RulConfig, every: str | None = None) -> RulConfigOut:
        secs = c.retrain_every / 1_000_000 if c.retrain_every is not None else None
        return cls(
            project=c.project,
            device_type=c.device_type,
            cycle_seconds=c.cycle / 1_000_000,
            cap=c.cap,
            retrain=RetrainOut(
                every=every or (f"{secs:g}s" if secs is not None else None),
                every_seconds=secs,
                on_failure=c.on_failure,
                auto_activate=c.auto_activate,
            ),
            last_fit=iso(c.last_fit),
            updated_by=c.updated_by,
            updated_at=iso(c.updated_at) or "",
        )


@router.put(
    "/projects/{project}/rul/config/{device_type}",
    response_model=RulConfigOut,
    response_model_exclude_none=True,
    summary="Set how a device type's RUL model is fitted and retrained",
)
def put_rul_config(project: str, device_type: str, body: RulConfigIn, who: Operator, ctx: Ctx):
    cycle = parse_duration(body.cycle, positive=True)
    if cycle < 1_000_000:
        raise InvalidInput("the cycle must be at least 1s")
    every = None
    if body.retrain.every is not None:
        every = parse_duration(body.retrain.every, positive=True)
        if every < 60_000_000:
            raise InvalidInput("retrain.every must be at least 1m")
    cfg = ctx.registry.put_rul_config(
        project,
        device_type,
        actor=actor(who),
        tenant=who.tenant,
        cycle=cycle,
        cap=body.cap,
        retrain_every=every,
        on_failure=body.retrain.on_failure,
        auto_activate=body.retrain.auto_activate,
    )
    audit(
        ctx,
        who,
        "rul.config",
        f"device_type:{device_type}",
        {"cycle": body.cycle, "cap": body.cap, "retrain": body.retrain.model_dump()},
    )
    return RulConfigOut.of(cfg)


@router.get(
    "/projects/{project}/rul/config/{device_type}",
    response_model=RulConfigOut,
    response_model_exclude_none=True,
    summary="How a device type's RUL model is fitted and retrained (404: not set)",
)
def get_rul_config(project: str, device_type: str, who: Viewer, ctx: Ctx):
    return RulConfigOut.of(ctx.registry.get_rul_config(project, device_type, who.tenant))


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
