"""Start a project from a template through the REST API: device types (with the detectors bound
to their metrics) and rules, as an operator would create them by hand; :func:`detector_bindings`
lists what a template binds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atoll.core.errors import NotFound
from atoll.solutions.models import Template

if TYPE_CHECKING:
    from atoll.client import Client


@dataclass
class Applied:
    project: str  # the project id as the API returned it (``acme~line`` in tenant acme)
    created_project: bool = False
    device_types: list[str] = field(default_factory=list)  # created
    existing_types: list[str] = field(default_factory=list)  # already there, left alone
    rules: list[str] = field(default_factory=list)


def apply(
    client: Client,
    template: Template,
    project: str,
    *,
    project_name: str | None = None,
    rules: bool = True,
) -> Applied:
    """Create ``project`` (if missing), the template's device types and its rules.

    ``client`` is an :class:`atoll.Client` with an operator or admin key. Device types that
    already exist are kept as they are; rules with the same id are replaced.
    """
    project, created = ensure_project(client, project, project_name or template.title)
    out = Applied(project, created_project=created)
    existing = {t.id for t in client.device_types(project)}
    for dtype in template.device_types:
        if dtype.name in existing:
            out.existing_types.append(dtype.name)
            continue
        client.create_device_type(
            project,
            dtype.name,
            dtype.registry_metrics(),
            name=dtype.description or dtype.name,
            detectors=[b.model_dump() for b in dtype.detectors],
        )
        out.device_types.append(dtype.name)
    if rules and template.rules:
        out.rules = client.import_rules(project, {"rules": template.rules}).rules
    return out


def ensure_project(client: Client, project: str, name: str) -> tuple[str, bool]:
    """The id of the caller's project ``project``, creating it if missing; and whether it was.

    An id chosen in a tenant other than ``default`` is stored in the tenant's namespace
    (``line`` becomes ``acme~line``), and the API looks ids up only as stored; so a project
    made by an earlier run is found among the caller's own projects by either form.
    """
    try:
        return client.project(project).id, False
    except NotFound:
        pass
    for p in client.projects():
        if p.id.rpartition("~")[2] == project:
            return p.id, False
    return client.create_project(name, id=project).id, True


def detector_bindings(template: Template) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """``(device_type, detector, metrics, params)`` for every detector the template declares."""
    return [
        (d.name, b.detector, list(b.metrics), dict(b.params))
        for d in template.device_types
        for b in d.detectors
    ]
