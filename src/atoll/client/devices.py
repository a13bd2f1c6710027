"""Projects, device types, devices, credentials, twins, commands and a device's detection
(``Client``'s part)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param

_UNCHANGED: Any = object()


@dataclass(frozen=True)
class Project:
    id: str
    tenant: str
    name: str
    retention_days: int | None
    created_at: datetime


@dataclass(frozen=True)
class Metric:
    name: str
    type: str = "float"
    unit: str = ""
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class DetectorBinding:
    """What judges some metrics of every device of a type: ``detector`` on ``metrics`` (empty:
    every metric), with its ``params``; ``jointly`` judges them together per device;
    ``threshold`` where a score becomes anomalous; ``decision`` the episode-decision settings
    (``{}`` the defaults, ``None`` per-reading decisions); ``fleet`` the fleet-baseline settings
    (``{}`` the defaults: each device also judged against its siblings)."""

    detector: str = "default"
    metrics: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    jointly: bool = False
    threshold: float | None = None
    decision: dict[str, Any] | None = None
    fleet: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeviceType:
    id: str
    project: str
    name: str
    metrics: tuple[Metric, ...]
    created_at: datetime
    detectors: tuple[DetectorBinding, ...] = ()


@dataclass(frozen=True)
class Device:
    id: str
    project: str
    name: str
    device_type: str | None
    labels: dict[str, str]
    disabled: bool
    has_credentials: bool
    created_at: datetime
    last_seen: datetime | None = None
    #: Each metric's last value, from ``Client.devices(..., latest=True)``.
    latest: dict[str, float] | None = None
    #: ``"gateway"``: it speaks for child devices; a child names its gateway in ``parent``.
    kind: str = "device"
    parent: str | None = None


@dataclass(frozen=True)
class DeviceCredentials:
    device: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class RegisteredDevice:
    device: Device
    credentials: DeviceCredentials


@dataclass(frozen=True)
class Twin:
    device: str
    desired: dict[str, Any]
    desired_version: int
    reported: dict[str, Any]
    reported_version: int
    desired_updated_at: datetime | None = None
    reported_updated_at: datetime | None = None


@dataclass(frozen=True)
class Command:
    id: str
    device: str
    name: str
    args: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    result: Any = None


@dataclass(frozen=True)
class MaintenanceEvent:
    """A failure, repair, part replacement or inspection of a device (docs/API.md,
    "Maintenance records")."""

    id: str
    device: str
    kind: str
    at: datetime
    recorded_by: str
    created_at: datetime
    part: str | None = None
    cost: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Rejection:
    transport: str
    reason: str
    count: int
    last_at: datetime
    last_message: str


@dataclass(frozen=True)
class DetectionModel:
    """One version of a series' model of normal (docs/API.md, "A device's detection")."""

    id: str
    metric: str
    version: int
    detector: str
    fitted_at: datetime
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    history_from: datetime | None = None
    history_to: datetime | None = None
    rows: int = 0
    excluded: int = 0
    thresholds: dict[str, Any] | None = None
    actor: str | None = None
    accepted_from: datetime | None = None
    accepted_to: datetime | None = None


@dataclass(frozen=True)
class SeriesDetection:
    """What judges one series of a device now; ``flagged_since``: when ``is_anomaly`` rose."""

    metric: str
    detector: str
    chosen: str
    metrics: tuple[str, ...] = ()
    model: DetectionModel | None = None
    flagged: bool = False
    flagged_since: datetime | None = None
    last_reading: datetime | None = None
    fitting: bool = False


@dataclass(frozen=True)
class Refit:
    """``refitted``: the new model versions; ``skipped``: ``(metric, why not)``."""

    refitted: tuple[DetectionModel, ...]
    skipped: tuple[tuple[str, str], ...] = ()


def _model(d: Mapping[str, Any] | None) -> DetectionModel | None:
    return None if d is None else build(DetectionModel, d)


def _series_detection(d: Mapping[str, Any]) -> SeriesDetection:
    condition = d.get("condition") or {}
    return build(
        SeriesDetection,
        {
            **d,
            "metrics": tuple(d.get("metrics", ())),
            "model": _model(d.get("model")),
            "flagged": bool(condition.get("flagged")),
            "flagged_since": condition.get("since"),
        },
    )


def _device_type(d: Mapping[str, Any]) -> DeviceType:
    return build(
        DeviceType,
        {
            **d,
            "metrics": tuple(Metric(**m) for m in d["metrics"]),
            "detectors": tuple(
                build(DetectorBinding, {**b, "metrics": tuple(b.get("metrics") or ())})
                for b in d.get("detectors") or ()
            ),
        },
    )


def _bindings(bindings: Iterable[DetectorBinding | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for b in bindings:
        d = asdict(b) if isinstance(b, DetectorBinding) else dict(b)
        d["metrics"] = list(d.get("metrics") or ())
        out.append(d)
    return out


def _metrics(metrics: Iterable[Metric | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [asdict(m) if isinstance(m, Metric) else dict(m) for m in metrics]


def _registered(d: Mapping[str, Any]) -> RegisteredDevice:
    c = d["credentials"]
    return RegisteredDevice(build(Device, d["device"]), DeviceCredentials(c["device"], c["secret"]))


class DevicesCalls(Http):
    # projects -------------------------------------------------------------------------------------
    def projects(self) -> list[Project]:
        return [build(Project, p) for p in self._call("GET", "/projects")]

    def project(self, project: str) -> Project:
        return build(Project, self._call("GET", f"/projects/{project}"))

    def create_project(
        self, name: str, *, id: str | None = None, retention_days: int | None = None
    ) -> Project:
        return build(
            Project,
            self._call(
                "POST", "/projects", json={"name": name, "id": id, "retention_days": retention_days}
            ),
        )

    # sector templates ----------------------------------------------------------------------------
    def solutions(self) -> list[dict[str, Any]]:
        """The sector templates the server knows: name, title, sector, device types, rules."""
        return list(self._call("GET", "/solutions"))

    def apply_solution(
        self,
        template: str,
        project: str,
        *,
        name: str | None = None,
        rules: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Start ``project`` (created if missing, named ``name``) from ``template``: its device
        types the project lacks and its rules. ``dry_run``: only what it would add, keep and
        replace. The answer lists each device type (``action`` add or keep, with metrics and
        units) and rule (add or replace), the dashboard panels and ``create_project``."""
        body = {"project": project, "name": name, "rules": rules, "dry_run": dry_run}
        return dict(self._call("POST", f"/solutions/{template}/apply", json=body))

    def update_project(
        self, project: str, *, name: str | None = None, retention_days: int | None = _UNCHANGED
    ) -> Project:
        """Rename with ``name=``; ``retention_days=`` sets the retention (``None``: keep all)."""
        body: dict[str, Any] = {} if name is None else {"name": name}
        if retention_days is not _UNCHANGED:
            body["retention_days"] = retention_days
        return build(Project, self._call("PATCH", f"/projects/{project}", json=body))

    def set_retention(self, project: str, days: int | None) -> Project:
        return self.update_project(project, retention_days=days)

    def delete_project(self, project: str) -> None:
        """The project, its devices and all their data."""
        self._call("DELETE", f"/projects/{project}")

    # device types ---------------------------------------------------------------------------------
    def device_types(self, project: str) -> list[DeviceType]:
        return [_device_type(t) for t in self._call("GET", f"/projects/{project}/device-types")]

    def device_type(self, project: str, type_id: str) -> DeviceType:
        return _device_type(self._call("GET", f"/projects/{project}/device-types/{type_id}"))

    def create_device_type(
        self,
        project: str,
        id: str,
        metrics: Iterable[Metric | Mapping[str, Any]],
        *,
        name: str | None = None,
        detectors: Iterable[DetectorBinding | Mapping[str, Any]] = (),
    ) -> DeviceType:
        """``detectors``: what judges its devices' series (none: the default for each)."""
        return _device_type(
            self._call(
                "POST",
                f"/projects/{project}/device-types",
                json={
                    "id": id,
                    "name": name,
                    "metrics": _metrics(metrics),
                    "detectors": _bindings(detectors),
                },
            )
        )

    def update_device_type(
        self,
        project: str,
        type_id: str,
        *,
        name: str | None = None,
        metrics: Iterable[Metric | Mapping[str, Any]] | None = None,
        detectors: Iterable[DetectorBinding | Mapping[str, Any]] | None = None,
    ) -> DeviceType:
        """``metrics`` replaces the whole list; devices of the type are checked against it at
        once. ``detectors`` replaces every binding (``[]`` unbinds them); the series it changes
        start again with the new detector."""
        body: dict[str, Any] = {"name": name}
        if metrics is not None:
            body["metrics"] = _metrics(metrics)
        if detectors is not None:
            body["detectors"] = _bindings(detectors)
        return _device_type(
            self._call("PATCH", f"/projects/{project}/device-types/{type_id}", json=body)
        )

    def delete_device_type(self, project: str, type_id: str) -> None:
        """Only a type no device uses."""
        self._call("DELETE", f"/projects/{project}/device-types/{type_id}")

    # devices and credentials ----------------------------------------------------------------------
    def devices(
        self,
        project: str,
        *,
        device_type: str | None = None,
        search: str | None = None,
        status: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        latest: bool = False,
        parent: str | None = None,
        kind: str | None = None,
    ) -> list[Device]:
        """A page of devices by id; ``search`` matches
        id, name or type; ``status``: online | offline; ``latest``: with each metric's last
        value (``Device.latest``); ``parent``: a gateway's children; ``kind``: ``"gateway"``
        or ``"device"`` only."""
        return [
            build(Device, d)
            for d in self._call(
                "GET",
                f"/projects/{project}/devices",
                params={
                    "device_type": device_type,
                    "q": search,
                    "status": status,
                    "limit": limit,
                    "offset": offset,
                    "latest": "true" if latest else None,
                    "parent": parent,
                    "kind": kind,
                },
            )
        ]

    def device(self, device: str) -> Device:
        return build(Device, self._call("GET", f"/devices/{device}"))

    def register_device(
        self,
        project: str,
        *,
        id: str | None = None,
        name: str | None = None,
        device_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        kind: str = "device",
        parent: str | None = None,
    ) -> RegisteredDevice:
        """Create a device. Its secret is in ``.credentials.secret`` now and never again.
        ``kind="gateway"``: it speaks for child devices; ``parent``: the gateway (of this
        project) a child speaks through (docs/DEVICES.md, "Gateways")."""
        return _registered(
            self._call(
                "POST",
                f"/projects/{project}/devices",
                json={
                    "id": id,
                    "name": name,
                    "device_type": device_type,
                    "labels": dict(labels or {}),
                    "kind": kind,
                    "parent": parent,
                },
            )
        )

    def register_devices(
        self, project: str, devices: Iterable[str | Mapping[str, Any]]
    ) -> list[RegisteredDevice]:
        """Register many devices in one request (ids, or dicts like ``register_device``'s keywords);
        all or none. Sent in chunks of 1000."""
        items = [{"id": d} if isinstance(d, str) else dict(d) for d in devices]
        out = []
        for i in range(0, len(items), 1000):
            batch = self._call(
                "POST", f"/projects/{project}/devices/batch", json={"devices": items[i : i + 1000]}
            )
            out += [_registered(d) for d in batch]
        return out

    def update_device(self, device: str, **changes: Any) -> Device:
        """``name=``, ``labels=``, ``device_type=``, ``disabled=``, ``kind=``, ``parent=``
        (``None`` detaches a child from its gateway)."""
        return build(Device, self._call("PATCH", f"/devices/{device}", json=changes))

    def disable_device(self, device: str, disabled: bool = True) -> Device:
        return self.update_device(device, disabled=disabled)

    def delete_device(self, device: str) -> None:
        self._call("DELETE", f"/devices/{device}")

    def rotate_credentials(self, device: str) -> DeviceCredentials:
        """A new secret, shown once; the old one stops working at once."""
        c = self._call("POST", f"/devices/{device}/credentials/rotate")
        return DeviceCredentials(c["device"], c["secret"])

    def revoke_credentials(self, device: str) -> None:
        self._call("DELETE", f"/devices/{device}/credentials")

    def rejections(self, device: str) -> list[Rejection]:
        """Refused messages by transport and reason."""
        return [build(Rejection, r) for r in self._call("GET", f"/devices/{device}/rejections")]

    # twins and commands ---------------------------------------------------------------------------
    def twin(self, device: str) -> Twin:
        return build(Twin, self._call("GET", f"/devices/{device}/twin"))

    def update_desired(self, device: str, patch: Mapping[str, Any]) -> Twin:
        """JSON merge patch of the desired properties (``None`` deletes a key)."""
        return build(Twin, self._call("PATCH", f"/devices/{device}/twin/desired", json=dict(patch)))

    def send_command(
        self, device: str, name: str, args: Mapping[str, Any] | None = None, *, ttl_s: float = 300
    ) -> Command:
        return build(
            Command,
            self._call(
                "POST",
                f"/devices/{device}/commands",
                json={"name": name, "args": dict(args or {}), "ttl_s": ttl_s},
            ),
        )

    def commands(
        self, device: str, *, status: str | None = None, limit: int = 100
    ) -> list[Command]:
        return [
            build(Command, c)
            for c in self._call(
                "GET", f"/devices/{device}/commands", params={"status": status, "limit": limit}
            )
        ]

    def command(self, device: str, command_id: str) -> Command:
        return build(Command, self._call("GET", f"/devices/{device}/commands/{command_id}"))

    # maintenance ----------------------------------------------------------------------------------
    def record_maintenance(
        self,
        device: str,
        kind: str,
        *,
        at: TimeLike = None,
        part: str | None = None,
        cost: float | None = None,
        note: str | None = None,
    ) -> MaintenanceEvent:
        """Record a ``failure``, ``repair``, ``replacement`` or ``inspection`` (``at``: when it
        happened, default now). A failure ends the device's run."""
        body: dict[str, Any] = {"kind": kind, "at": time_param(at)}
        body.update(
            {k: v for k, v in (("part", part), ("cost", cost), ("note", note)) if v is not None}
        )
        return build(
            MaintenanceEvent, self._call("POST", f"/devices/{device}/maintenance", json=body)
        )

    def maintenance(
        self,
        device: str | None = None,
        *,
        project: str | None = None,
        kind: str | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        limit: int = 1000,
    ) -> list[MaintenanceEvent]:
        """A device's maintenance records, or every device's of ``project``; newest first."""
        if (device is None) == (project is None):
            raise ValueError("name a device or a project")
        params = {
            "kind": kind,
            "since": time_param(since),
            "until": time_param(until),
            "limit": limit,
        }
        if device is not None:
            got = self._call("GET", f"/devices/{device}/maintenance", params=params)
        else:
            got = self._call("GET", f"/projects/{project}/maintenance", params=params)
        return [build(MaintenanceEvent, e) for e in got]

    def delete_maintenance(self, device: str, event_id: str) -> None:
        self._call("DELETE", f"/devices/{device}/maintenance/{event_id}")

    def import_maintenance(self, project: str, csv_text: str) -> int:
        """Import a maintenance history (CSV ``device,at,kind[,part,cost,note]``): all rows or
        none; the number imported."""
        got = self._call(
            "POST",
            f"/projects/{project}/maintenance/import",
            content=csv_text.encode(),
            headers={"content-type": "text/csv"},
        )
        return int(got["imported"])

    # detection ------------------------------------------------------------------------------------
    def detection(self, project: str, device: str) -> list[SeriesDetection]:
        """What judges each series of the device: detector, model record, condition."""
        got = self._call("GET", f"/projects/{project}/devices/{device}/detection")
        return [_series_detection(s) for s in got["series"]]

    def refit(self, project: str, device: str, metric: str | None = None) -> Refit:
        """Refit the device's models (one ``metric``'s, or all) on their stored history now."""
        got = self._call(
            "POST",
            f"/projects/{project}/devices/{device}/detection/refit",
            json={"metric": metric} if metric is not None else {},
        )
        return Refit(
            tuple(build(DetectionModel, r) for r in got["refitted"]),
            tuple((s["metric"], s["reason"]) for s in got["skipped"]),
        )

    def accept_normal(
        self,
        project: str,
        device: str,
        metric: str,
        start: TimeLike,
        end: TimeLike,
        *,
        comment: str | None = None,
    ) -> DetectionModel:
        """An operator's "accept as new normal" for the stored readings of ``metric`` in
        ``[start, end)``: the new model version (reason ``accept``); audited."""
        body: dict[str, Any] = {"metric": metric, "from": time_param(start), "to": time_param(end)}
        if comment is not None:
            body["comment"] = comment
        got = self._call(
            "POST", f"/projects/{project}/devices/{device}/detection/accept", json=body
        )
        return build(DetectionModel, got)
