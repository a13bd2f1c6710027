"""Sector templates over HTTP: list them, and start a project from one in a single call, with a
``dry_run`` that answers what it would do (``atoll.solutions.plan``) and changes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.device_types import rebind
from atoll.api.rules import prepare_import, service
from atoll.core.errors import Forbidden, NotFound
from atoll.registry import Principal
from atoll.registry.namespaces import qualify_id
from atoll.rules.loading import RuleFile, parse_rule
from atoll.solutions import Template, discover, load
from atoll.solutions.plan import Plan, plan

router = APIRouter(tags=["solutions"])


class SolutionOut(BaseModel):
    name: str
    title: str
    sector: str
    version: str
    description: str
    device_types: list[str]
    rules: int


class ApplyIn(BaseModel):
    project: str = Field(
        ..., min_length=1, max_length=128, description="project id; created if missing"
    )
    name: str | None = Field(None, max_length=200, description="its name if created")
    rules: bool = Field(True, description="also the template's rules")
    dry_run: bool = Field(False, description="only answer what would be done")


class MetricOut(BaseModel):
    name: str
    unit: str
    min: float | None
    max: float | None
    description: str


class TypeOut(BaseModel):
    name: str
    description: str
    action: str = Field(description="add, or keep: the project has this type, left as it is")
    metrics: list[MetricOut]
    detectors: list[str]
    missing: list[str] = Field(description="metrics of the template a kept type lacks")


class RuleOut(BaseModel):
    id: str
    name: str
    action: str = Field(description="add, or replace: the project's rule of that id")
    device_type: str | None
    severity: str


class PlanOut(BaseModel):
    template: str
    title: str
    sector: str
    project: str
    create_project: bool
    device_types: list[TypeOut]
    rules: list[RuleOut]
    dashboard: str
    panels: list[str]
    adds: dict[str, int]
    dry_run: bool
    next: str = Field(description="how to add simulated devices of the template's types")


@router.get("/solutions", response_model=list[SolutionOut], summary="List the sector templates")
def list_solutions(who: Viewer) -> list[SolutionOut]:
    return [
        SolutionOut(
            name=t.name,
            title=t.title,
            sector=t.sector,
            version=t.version,
            description=t.description.strip(),
            device_types=[d.name for d in t.device_types],
            rules=len(t.rules),
        )
        for t in discover()
    ]


def _project(ctx: Any, who: Principal, chosen: str) -> tuple[str, bool]:
    """The stored id of the caller's project ``chosen`` (``line`` or ``acme~line``), and
    whether it exists."""
    for candidate in dict.fromkeys([chosen, qualify_id("project", who.tenant, chosen)]):
        try:
            return ctx.registry.get_project(candidate, who.tenant).id, True
        except NotFound:
            continue
    return qualify_id("project", who.tenant, chosen), False


def _rules(ctx: Any, who: Principal, template: Template, project: str) -> RuleFile:
    doc = RuleFile(
        rules=[
            parse_rule(raw, project=project, prefix=f"{template.name}.rules[{i}]")
            for i, raw in enumerate(template.rules)
        ]
    )
    return prepare_import(ctx, who, project, who.tenant, doc)


def _plan(ctx: Any, who: Principal, template: Template, body: ApplyIn) -> tuple[Plan, RuleFile]:
    project, exists = _project(ctx, who, body.project)
    if not exists and not who.can("admin"):
        raise Forbidden(
            f"project {body.project!r} does not exist and only an admin creates projects",
            hint="name one of your projects, or ask an admin of the enterprise",
        )
    types: dict[str, set[str]] = {}
    existing_rules: set[str] = set()
    if exists:
        types = {
            t.id: {m.name for m in t.metrics}
            for t in ctx.registry.list_device_types(project, who.tenant)
        }
    doc = RuleFile()
    if body.rules and template.rules:
        svc = service(ctx)  # 503 when this node serves no rules: say so before changing anything
        doc = _rules(ctx, who, template, project)
        if exists:
            existing_rules = {r.id for r in svc.list_rules(project) if r.id}
    got = plan(
        template,
        project=project,
        project_exists=exists,
        existing_types=types,
        rule_ids=[r.id or "" for r in doc.rules],
        existing_rules=existing_rules,
        rules=body.rules,
    )
    return got, doc


@router.post(
    "/solutions/{template}/apply",
    response_model=PlanOut,
    summary="Start a project from a template, or preview it",
)
async def apply_solution(template: str, body: ApplyIn, who: Operator, ctx: Ctx) -> PlanOut:
    """Creates the project if missing (admins), the template's device types that the project
    lacks (those it has are kept as they are) and its rules (a rule with the same id is
    replaced). ``dry_run``: answers the same without changing anything. Audit:
    ``solution.apply``."""
    t = await asyncio.to_thread(load, template)
    got, doc = await run_in_threadpool(_plan, ctx, who, t, body)
    if not body.dry_run:
        await _apply(ctx, who, t, body, got, doc)
    return PlanOut(
        **asdict(got),
        adds=got.adds,
        dry_run=body.dry_run,
        next=f"atoll sim --project {got.project} -t {t.name} -n 20",
    )


async def _apply(
    ctx: Any, who: Principal, t: Template, body: ApplyIn, got: Plan, doc: RuleFile
) -> None:
    if got.create_project:
        await run_in_threadpool(
            ctx.registry.create_project, who.tenant, body.name or t.title, project_id=body.project
        )
    for d in t.device_types:
        if next(p for p in got.device_types if p.name == d.name).action != "add":
            continue
        await run_in_threadpool(
            ctx.registry.create_device_type,
            got.project,
            d.name,
            d.registry_metrics(),
            name=d.description or d.name,
            tenant=who.tenant,
            detectors=[b.model_dump() for b in d.detectors],
        )
        await rebind(ctx, got.project, d.name)
    if doc.rules:
        await service(ctx).apply(doc)
    await run_in_threadpool(
        audit,
        ctx,
        who,
        "solution.apply",
        f"project:{got.project}",
        {
            "template": t.name,
            "created_project": got.create_project,
            "device_types": [p.name for p in got.device_types if p.action == "add"],
            "rules": [r.id for r in got.rules],
        },
    )
