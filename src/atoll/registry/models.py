"""Registry records as plain frozen dataclasses. Only these cross the registry boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ApiKey",
    "AuditEntry",
    "BootstrapSecrets",
    "Command",
    "Device",
    "DeviceCredentials",
    "DeviceIdentity",
    "DetectorBinding",
    "DeviceType",
    "Invite",
    "MaintenanceEvent",
    "MetricSpec",
    "ModelVersion",
    "NewApiKey",
    "Portfolio",
    "NewInvite",
    "Principal",
    "Project",
    "ProjectActivity",
    "Rejection",
    "RulConfig",
    "RulFit",
    "Tenant",
    "Twin",
    "UsageDay",
    "User",
]

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[str, ...] = ("admin", "operator", "viewer")
MetricType = Literal["float", "int", "bool"]
METRIC_TYPES: tuple[str, ...] = ("float", "int", "bool")
CommandStatus = Literal["pending", "delivered", "acked", "failed", "expired"]
COMMAND_FINAL: frozenset[str] = frozenset({"acked", "failed", "expired"})


def role_at_least(role: str, needed: str) -> bool:
    """``admin`` > ``operator`` > ``viewer``."""
    return ROLES.index(role) <= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    tenant: str
    name: str
    retention_days: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class ProjectActivity:
    """A project's devices at a glance, for the lab home (``Registry.project_activity``)."""

    project: str
    tenant: str
    name: str
    devices: int
    #: Devices not disabled that were seen at or after the ``online_since`` asked for.
    online: int
    #: The newest ``last_seen`` of its devices (µs), ``None`` when none was ever seen.
    last_seen: int | None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One telemetry value a device type declares. ``min``/``max`` are the expected range."""

    name: str
    type: MetricType = "float"
    unit: str = ""
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "unit": self.unit,
            "min": self.min,
            "max": self.max,
        }


@dataclass(frozen=True, slots=True)
class DetectorBinding:
    """What judges some metrics of every device of a type (``DetectionService.bind``'s terms).

    ``metrics`` empty: every metric. ``params``: the detector's settings. ``jointly``: the metrics
    are judged together, per device. ``threshold``: the score from which a reading counts as
    anomalous (``None``: the detector's own). ``decision``: episode-decision settings (``{}`` the
    defaults; ``None`` per-reading decisions). ``fleet``: fleet-baseline settings. The detection
    service checks the names and settings; the registry keeps them as given."""

    detector: str = "default"
    metrics: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    jointly: bool = False
    threshold: float | None = None
    decision: dict[str, Any] | None = None
    #: Fleet-baseline settings (``{}`` the defaults): each device's reading is also judged
    #: against its siblings' (``atoll.detect.fleet``); ``None``: not.
    fleet: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "metrics": list(self.metrics),
            "params": dict(self.params),
            "jointly": self.jointly,
            "threshold": self.threshold,
            "decision": None if self.decision is None else dict(self.decision),
            "fleet": None if self.fleet is None else dict(self.fleet),
        }


@dataclass(frozen=True, slots=True)
class DeviceType:
    id: str
    project: str
    name: str
    metrics: tuple[MetricSpec, ...]
    created_at: int
    #: The detectors bound to its metrics (empty: the project's defaults judge them).
    detectors: tuple[DetectorBinding, ...] = ()

    def metric(self, name: str) -> MetricSpec | None:
        for m in self.metrics:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    project: str
    tenant: str
    name: str
    device_type: str | None
    labels: dict[str, str]
    disabled: bool
    has_credentials: bool
    created_at: int
    last_seen: int | None = None
    #: ``"device"`` or ``"gateway"`` (it speaks for child devices, docs/DEVICES.md "Gateways").
    kind: str = "device"
    #: The gateway this device's data and commands go through (``None``: it speaks itself).
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who an authenticated device is, and what it may send.

    ``metrics`` is ``None`` when the device has no type: then any metric name is accepted.
    """

    device: str
    project: str
    tenant: str
    device_type: str | None = None
    metrics: dict[str, MetricSpec] | None = None
    #: ``"device"`` or ``"gateway"``; a child device names its gateway in ``parent``.
    kind: str = "device"
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """Returned once at registration or rotation; the secret is never stored in clear."""

    device: str
    secret: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    role: Role
    platform_admin: bool
    created_at: int
    expires_at: int | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key: ``token`` is shown once."""

    key: ApiKey
    token: str


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an API request, resolved from a bearer token."""

    tenant: str
    role: Role
    key_id: str
    name: str
    platform_admin: bool = False
    # Set while a platform admin acts inside another tenant: the tenant the key belongs to.
    acting_from: str | None = None
    #: The client address of the request (for the audit log), when known.
    source: str | None = None

    def can(self, needed: str) -> bool:
        return role_at_least(self.role, needed)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    tenant: str
    role: Role
    created_at: int
    disabled: bool = False
    platform_admin: bool = False


@dataclass(frozen=True, slots=True)
class Twin:
    device: str
    desired: dict[str, Any]
    desired_version: int
    desired_updated_at: int | None
    reported: dict[str, Any]
    reported_version: int
    reported_updated_at: int | None


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    device: str
    name: str
    args: dict[str, Any]
    status: CommandStatus
    created_at: int
    updated_at: int
    expires_at: int
    result: Any = None
    #: The gateway the device speaks through (its ``parent``): the command goes to it, on
    #: ``gateway/commands/{child}/{id}``. ``None``: straight to the device.
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    tenant: str
    actor: str
    action: str
    target: str
    at: int
    detail: dict[str, Any] = field(default_factory=dict)
    #: The client address the action came from (None: not known, e.g. the local CLI).
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """How often, and why last, a device's messages were refused."""

    device: str
    transport: str  # "mqtt" | "http"
    reason: str
    count: int
    last_at: int
    last_message: str


@dataclass(frozen=True, slots=True)
class BootstrapSecrets:
    """What the first start created. Print once; only hashes are kept."""

    tenant: str
    api_key: str
    username: str
    password: str


MaintenanceKind = Literal["failure", "repair", "replacement", "inspection"]
MAINTENANCE_KINDS: tuple[str, ...] = ("failure", "repair", "replacement", "inspection")


@dataclass(frozen=True, slots=True)
class MaintenanceEvent:
    """Something done to (or that happened to) a device: a failure ends its run, a repair or
    replacement starts the next; ``at`` when it happened, ``created_at`` when it was recorded
    (µs since the epoch); ``cost`` in the lab's currency, ``part`` what was replaced or found."""

    id: str
    device: str
    kind: MaintenanceKind
    at: int
    created_at: int
    recorded_by: str
    part: str | None = None
    cost: float | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class RulFit:
    """A fit of a device type's RUL model, off the request (``atoll.registry.rul_fits``):
    ``state`` queued, running, done (``model``: the draft it registered) or failed (``error``:
    code, message, hint); ``trigger`` api, schedule or failure."""

    id: str
    project: str
    device_type: str
    state: str
    trigger: str
    params: dict[str, Any]
    requested_by: str
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    model: str | None = None
    error: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    progress: str | None = None


@dataclass(frozen=True, slots=True)
class RulConfig:
    """How a device type's RUL model is fitted (``cycle`` µs, ``cap`` cycles) and retrained:
    every ``retrain_every`` µs (``None``: no schedule), when a new failure is recorded
    (``on_failure``), activating a version not worse than the active one (``auto_activate``)."""

    project: str
    device_type: str
    cycle: int
    cap: float
    retrain_every: int | None
    on_failure: bool
    auto_activate: bool
    updated_by: str
    updated_at: int
    last_fit: int | None = None
    failures_seen: int | None = None


ModelKind = Literal["detector", "rul", "forecaster"]
MODEL_KINDS: tuple[str, ...] = ("detector", "rul", "forecaster")
ModelState = Literal["draft", "approved", "active", "retired"]
MODEL_STATES: tuple[str, ...] = ("draft", "approved", "active", "retired")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a fitted model in the model registry (``atoll.registry.ml_models``).

    ``scope`` is what it judges: ``type:<device type>`` or ``series:<device>/<metric>``;
    ``version`` counts per project, kind and scope. Times in µs since the epoch; ``data_from``/
    ``data_to`` the training data's range where it is known, ``rows`` its size; ``metrics`` the
    validation metrics; ``card`` the whole model card as its trainer wrote it."""

    id: str
    tenant: str
    project: str
    kind: ModelKind
    scope: str
    version: int
    state: ModelState
    algorithm: str
    code_version: str
    created_by: str
    created_at: int
    updated_at: int
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    data_from: int | None = None
    data_to: int | None = None
    rows: int | None = None
    approved_by: str | None = None
    approved_at: int | None = None
    activated_at: int | None = None
    retired_at: int | None = None


@dataclass(frozen=True, slots=True)
class UsageDay:
    """What one enterprise's project used on one UTC day (``Registry.usage``); ``project`` is
    ``""`` for what belongs to the enterprise as a whole (API calls)."""

    tenant: str
    project: str
    #: ``YYYY-MM-DD``, UTC.
    day: str
    #: Telemetry messages stored (HTTP requests, MQTT publishes, gateway batches).
    messages: int
    #: Points stored (one metric of one reading).
    points: int
    #: Authenticated API requests (keys and console sessions).
    api_calls: int
    #: The largest number of points the project held in the store that day (sampled by the
    #: hourly retention job), ``None`` before the first sample.
    storage_points: int | None


Stage = Literal["idea", "poc", "pilot", "production"]
#: A project's way from an idea to production, in order (the lab home's funnel).
STAGES: tuple[str, ...] = ("idea", "poc", "pilot", "production")


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Where a project stands in the lab's portfolio (``Registry.portfolio``); a project never
    placed is an ``idea`` since its creation, with no owner or goals."""

    project: str
    stage: Stage
    owner: str | None
    goals: str
    #: When it entered its stage (µs).
    stage_since: int
    updated_by: str | None
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class Invite:
    """A one-time invitation for ``username`` to join ``tenant`` with ``role``."""

    id: str
    tenant: str
    username: str
    role: Role
    created_by: str
    created_at: int
    expires_at: int
    used_at: int | None = None
    revoked: bool = False

    def state(self, now: int) -> str:
        """``pending``, ``used``, ``revoked`` or ``expired``."""
        if self.used_at is not None:
            return "used"
        if self.revoked:
            return "revoked"
        return "expired" if now >= self.expires_at else "pending"


@dataclass(frozen=True, slots=True)
class NewInvite:
    invite: Invite
    token: str  # shown once
