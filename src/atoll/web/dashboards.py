"""A project's dashboard, laid out by a sector solution template.

Projects do not record the template they were started from, so the layout is the template whose
device types the project has most of (``?template=`` picks one). The answer carries what the
console needs to draw it in one round trip: the panels with their metrics' units and expected
ranges, the first devices of each panel's type (charts stay readable and fast; the rest are
counted) and those devices' latest values for the tiles. Charts come from the series route,
updates from the live socket.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from atoll.api.deps import Ctx, Viewer
from atoll.core.errors import NotFound
from atoll.solutions import discover
from atoll.solutions.models import Template

router = APIRouter(tags=["console"])

#: Devices drawn per device type: more lines than this on one chart can't be told apart.
MAX_DEVICES = 8


class TemplateRef(BaseModel):
    name: str
    title: str
    sector: str
    matched_types: int


class MetricInfo(BaseModel):
    name: str
    unit: str = ""
    min: float | None = None
    max: float | None = None


class PanelOut(BaseModel):
    title: str
    device_type: str
    kind: Literal["line", "stat", "gauge", "bar", "table", "status"]
    width: int
    metrics: list[MetricInfo]


class TypeDevices(BaseModel):
    ids: list[str]
    total: int


class LatestPoint(BaseModel):
    ts: float = Field(description="epoch ms")
    value: float


class DashboardOut(BaseModel):
    project: str
    template: str | None
    title: str | None
    sector: str | None
    templates: list[TemplateRef]
    panels: list[PanelOut]
    devices: dict[str, TypeDevices]
    latest: dict[str, dict[str, LatestPoint]] = Field(
        description="device -> metric -> newest point"
    )


def choose(templates: list[Template], types: set[str], wanted: str | None) -> Template | None:
    """The template named ``wanted``, else the one sharing most device types with the project."""
    if wanted:
        for t in templates:
            if t.name == wanted:
                return t
        raise NotFound(
            f"no solution template {wanted!r}",
            hint="known templates: " + ", ".join(t.name for t in templates),
        )
    scored = [(len(types & {d.name for d in t.device_types}), t) for t in templates]
    best = max((n for n, _ in scored), default=0)
    return next((t for n, t in scored if n == best), None) if best else None


@router.get(
    "/projects/{project}/dashboard",
    response_model=DashboardOut,
    summary="A project's dashboard layout from its solution template",
)
def dashboard(
    project: str,
    who: Viewer,
    ctx: Ctx,
    template: str | None = Query(None, description="template name; default: best match"),
):
    ctx.registry.get_project(project, who.tenant)
    types = {t.id for t in ctx.registry.list_device_types(project, who.tenant)}
    templates = discover()
    chosen = choose(templates, types, template)
    refs = [
        TemplateRef(
            name=t.name,
            title=t.title,
            sector=t.sector,
            matched_types=len(types & {d.name for d in t.device_types}),
        )
        for t in templates
    ]
    if chosen is None:
        return DashboardOut(
            project=project,
            template=None,
            title=None,
            sector=None,
            templates=refs,
            panels=[],
            devices={},
            latest={},
        )
    panels = []
    for p in chosen.dashboard.panels:
        dt = chosen.device_type(p.device_type)
        metrics = [
            MetricInfo(name=m, unit=dt.metric(m).unit, min=dt.metric(m).min, max=dt.metric(m).max)
            for m in p.metrics
        ]
        panels.append(
            PanelOut(
                title=p.title,
                device_type=p.device_type,
                kind=p.kind,
                width=p.width,
                metrics=metrics,
            )
        )
    devices = {}
    for name in dict.fromkeys(p.device_type for p in chosen.dashboard.panels):
        ids = [
            d.id
            for d in ctx.registry.list_devices(
                project, who.tenant, limit=MAX_DEVICES, device_type=name
            )
        ]
        total = (
            ctx.registry.count_devices(project, device_type=name)
            if len(ids) == MAX_DEVICES
            else len(ids)
        )
        devices[name] = TypeDevices(ids=ids, total=total)
    # Per shown device, not the whole project: a fleet of thousands stays one small answer.
    latest = {
        dev: {
            k.metric: LatestPoint(ts=ts / 1000, value=v)
            for k, (ts, v) in ctx.store.latest(project, dev).items()
        }
        for t in devices.values()
        for dev in t.ids
    }
    return DashboardOut(
        project=project,
        template=chosen.name,
        title=chosen.dashboard.title,
        sector=chosen.sector,
        templates=refs,
        panels=panels,
        devices=devices,
        latest=latest,
    )
