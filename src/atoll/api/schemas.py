"""Response bodies shared by several routers. Entity timestamps are ISO-8601 UTC strings;
series timestamps are epoch milliseconds (numbers), which charting code wants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from atoll.registry import models as m

# The registry stores ids, offsets and durations as signed 64-bit integers: a larger number in a
# request is refused with 422 at the edge instead of overflowing the database driver (a 500).
MAX_DB_INT = 2**63 - 1
RowId = Annotated[int, Path(ge=-MAX_DB_INT, le=MAX_DB_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
#: Longest retention and key lifetime: 100 years (retention in µs must fit 64 bits).
MAX_RETENTION_DAYS = 36_500
MAX_TTL_S = MAX_RETENTION_DAYS * 86_400


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str = Field(description="stable machine-readable code", examples=["not_found"])
    message: str = Field(description="what went wrong", examples=["device 'sensor-9' not found"])
    hint: str | None = Field(None, description="how to fix it, when Atoll knows")


ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"model": ErrorOut, "description": "Invalid input (the message says which field and why)"},
    401: {"model": ErrorOut, "description": "Missing, invalid, expired or revoked credentials"},
    403: {"model": ErrorOut, "description": "Your key's role does not allow this"},
    404: {"model": ErrorOut, "description": "Not found in your tenant"},
    413: {"model": ErrorOut, "description": "Request body over the size limit"},
    422: {"model": ErrorOut, "description": "Request does not match the schema"},
}


class Metric(BaseModel):
    name: str = Field(description="metric name as sent in telemetry `values`")
    type: str = Field("float", description="float | int | bool")
    unit: str = ""
    min: float | None = Field(None, description="lowest expected value")
    max: float | None = Field(None, description="highest expected value")


class DetectorBindingIO(BaseModel):
    """What judges some metrics of every device of a type (docs/DETECTION.md, "Detectors in
    the platform")."""

    model_config = ConfigDict(extra="forbid")

    detector: str = Field("default", description="a detector kind: default, fitted, ensemble…")
    metrics: list[str] = Field(
        default_factory=list, description="metrics it judges; empty: every metric of the type"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the detector's settings")
    jointly: bool = Field(False, description="judge the metrics together, per device")
    threshold: float | None = Field(
        None, gt=0, le=1, description="score from which a reading is anomalous"
    )
    decision: dict[str, Any] | None = Field(
        None,
        description="episode-decision settings ({} the defaults): is_anomaly stays up for the "
        "whole episode; null: per-reading decisions",
    )
    fleet: dict[str, Any] | None = Field(
        None,
        description="fleet-baseline settings ({} the defaults): each device is also judged "
        "against its siblings of the type; null: not",
    )


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: str

    @classmethod
    def of(cls, t: m.Tenant) -> TenantOut:
        return cls(id=t.id, name=t.name, created_at=iso(t.created_at))


class ProjectOut(BaseModel):
    id: str
    tenant: str
    name: str
    retention_days: int | None = Field(
        description="points older than this are deleted; null keeps all"
    )
    created_at: str

    @classmethod
    def of(cls, p: m.Project) -> ProjectOut:
        return cls(
            id=p.id,
            tenant=p.tenant,
            name=p.name,
            retention_days=p.retention_days,
            created_at=iso(p.created_at),
        )


class DeviceTypeOut(BaseModel):
    id: str
    project: str
    name: str
    metrics: list[Metric]
    detectors: list[DetectorBindingIO]
    created_at: str

    @classmethod
    def of(cls, d: m.DeviceType) -> DeviceTypeOut:
        return cls(
            id=d.id,
            project=d.project,
            name=d.name,
            created_at=iso(d.created_at),
            metrics=[Metric(**x.to_dict()) for x in d.metrics],
            detectors=[DetectorBindingIO(**b.to_dict()) for b in d.detectors],
        )


class DeviceOut(BaseModel):
    id: str
    project: str
    name: str
    device_type: str | None
    labels: dict[str, str]
    disabled: bool
    has_credentials: bool = Field(description="false after the credentials were revoked")
    created_at: str
    last_seen: str | None
    kind: str = Field("device", description="'gateway': it speaks for child devices")
    parent: str | None = Field(None, description="the gateway this device speaks through")
    latest: dict[str, float] | None = Field(
        None, description="with ?latest=true: each metric's last value, however old"
    )

    @classmethod
    def of(cls, d: m.Device) -> DeviceOut:
        return cls(
            id=d.id,
            project=d.project,
            name=d.name,
            device_type=d.device_type,
            labels=d.labels,
            disabled=d.disabled,
            has_credentials=d.has_credentials,
            created_at=iso(d.created_at),
            last_seen=iso(d.last_seen),
            kind=d.kind,
            parent=d.parent,
        )


class CredentialsOut(BaseModel):
    device: str
    secret: str = Field(description="shown only in this answer; store it on the device")
    mqtt_username: str
    mqtt_password: str

    @classmethod
    def of(cls, c: m.DeviceCredentials) -> CredentialsOut:
        return cls(device=c.device, secret=c.secret, mqtt_username=c.device, mqtt_password=c.secret)


class RegisteredDevice(BaseModel):
    device: DeviceOut
    credentials: CredentialsOut


class TwinOut(BaseModel):
    device: str
    desired: dict[str, Any]
    desired_version: int
    desired_updated_at: str | None
    reported: dict[str, Any]
    reported_version: int
    reported_updated_at: str | None

    @classmethod
    def of(cls, t: m.Twin) -> TwinOut:
        return cls(
            device=t.device,
            desired=t.desired,
            desired_version=t.desired_version,
            desired_updated_at=iso(t.desired_updated_at),
            reported=t.reported,
            reported_version=t.reported_version,
            reported_updated_at=iso(t.reported_updated_at),
        )


class CommandOut(BaseModel):
    id: str
    device: str
    name: str
    args: dict[str, Any]
    status: str = Field(description="pending → delivered → acked | failed | expired")
    result: Any = None
    created_at: str
    updated_at: str
    expires_at: str

    @classmethod
    def of(cls, c: m.Command) -> CommandOut:
        return cls(
            id=c.id,
            device=c.device,
            name=c.name,
            args=c.args,
            status=c.status,
            result=c.result,
            created_at=iso(c.created_at),
            updated_at=iso(c.updated_at),
            expires_at=iso(c.expires_at),
        )


class ApiKeyOut(BaseModel):
    id: str
    tenant: str
    name: str
    role: str
    created_at: str
    expires_at: str | None
    revoked: bool

    @classmethod
    def of(cls, k: m.ApiKey) -> ApiKeyOut:
        return cls(
            id=k.id,
            tenant=k.tenant,
            name=k.name,
            role=k.role,
            created_at=iso(k.created_at),
            expires_at=iso(k.expires_at),
            revoked=k.revoked,
        )


class NewApiKeyOut(BaseModel):
    key: ApiKeyOut
    token: str = Field(
        description="shown only in this answer: send it as 'Authorization: Bearer <token>'"
    )


class RejectionOut(BaseModel):
    transport: str
    reason: str
    count: int
    last_at: str
    last_message: str
