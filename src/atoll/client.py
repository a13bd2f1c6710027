"""Python SDK for the Atoll REST API.

People and programs use ``Client`` with an API key; devices use ``DeviceClient`` with their id
and secret. Errors raise ``atoll.AtollError`` subclasses carrying the server's message and hint.

    with atoll.Client("http://127.0.0.1:8080", api_key) as c:
        c.create_project("Lab", id="lab")
        reg = c.register_device("lab", id="sensor-1")
        atoll.DeviceClient(c.base_url, reg.device.id, reg.credentials.secret).send({"temperature": 21.5})
        print(c.raw("sensor-1", "temperature", start="-1h").value)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

import httpx

from atoll.core.errors import (
    AtollError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "ApiKey", "AuditEntry", "Buckets", "Client", "Command", "Device", "DeviceClient", "DeviceCredentials",
    "DeviceType", "Latest", "Metric", "Project", "RegisteredDevice", "Rejection", "Series",
    "SeriesInfo", "Tenant", "Twin",
]

TimeLike = datetime | int | float | str | None
_ERRORS: dict[int, type[AtollError]] = {
    400: InvalidInput, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: InvalidInput, 503: Unavailable,
}


# -- answers --------------------------------------------------------------------------------------
def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


T = TypeVar("T")


def _build(cls: type[T], data: Mapping[str, Any]) -> T:
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    kw = {k: v for k, v in data.items() if k in names}
    for k in ("created_at", "updated_at", "expires_at", "last_seen", "desired_updated_at",
              "reported_updated_at", "last_at"):
        if k in kw and isinstance(kw[k], str):
            kw[k] = _parse_dt(kw[k])
    return cls(**kw)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


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
class DeviceType:
    id: str
    project: str
    name: str
    metrics: tuple[Metric, ...]
    created_at: datetime


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
class SeriesInfo:
    metric: str
    unit: str | None = None
    last_ts: float | None = None
    last_value: float | None = None


@dataclass(frozen=True)
class Series:
    """Raw or chart answer. ``ts`` are epoch milliseconds."""

    device: str
    metric: str
    ts: list[float]
    value: list[float | None]

    def __len__(self) -> int:
        return len(self.ts)

    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(t / 1000, UTC) for t in self.ts]


@dataclass(frozen=True)
class Buckets:
    """Aggregates per bucket; ``ts`` are the bucket starts in epoch milliseconds."""

    device: str
    metric: str
    bucket_ms: float
    ts: list[float]
    aggregates: dict[str, list[float | None]]

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, aggregate: str) -> list[float | None]:
        return self.aggregates[aggregate]


@dataclass(frozen=True)
class Latest:
    device: str
    metric: str
    ts: float
    value: float


@dataclass(frozen=True)
class Rejection:
    transport: str
    reason: str
    count: int
    last_at: datetime
    last_message: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    target: str
    at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    token: str | None = field(default=None, repr=False)


# -- transport --------------------------------------------------------------------------------------
def _time(value: TimeLike) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, (int, float)):
        return str(int(value))  # epoch milliseconds
    return value


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message, hint = body.get("message") or response.text, body.get("hint")
    except ValueError:
        message, hint = response.text or response.reason_phrase, None
    cls = _ERRORS.get(response.status_code, AtollError)
    err = cls(message, hint=hint)
    err.status = response.status_code
    raise err


class _Http:
    def __init__(self, base_url: str, *, auth: Any = None, headers: Mapping[str, str] | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/api/v1", auth=auth, headers=dict(headers or {}),
                                  timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        if "params" in kw:
            kw["params"] = {k: v for k, v in kw["params"].items() if v is not None}
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"cannot reach Atoll at {self.base_url}: {e}",
                              hint="check the URL and that `atoll up` is running") from e
        _raise_for(r)
        return None if r.status_code == 204 or not r.content else r.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _device(d: Mapping[str, Any]) -> Device:
    return _build(Device, d)


def _command(d: Mapping[str, Any]) -> Command:
    return _build(Command, d)


def _twin(d: Mapping[str, Any]) -> Twin:
    return _build(Twin, d)


def _device_type(d: Mapping[str, Any]) -> DeviceType:
    return DeviceType(d["id"], d["project"], d["name"], tuple(Metric(**m) for m in d["metrics"]),
                      _parse_dt(d["created_at"]))


class Client(_Http):
    """The REST API as an API-key holder (tenant-scoped; what you may do depends on the key's role)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout,
                         transport=transport)

    @classmethod
    def login(cls, base_url: str, username: str, password: str, **kw: Any) -> Client:
        """A client acting as a console user (a 12-hour session token instead of an API key)."""
        with _Http(base_url, timeout=kw.get("timeout", 30.0), transport=kw.get("transport")) as anon:
            token = anon._call("POST", "/auth/login", json={"username": username, "password": password})["token"]
        return cls(base_url, token, **kw)

    # tenants, keys ------------------------------------------------------------------------------
    def tenants(self) -> list[Tenant]:
        return [_build(Tenant, t) for t in self._call("GET", "/tenants")]

    def create_tenant(self, name: str, *, id: str | None = None) -> tuple[Tenant, ApiKey]:
        """Platform admin only: a new tenant and its first admin key (token shown once)."""
        d = self._call("POST", "/tenants", json={"name": name, "id": id})
        k = d["admin_key"]
        return _build(Tenant, d["tenant"]), ApiKey(k["key"]["id"], k["key"]["name"], k["key"]["role"], k["token"])

    def create_api_key(self, name: str, role: str = "viewer", *, ttl_s: float | None = None) -> ApiKey:
        d = self._call("POST", "/keys", json={"name": name, "role": role, "ttl_s": ttl_s})
        return ApiKey(d["key"]["id"], d["key"]["name"], d["key"]["role"], d["token"])

    def revoke_api_key(self, key_id: str) -> None:
        self._call("DELETE", f"/keys/{key_id}")

    # projects and device types -------------------------------------------------------------------
    def projects(self) -> list[Project]:
        return [_build(Project, p) for p in self._call("GET", "/projects")]

    def project(self, project: str) -> Project:
        return _build(Project, self._call("GET", f"/projects/{project}"))

    def create_project(self, name: str, *, id: str | None = None, retention_days: int | None = None) -> Project:
        return _build(Project, self._call("POST", "/projects", json={
            "name": name, "id": id, "retention_days": retention_days}))

    def set_retention(self, project: str, days: int | None) -> Project:
        return _build(Project, self._call("PATCH", f"/projects/{project}", json={"retention_days": days}))

    def delete_project(self, project: str) -> None:
        self._call("DELETE", f"/projects/{project}")

    def device_types(self, project: str) -> list[DeviceType]:
        return [_device_type(t) for t in self._call("GET", f"/projects/{project}/device-types")]

    def create_device_type(self, project: str, id: str, metrics: Iterable[Metric | Mapping[str, Any]], *,
                           name: str | None = None) -> DeviceType:
        ms = [m.__dict__ if isinstance(m, Metric) else dict(m) for m in metrics]
        return _device_type(self._call("POST", f"/projects/{project}/device-types",
                                       json={"id": id, "name": name, "metrics": ms}))

    # devices and credentials ----------------------------------------------------------------------
    def devices(self, project: str, *, device_type: str | None = None, search: str | None = None,
                status: str | None = None, limit: int = 1000, offset: int = 0) -> list[Device]:
        """A page of devices by id; ``search`` matches id, name or type; ``status``: online | offline."""
        return [_device(d) for d in self._call("GET", f"/projects/{project}/devices", params={
            "device_type": device_type, "q": search, "status": status, "limit": limit, "offset": offset})]

    def device(self, device: str) -> Device:
        return _device(self._call("GET", f"/devices/{device}"))

    def register_device(self, project: str, *, id: str | None = None, name: str | None = None,
                        device_type: str | None = None, labels: Mapping[str, str] | None = None) -> RegisteredDevice:
        """Create a device. Its secret is in ``.credentials.secret`` now and never again."""
        d = self._call("POST", f"/projects/{project}/devices", json={
            "id": id, "name": name, "device_type": device_type, "labels": dict(labels or {})})
        c = d["credentials"]
        return RegisteredDevice(_device(d["device"]), DeviceCredentials(c["device"], c["secret"]))

    def register_devices(self, project: str, devices: Iterable[str | Mapping[str, Any]]) -> list[RegisteredDevice]:
        """Register many devices in one request (ids, or dicts like ``register_device``'s keywords);
        all or none. Sent in chunks of 1000."""
        items = [{"id": d} if isinstance(d, str) else dict(d) for d in devices]
        out = []
        for i in range(0, len(items), 1000):
            for d in self._call("POST", f"/projects/{project}/devices/batch", json={"devices": items[i:i + 1000]}):
                c = d["credentials"]
                out.append(RegisteredDevice(_device(d["device"]), DeviceCredentials(c["device"], c["secret"])))
        return out

    def update_device(self, device: str, **changes: Any) -> Device:
        """``name=``, ``labels=``, ``device_type=``, ``disabled=``."""
        return _device(self._call("PATCH", f"/devices/{device}", json=changes))

    def disable_device(self, device: str, disabled: bool = True) -> Device:
        return self.update_device(device, disabled=disabled)

    def delete_device(self, device: str) -> None:
        self._call("DELETE", f"/devices/{device}")

    def rotate_credentials(self, device: str) -> DeviceCredentials:
        c = self._call("POST", f"/devices/{device}/credentials/rotate")
        return DeviceCredentials(c["device"], c["secret"])

    def revoke_credentials(self, device: str) -> None:
        self._call("DELETE", f"/devices/{device}/credentials")

    def rejections(self, device: str) -> list[Rejection]:
        return [_build(Rejection, r) for r in self._call("GET", f"/devices/{device}/rejections")]

    # twins and commands ---------------------------------------------------------------------------
    def twin(self, device: str) -> Twin:
        return _twin(self._call("GET", f"/devices/{device}/twin"))

    def update_desired(self, device: str, patch: Mapping[str, Any]) -> Twin:
        """JSON merge patch of the desired properties (``None`` deletes a key)."""
        return _twin(self._call("PATCH", f"/devices/{device}/twin/desired", json=dict(patch)))

    def send_command(self, device: str, name: str, args: Mapping[str, Any] | None = None, *,
                     ttl_s: float = 300) -> Command:
        return _command(self._call("POST", f"/devices/{device}/commands",
                                   json={"name": name, "args": dict(args or {}), "ttl_s": ttl_s}))

    def commands(self, device: str, *, status: str | None = None, limit: int = 100) -> list[Command]:
        return [_command(c) for c in self._call("GET", f"/devices/{device}/commands",
                                                params={"status": status, "limit": limit})]

    def command(self, device: str, command_id: str) -> Command:
        return _command(self._call("GET", f"/devices/{device}/commands/{command_id}"))

    # queries --------------------------------------------------------------------------------------
    def series(self, device: str) -> list[SeriesInfo]:
        return [_build(SeriesInfo, s) for s in self._call("GET", f"/devices/{device}/series")]

    def _query(self, device: str, metric: str, mode: str, start: TimeLike, end: TimeLike, **params: Any) -> Any:
        return self._call("GET", f"/devices/{device}/series/{metric}",
                          params={"mode": mode, "start": _time(start), "end": _time(end), **params})

    def raw(self, device: str, metric: str, *, start: TimeLike = None, end: TimeLike = None,
            limit: int = 100_000) -> Series:
        """Points with ``start <= ts < end`` (default: the last day). Times: datetime, epoch ms,
        ISO-8601 or relative (``"-1h"``)."""
        d = self._query(device, metric, "raw", start, end, limit=limit)
        return Series(device, metric, d["ts"], d["value"])

    def chart(self, device: str, metric: str, *, start: TimeLike = None, end: TimeLike = None,
              width: int = 1000) -> Series:
        """At most about ``2 * width`` points that draw like the raw data."""
        d = self._query(device, metric, "chart", start, end, width=width)
        return Series(device, metric, d["ts"], d["value"])

    def buckets(self, device: str, metric: str, *, start: TimeLike = None, end: TimeLike = None,
                bucket: str | None = None, aggs: Iterable[str] = ("min", "max", "avg", "count", "first", "last"),
                ) -> Buckets:
        d = self._query(device, metric, "buckets", start, end, bucket=bucket, aggs=",".join(aggs))
        return Buckets(device, metric, d["bucket_ms"], d["ts"], d["aggregates"])

    def latest(self, project: str, device: str | None = None) -> list[Latest]:
        return [_build(Latest, x) for x in self._call("GET", f"/projects/{project}/latest",
                                                      params={"device": device})]

    # rules and alarms (shapes in docs/RULES.md; plain dicts, as the rules service defines them) ---
    def rules(self, project: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{project}/rules")

    def create_rule(self, project: str, rule: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/projects/{project}/rules", json=dict(rule))

    def delete_rule(self, project: str, rule_id: str) -> None:
        self._call("DELETE", f"/projects/{project}/rules/{rule_id}")

    def import_rules(self, project: str, rules: str | Mapping[str, Any]) -> dict[str, Any]:
        """Apply a rules file (YAML text, or a dict with ``rules:`` and ``channels:``)."""
        if not isinstance(rules, str):
            import yaml

            rules = yaml.safe_dump(dict(rules), allow_unicode=True, sort_keys=False)
        return self._call("POST", f"/projects/{project}/rules/import", content=rules.encode("utf-8"),
                          headers={"Content-Type": "application/yaml"})

    def alarms(self, *, project: str | None = None, status: str | None = None, device: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; ``status``: active | acknowledged | cleared | open."""
        return self._call("GET", "/alarms", params={"project": project, "status": status, "device": device,
                                                    "limit": limit})

    def alarm(self, alarm_id: int) -> dict[str, Any]:
        return self._call("GET", f"/alarms/{alarm_id}")

    def ack_alarm(self, alarm_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/alarms/{alarm_id}/ack", json={"comment": comment})

    def clear_alarm(self, alarm_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/alarms/{alarm_id}/clear", json={"comment": comment})

    def comment_alarm(self, alarm_id: int, text: str) -> dict[str, Any]:
        return self._call("POST", f"/alarms/{alarm_id}/comments", json={"text": text})

    def audit(self, *, limit: int = 100, action: str | None = None, target: str | None = None,
              before_id: int | None = None) -> list[AuditEntry]:
        """The tenant's audit log, newest first (admin keys)."""
        rows = self._call("GET", "/audit", params={"limit": limit, "action": action, "target": target,
                                                    "before_id": before_id})
        return [AuditEntry(r["id"], r["actor"], r["action"], r["target"], _parse_dt(r["at"]), r["detail"])
                for r in rows]


class DeviceClient(_Http):
    """The device side over HTTP (Basic auth with the device id and secret)."""

    def __init__(self, base_url: str, device_id: str, secret: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, auth=(device_id, secret), timeout=timeout, transport=transport)
        self.device_id = device_id

    def send(self, values: Mapping[str, float | int | bool], *, ts: TimeLike = None) -> int:
        """Send one reading; returns the number of points stored durably."""
        reading: dict[str, Any] = {"values": dict(values)}
        if ts is not None:
            reading["ts"] = _reading_ts(ts)
        return self._call("POST", "/ingest/telemetry", json=reading)["accepted"]

    def send_batch(self, readings: Iterable[tuple[TimeLike, Mapping[str, float | int | bool]]]) -> int:
        """Send ``(ts, values)`` pairs in one request; accepted or refused as a whole."""
        body = []
        for ts, values in readings:
            r: dict[str, Any] = {"values": dict(values)}
            if ts is not None:
                r["ts"] = _reading_ts(ts)
            body.append(r)
        return self._call("POST", "/ingest/telemetry", json=body)["accepted"]

    def report(self, properties: Mapping[str, Any]) -> Twin:
        """Merge reported twin properties."""
        return _twin(self._call("PUT", "/ingest/twin/reported", json=dict(properties)))

    def desired(self) -> tuple[dict[str, Any], int]:
        d = self._call("GET", "/ingest/twin/desired")
        return d["desired"], d["version"]

    def pending_commands(self) -> list[Command]:
        return [_command(c) for c in self._call("GET", "/ingest/commands")]

    def ack(self, command_id: str, ok: bool = True, result: Any = None) -> Command:
        return _command(self._call("POST", f"/ingest/commands/{command_id}/ack",
                                   json={"status": "ok" if ok else "error", "result": result}))


def _reading_ts(ts: TimeLike) -> int | str:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return int(ts.timestamp() * 1000)
    if isinstance(ts, float):
        return int(ts)
    return ts  # type: ignore[return-value]
