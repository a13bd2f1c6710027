"""The model registry: every fitted model of a project as versioned records with a lifecycle.

Register a model (a draft), approve it, activate it (the version active before is retired),
retire it, or roll the active one back to the previous approved version; list and read them,
every version of one kind and scope, and export a model card as Markdown or JSON. Reads need
the viewer role, every change the operator role, and every change is audited. A transition the
model's state does not allow answers 409 naming the allowed ones. Detectors fitted by the
detection service arrive by themselves, already active (docs/MODELS.md).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Operator, Viewer, actor, audit
from atoll.api.schemas import MAX_DB_INT, ErrorOut, iso
from atoll.api.times import TIME_HELP, parse_time
from atoll.core.errors import InvalidInput
from atoll.registry import Principal
from atoll.registry import ml_models as _models
from atoll.registry.models import ModelVersion
from atoll.registry.tokens import now_us

router = APIRouter(tags=["models"])
Kind = Literal["detector", "rul", "forecaster"]
State = Literal["draft", "approved", "active", "retired"]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Not allowed in the model's state"}
}


class ModelIn(BaseModel):
    kind: Kind
    scope: str | None = Field(
        None,
        max_length=300,
        description="'type:<device type>' or 'series:<device>/<metric>' (or give device_type, "
        "or device and metric)",
        examples=["type:motor"],
    )
    device_type: str | None = Field(None, min_length=1, max_length=100, examples=["motor"])
    device: str | None = Field(None, min_length=1, max_length=100)
    metric: str | None = Field(None, min_length=1, max_length=190)
    algorithm: str = Field("", max_length=200, examples=["lightgbm-gbdt"])
    code_version: str = Field("", max_length=64, description="the trainer's version")
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict, description="validation metrics")
    data_from: str | None = Field(None, description=f"training data start; {TIME_HELP}")
    data_to: str | None = Field(None, description="training data end")
    rows: int | None = Field(None, ge=0, le=MAX_DB_INT, description="training rows")
    card: dict[str, Any] = Field(
        default_factory=dict, description="the model card (e.g. model.json of `atoll rul train`)"
    )

    def scope_text(self) -> str:
        named = [
            x
            for x in (
                self.scope,
                self.device_type and f"type:{self.device_type}",
                self.device and self.metric and f"series:{self.device}/{self.metric}",
            )
            if x
        ]
        if len(named) != 1 or (self.device is None) != (self.metric is None):
            raise InvalidInput(
                "name the scope once: scope, or device_type, or device and metric",
                hint=_models.SCOPE_HINT,
            )
        return named[0]


class ActionIn(BaseModel):
    comment: str | None = Field(None, max_length=2000, description="why; kept in the audit log")


class ModelOut(BaseModel):
    id: str
    project: str
    kind: str
    scope: str
    version: int
    state: str
    allowed: list[str] = Field(description="the actions its state allows now")
    algorithm: str
    code_version: str
    ref: str | None = Field(None, description="a detector's model ref, as anomalies carry it")
    data_from: str | None = None
    data_to: str | None = None
    rows: int | None = None
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_by: str
    created_at: str
    approved_by: str | None = None
    approved_at: str | None = None
    activated_at: str | None = None
    retired_at: str | None = None
    updated_at: str
    card: dict[str, Any] | None = Field(None, description="only when one model is asked for")

    @classmethod
    def of(cls, m: ModelVersion, *, card: bool = False) -> ModelOut:
        return cls(
            id=m.id,
            project=m.project,
            kind=m.kind,
            scope=m.scope,
            version=m.version,
            state=m.state,
            allowed=_models.allowed(m.state, approved=m.approved_at is not None, kind=m.kind),
            algorithm=m.algorithm,
            code_version=m.code_version,
            ref=m.ref,
            data_from=iso(m.data_from),
            data_to=iso(m.data_to),
            rows=m.rows,
            params=m.params,
            metrics=m.metrics,
            created_by=m.created_by,
            created_at=iso(m.created_at) or "",
            approved_by=m.approved_by,
            approved_at=iso(m.approved_at),
            activated_at=iso(m.activated_at),
            retired_at=iso(m.retired_at),
            updated_at=iso(m.updated_at) or "",
            card=m.card if card else None,
        )


class ChangeOut(BaseModel):
    model: ModelOut = Field(description="the model now active (rollback) or the one changed")
    retired: list[str] = Field(description="ids of versions this change retired")


@router.get(
    "/projects/{project}/models",
    response_model=list[ModelOut],
    response_model_exclude_none=True,
    summary="A project's models, newest change first",
)
def list_models(
    project: str,
    who: Viewer,
    ctx: Ctx,
    kind: Kind | None = None,
    scope: str | None = Query(None, max_length=300, examples=["type:motor"]),
    state: State | None = None,
    ref: str | None = Query(
        None, max_length=500, description="a detector's model ref (an anomaly's model id)"
    ),
    limit: int = Query(500, ge=1, le=10_000),
):
    models = ctx.registry.list_models(
        project, who.tenant, kind=kind, scope=scope, state=state, ref=ref, limit=limit
    )
    return [ModelOut.of(m) for m in models]


@router.post(
    "/projects/{project}/models",
    response_model=ModelOut,
    response_model_exclude_none=True,
    status_code=201,
    summary="Register a model: the next version of its kind and scope, as a draft",
)
async def register_model(project: str, body: ModelIn, who: Operator, ctx: Ctx):
    now = now_us()
    data_from = parse_time(body.data_from, now) if body.data_from is not None else None
    data_to = parse_time(body.data_to, now) if body.data_to is not None else None
    model = await run_in_threadpool(
        ctx.registry.register_model,
        project,
        actor=actor(who),
        tenant=who.tenant,
        kind=body.kind,
        scope=body.scope_text(),
        algorithm=body.algorithm,
        code_version=body.code_version,
        card=body.card,
        params=body.params,
        metrics=body.metrics,
        data_from=data_from,
        data_to=data_to,
        rows=body.rows,
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


@router.get(
    "/projects/{project}/models/{model_id}",
    response_model=ModelOut,
    response_model_exclude_none=True,
    summary="One model, with its card",
)
def get_model(project: str, model_id: str, who: Viewer, ctx: Ctx):
    return ModelOut.of(ctx.registry.get_model(project, model_id, who.tenant), card=True)


@router.get(
    "/projects/{project}/models/{model_id}/versions",
    response_model=list[ModelOut],
    response_model_exclude_none=True,
    summary="Every version of the model's kind and scope, newest first",
)
def model_versions(project: str, model_id: str, who: Viewer, ctx: Ctx):
    return [ModelOut.of(m) for m in ctx.registry.model_versions(project, model_id, who.tenant)]


@router.get(
    "/projects/{project}/models/{model_id}/card",
    summary="The model card as Markdown or JSON",
    responses={200: {"content": {"text/markdown": {}, "application/json": {}}}},
)
def model_card(
    project: str,
    model_id: str,
    who: Viewer,
    ctx: Ctx,
    format: Literal["md", "json"] = Query("md"),
):
    model = ctx.registry.get_model(project, model_id, who.tenant)
    if format == "json":
        return _models.card_json(model)
    return PlainTextResponse(
        _models.card_markdown(model, iso),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{model.id}.md"'},
    )


async def _change(
    ctx: Any, who: Principal, project: str, model_id: str, action: str, body: ActionIn | None
) -> ChangeOut:
    model, retired = await run_in_threadpool(
        ctx.registry.change_model, project, model_id, action, actor=actor(who), tenant=who.tenant
    )
    detail: dict[str, Any] = {"state": model.state, "version": model.version}
    if model.id != model_id:
        detail["activated"] = model.id
    if retired:
        detail["retired"] = retired
    if body is not None and body.comment:
        detail["comment"] = body.comment
    await run_in_threadpool(audit, ctx, who, f"model.{action}", f"model:{model_id}", detail)
    return ChangeOut(model=ModelOut.of(model), retired=retired)


@router.post(
    "/projects/{project}/models/{model_id}/approve",
    response_model=ChangeOut,
    response_model_exclude_none=True,
    summary="Approve a draft",
    responses=CONFLICT,
)
async def approve_model(
    project: str, model_id: str, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
):
    return await _change(ctx, who, project, model_id, "approve", body)


@router.post(
    "/projects/{project}/models/{model_id}/activate",
    response_model=ChangeOut,
    response_model_exclude_none=True,
    summary="Activate an approved (or earlier retired) version; the active one is retired",
    responses=CONFLICT,
)
async def activate_model(
    project: str, model_id: str, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
):
    return await _change(ctx, who, project, model_id, "activate", body)


@router.post(
    "/projects/{project}/models/{model_id}/retire",
    response_model=ChangeOut,
    response_model_exclude_none=True,
    summary="Retire a version",
    responses=CONFLICT,
)
async def retire_model(
    project: str, model_id: str, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
):
    return await _change(ctx, who, project, model_id, "retire", body)


@router.post(
    "/projects/{project}/models/{model_id}/rollback",
    response_model=ChangeOut,
    response_model_exclude_none=True,
    summary="Roll the active version back: the previous approved version becomes active",
    responses=CONFLICT,
)
async def rollback_model(
    project: str, model_id: str, who: Operator, ctx: Ctx, body: ActionIn | None = Body(None)
):
    return await _change(ctx, who, project, model_id, "rollback", body)
