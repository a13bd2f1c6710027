"""What applying a template to a project will do, worked out before anything is changed.

The console's "new project from a template", ``POST /solutions/{t}/apply`` (``dry_run`` or
not) and ``atoll solutions apply --dry-run`` all show this: the device types it adds (with their
metrics, units and detectors) and the ones already there, which are kept as they are; the
rules it adds and the ones with the same id it replaces; the dashboard its device types get.
Devices are not added: the template's simulator makes them (``atoll sim``).

>>> from atoll.solutions import load
>>> retail = load("retail")
>>> ids = [f"rule-{i}" for i in range(len(retail.rules))]
>>> p = plan(retail, project="shop", project_exists=True, existing_types={"freezer": {"door"}},
...          rule_ids=ids, existing_rules={"rule-1"})
>>> p.create_project, [(t.name, t.action, t.missing) for t in p.device_types][0]
(False, ('freezer', 'keep', ['compressor_power', 'temperature']))
>>> [(r.id, r.action, r.device_type) for r in p.rules][:2]
[('rule-0', 'add', 'freezer'), ('rule-1', 'replace', 'chiller')]
>>> p.adds
{'device_types': 2, 'rules': 13}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from atoll.solutions.models import Template


@dataclass(frozen=True)
class MetricPlan:
    name: str
    unit: str
    min: float | None = None
    max: float | None = None
    description: str = ""


@dataclass(frozen=True)
class TypePlan:
    """``add``: created with these metrics and detectors; ``keep``: a type of that id is in the
    project already and is left as it is (``missing``: metrics the template has and it lacks)."""

    name: str
    description: str
    action: Literal["add", "keep"]
    metrics: list[MetricPlan]
    detectors: list[str]
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RulePlan:
    """``add``: a new rule; ``replace``: the project's rule with that id is overwritten."""

    id: str
    name: str
    action: Literal["add", "replace"]
    device_type: str | None
    severity: str


@dataclass(frozen=True)
class Plan:
    template: str
    title: str
    sector: str
    project: str
    create_project: bool
    device_types: list[TypePlan]
    rules: list[RulePlan]
    dashboard: str
    panels: list[str]

    @property
    def adds(self) -> dict[str, int]:
        """How many of each are new.

        >>> from atoll.solutions import load
        >>> plan(load("retail"), project="shop", project_exists=False, rules=False).adds
        {'device_types': 3, 'rules': 0}
        """
        return {
            "device_types": sum(t.action == "add" for t in self.device_types),
            "rules": sum(r.action == "add" for r in self.rules),
        }


def plan(
    template: Template,
    *,
    project: str,
    project_exists: bool,
    existing_types: Mapping[str, Collection[str]] | None = None,
    rule_ids: Sequence[str] = (),
    existing_rules: Collection[str] = (),
    rules: bool = True,
) -> Plan:
    """The plan for ``project``: ``existing_types`` maps the project's device types to their
    metric names; ``rule_ids`` are the ids the template's rules get in the project (the rules
    engine names them), ``existing_rules`` the project's rule ids. ``rules=False``: no rules."""
    existing_types = existing_types or {}
    types = []
    for d in template.device_types:
        have = existing_types.get(d.name)
        types.append(
            TypePlan(
                name=d.name,
                description=d.description,
                action="add" if have is None else "keep",
                metrics=[
                    MetricPlan(m.name, m.unit, m.min, m.max, m.description) for m in d.telemetry
                ],
                detectors=[f"{b.detector} on {', '.join(b.metrics)}" for b in d.detectors],
                missing=[] if have is None else [m for m in d.metric_names if m not in have],
            )
        )
    planned: list[RulePlan] = []
    if rules:
        for rid, raw in zip(rule_ids or (), template.rules, strict=True):
            target = raw.get("target") or {}
            planned.append(
                RulePlan(
                    id=rid,
                    name=str(raw["name"]),
                    action="replace" if rid in existing_rules else "add",
                    device_type=target.get("device_type"),
                    severity=str(raw.get("severity", "major")),
                )
            )
    return Plan(
        template=template.name,
        title=template.title,
        sector=template.sector,
        project=project,
        create_project=not project_exists,
        device_types=types,
        rules=planned,
        dashboard=template.dashboard.title,
        panels=[p.title for p in template.dashboard.panels],
    )
