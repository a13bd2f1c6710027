"""Projects of the caller's tenant, with their retention setting."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from atoll.api.deps import Admin, Ctx, Viewer, audit, disconnect_device
from atoll.api.schemas import MAX_RETENTION_DAYS, ProjectOut

router = APIRouter(tags=["projects"])


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(
        None, description="optional global id (lower-case letters, digits, - and _)"
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="delete points older than this; null keeps all",
    )


class ProjectPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)


@router.get("/projects", response_model=list[ProjectOut], summary="List projects")
def list_projects(who: Viewer, ctx: Ctx):
    return [ProjectOut.of(p) for p in ctx.registry.list_projects(who.tenant)]


@router.post("/projects", response_model=ProjectOut, status_code=201, summary="Create a project")
def create_project(body: ProjectIn, who: Admin, ctx: Ctx):
    p = ctx.registry.create_project(
        who.tenant, body.name, project_id=body.id, retention_days=body.retention_days
    )
    audit(ctx, who, "project.create", f"project:{p.id}", body.model_dump(exclude_none=True))
    return ProjectOut.of(p)


@router.get("/projects/{project}", response_model=ProjectOut, summary="Get a project")
def get_project(project: str, who: Viewer, ctx: Ctx):
    return ProjectOut.of(ctx.registry.get_project(project, who.tenant))


@router.patch("/projects/{project}", response_model=ProjectOut, summary="Rename or set retention")
def update_project(project: str, body: ProjectPatch, who: Admin, ctx: Ctx):
    """Send ``"retention_days": null`` to keep data
    forever; leave the field out to keep it unchanged."""
    kw = (
        {"retention_days": body.retention_days} if "retention_days" in body.model_fields_set else {}
    )
    p = ctx.registry.update_project(project, who.tenant, name=body.name, **kw)
    audit(ctx, who, "project.update", f"project:{project}", body.model_dump(exclude_unset=True))
    return ProjectOut.of(p)


@router.delete("/projects/{project}", status_code=204, summary="Delete a project and its data")
def delete_project(project: str, who: Admin, ctx: Ctx):
    for device in ctx.registry.delete_project(project, who.tenant):
        # As for a deleted device: its connections close and nothing more is acknowledged.
        disconnect_device(ctx, device, "project deleted", forget=True)
    ctx.store.delete_before(project, 2**62)
    audit(ctx, who, "project.delete", f"project:{project}")
    return Response(status_code=204)
