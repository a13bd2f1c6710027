"""Device types: the telemetry a kind of device declares (name, unit, type, expected range)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import tables as t
from atoll.registry.models import METRIC_TYPES, DetectorBinding, DeviceType, MetricSpec
from atoll.registry.tenants import check_id, get_project
from atoll.registry.tokens import now_us

MAX_METRICS = 500
MAX_BINDINGS = 50
_BINDING_FIELDS = frozenset(f.name for f in fields(DetectorBinding))
# Same rule as the telemetry validator, so every declared metric can be sent.
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def parse_metrics(metrics: Iterable[MetricSpec | Mapping[str, Any]]) -> tuple[MetricSpec, ...]:
    out: list[MetricSpec] = []
    seen: set[str] = set()
    for m in metrics:
        if not isinstance(m, MetricSpec):
            if not isinstance(m, Mapping) or "name" not in m:
                raise InvalidInput("each metric needs at least a 'name'")
            extra = set(m) - {"name", "type", "unit", "min", "max"}
            if extra:
                raise InvalidInput(f"unknown metric field(s): {', '.join(sorted(extra))}")
            m = MetricSpec(
                name=m["name"],
                type=m.get("type") or "float",
                unit=m.get("unit") or "",
                min=m.get("min"),
                max=m.get("max"),
            )
        if not isinstance(m.name, str) or not _METRIC_NAME.match(m.name):
            raise InvalidInput(
                f"invalid metric name {m.name!r}",
                hint="1-64 characters: letters, digits, '_', '.', '-'",
            )
        if m.type not in METRIC_TYPES:
            raise InvalidInput(f"metric {m.name!r}: type must be one of {', '.join(METRIC_TYPES)}")
        for bound in (m.min, m.max):
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, (int, float))
                or not math.isfinite(bound)
            ):
                raise InvalidInput(f"metric {m.name!r}: min/max must be finite numbers or null")
        if m.min is not None and m.max is not None and m.min > m.max:
            raise InvalidInput(f"metric {m.name!r}: min {m.min} is above max {m.max}")
        if m.name in seen:
            raise InvalidInput(f"metric {m.name!r} is declared twice")
        seen.add(m.name)
        out.append(m)
    if len(out) > MAX_METRICS:
        raise InvalidInput(f"a device type declares at most {MAX_METRICS} metrics")
    return tuple(out)


def parse_detectors(
    bindings: Iterable[DetectorBinding | Mapping[str, Any]],
    metrics: tuple[MetricSpec, ...] | None = None,
) -> tuple[DetectorBinding, ...]:
    """Bindings in their shape (names and settings are the detection service's to check);
    with ``metrics``, every bound metric must be one the type declares."""
    out: list[DetectorBinding] = []
    declared = None if metrics is None else {m.name for m in metrics}
    for b in bindings:
        if not isinstance(b, DetectorBinding):
            if not isinstance(b, Mapping):
                raise InvalidInput("each detector binding is an object, e.g. {detector: default}")
            extra = set(b) - _BINDING_FIELDS
            if extra:
                raise InvalidInput(
                    f"unknown detector binding field(s): {', '.join(sorted(extra))}",
                    hint=f"known: {', '.join(sorted(_BINDING_FIELDS))}",
                )
            threshold = b.get("threshold")
            if threshold is not None and (
                isinstance(threshold, bool) or not isinstance(threshold, (int, float))
            ):
                raise InvalidInput("a binding's threshold is a number in (0, 1] or null")
            for name in ("params", "decision", "fleet"):
                v = b.get(name)
                if v is not None and not isinstance(v, Mapping):
                    raise InvalidInput(f"a binding's {name} is an object")
            b = DetectorBinding(
                detector=str(b.get("detector") or "default"),
                metrics=tuple(str(m) for m in b.get("metrics") or ()),
                params=dict(b.get("params") or {}),
                jointly=bool(b.get("jointly", False)),
                threshold=None if threshold is None else float(threshold),
                decision=None if b.get("decision") is None else dict(b["decision"]),
                fleet=None if b.get("fleet") is None else dict(b["fleet"]),
            )
        if declared is not None:
            unknown = [m for m in b.metrics if m not in declared]
            if unknown:
                raise InvalidInput(
                    f"detector {b.detector!r} is bound to undeclared metric(s) "
                    f"{', '.join(unknown)}",
                    hint="bind metrics the device type declares",
                )
        out.append(b)
    if len(out) > MAX_BINDINGS:
        raise InvalidInput(f"a device type has at most {MAX_BINDINGS} detector bindings")
    return tuple(out)


def _row(row) -> DeviceType:
    return DeviceType(
        row.id,
        row.project,
        row.name,
        parse_metrics(row.metrics),
        row.created_at,
        parse_detectors(row.detectors or ()),
    )


def create(
    conn: Connection,
    project: str,
    type_id: str,
    name: str | None,
    metrics: Iterable[MetricSpec | Mapping[str, Any]],
    tenant: str | None = None,
    detectors: Iterable[DetectorBinding | Mapping[str, Any]] = (),
) -> DeviceType:
    get_project(conn, project, tenant)
    check_id("device type", type_id)
    specs = parse_metrics(metrics)
    bindings = parse_detectors(detectors, specs)
    if get_or_none(conn, project, type_id):
        raise Conflict(f"device type {type_id!r} already exists in project {project!r}")
    created = now_us()
    conn.execute(
        insert(t.device_types).values(
            project=project,
            id=type_id,
            name=name or type_id,
            metrics=[m.to_dict() for m in specs],
            created_at=created,
            detectors=[b.to_dict() for b in bindings],
        )
    )
    return DeviceType(type_id, project, name or type_id, specs, created, bindings)


def get_or_none(conn: Connection, project: str, type_id: str) -> DeviceType | None:
    row = conn.execute(
        select(t.device_types).where(
            t.device_types.c.project == project, t.device_types.c.id == type_id
        )
    ).first()
    return _row(row) if row else None


def get(conn: Connection, project: str, type_id: str, tenant: str | None = None) -> DeviceType:
    get_project(conn, project, tenant)
    dt = get_or_none(conn, project, type_id)
    if dt is None:
        raise NotFound(f"device type {type_id!r} not found in project {project!r}")
    return dt


def list_(conn: Connection, project: str, tenant: str | None = None) -> list[DeviceType]:
    get_project(conn, project, tenant)
    q = (
        select(t.device_types)
        .where(t.device_types.c.project == project)
        .order_by(t.device_types.c.id)
    )
    return [_row(r) for r in conn.execute(q)]


def update_(
    conn: Connection,
    project: str,
    type_id: str,
    *,
    name: str | None = None,
    metrics: Iterable[MetricSpec | Mapping[str, Any]] | None = None,
    tenant: str | None = None,
    detectors: Iterable[DetectorBinding | Mapping[str, Any]] | None = None,
) -> DeviceType:
    old = get(conn, project, type_id, tenant)
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    specs = old.metrics
    if metrics is not None:
        specs = parse_metrics(metrics)
        values["metrics"] = [m.to_dict() for m in specs]
    if detectors is not None or metrics is not None:
        # Redeclared telemetry must still cover every bound metric.
        bound = old.detectors if detectors is None else detectors
        values["detectors"] = [b.to_dict() for b in parse_detectors(bound, specs)]
    if values:
        conn.execute(
            update(t.device_types)
            .where(t.device_types.c.project == project, t.device_types.c.id == type_id)
            .values(**values)
        )
    return get(conn, project, type_id, tenant)


def delete_(conn: Connection, project: str, type_id: str, tenant: str | None = None) -> None:
    get(conn, project, type_id, tenant)
    used = conn.execute(
        select(t.devices.c.id)
        .where(t.devices.c.project == project, t.devices.c.device_type == type_id)
        .limit(1)
    ).first()
    if used:
        raise Conflict(
            f"device type {type_id!r} is used by device {used.id!r}",
            hint="move or delete its devices first",
        )
    conn.execute(
        delete(t.device_types).where(
            t.device_types.c.project == project, t.device_types.c.id == type_id
        )
    )
