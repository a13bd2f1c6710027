"""Python SDK for the Atoll REST API.

People and programs use ``Client`` with an API key; devices use ``DeviceClient`` with their id
and secret. Answers are frozen dataclasses; errors raise ``atoll.AtollError`` subclasses carrying
the server's message and hint. One module per part of the API (``devices``, ``series``,
``rules``, ``alarms``, ``tenancy``, ``ingest`` for the device side)::

    with atoll.Client("http://127.0.0.1:8080", api_key) as c:
        c.create_project("Lab", id="lab")
        reg = c.register_device("lab", id="sensor-1")
        device = atoll.DeviceClient(c.base_url, reg.device.id, reg.credentials.secret)
        device.send({"temperature": 21.5})
        print(c.raw("sensor-1", "temperature", start="-1h").value)

A platform admin acts in another tenant with ``Client(url, key, tenant="acme")`` or
``c.in_tenant("acme")`` (the ``X-Atoll-Tenant`` header).
"""

from __future__ import annotations

from typing import Any

import httpx

from atoll.client._http import TENANT_HEADER, Http, TimeLike
from atoll.client.alarms import Alarm, AlarmComment, AlarmEvent, AlarmsCalls, AlarmSummary
from atoll.client.devices import (
    Command,
    DetectionModel,
    DetectorBinding,
    Device,
    DeviceCredentials,
    DevicesCalls,
    DeviceType,
    MaintenanceEvent,
    Metric,
    Project,
    Refit,
    RegisteredDevice,
    Rejection,
    SeriesDetection,
    Twin,
)
from atoll.client.ingest import DeviceClient
from atoll.client.lab import BulkResult, LabCalls
from atoll.client.models import (
    DueDevice,
    DueModel,
    Model,
    ModelChange,
    ModelsCalls,
    RulConfig,
    RulFitJob,
)
from atoll.client.rules import (
    Backtest,
    Channel,
    ChannelTest,
    ChannelType,
    Delivery,
    Episode,
    ImportedRules,
    Report,
    ReportRun,
    Rule,
    RuleForecast,
    RulesCalls,
)
from atoll.client.series import (
    Buckets,
    Crossing,
    Forecast,
    Latest,
    Series,
    SeriesCalls,
    SeriesInfo,
)
from atoll.client.tenancy import ApiKey, AuditEntry, Identity, Invite, TenancyCalls, Tenant, User

__all__ = [
    "Alarm",
    "AlarmComment",
    "AlarmEvent",
    "AlarmSummary",
    "ApiKey",
    "AuditEntry",
    "Backtest",
    "Buckets",
    "Crossing",
    "BulkResult",
    "Channel",
    "ChannelTest",
    "ChannelType",
    "Client",
    "Command",
    "Delivery",
    "DetectionModel",
    "Device",
    "DeviceClient",
    "DeviceCredentials",
    "DetectorBinding",
    "DeviceType",
    "DueDevice",
    "DueModel",
    "Episode",
    "Identity",
    "Invite",
    "ImportedRules",
    "Forecast",
    "Latest",
    "MaintenanceEvent",
    "Metric",
    "Model",
    "ModelChange",
    "Project",
    "Refit",
    "RegisteredDevice",
    "RulConfig",
    "RulFitJob",
    "Rejection",
    "Report",
    "ReportRun",
    "Rule",
    "RuleForecast",
    "Series",
    "SeriesDetection",
    "SeriesInfo",
    "Tenant",
    "TimeLike",
    "Twin",
    "User",
]


class Client(
    TenancyCalls, DevicesCalls, SeriesCalls, RulesCalls, AlarmsCalls, LabCalls, ModelsCalls
):
    """The REST API as an API-key holder; what you may do depends on the key's role.

    ``tenant``: act in that tenant (platform admins; any other key may name only its own).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        tenant: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        if tenant:
            headers[TENANT_HEADER] = tenant
        super().__init__(base_url, headers=headers, timeout=timeout, transport=transport)
        self._api_key, self._timeout, self._transport = api_key, timeout, transport
        self.acting_tenant = tenant

    @classmethod
    def login(cls, base_url: str, username: str, password: str, **kw: Any) -> Client:
        """A client acting as a console user (a 12-hour session token instead of an API key);
        ``kw`` as for ``Client`` (``tenant=``, ``timeout=``, ``transport=``)."""
        with Http(base_url, timeout=kw.get("timeout", 30.0), transport=kw.get("transport")) as anon:
            token = anon._call(
                "POST", "/auth/login", json={"username": username, "password": password}
            )["token"]
        return cls(base_url, token, **kw)

    @staticmethod
    def invite_info(base_url: str, token: str, **kw: Any) -> dict[str, str]:
        """What a pending invite offers (``tenant``, ``tenant_name``, ``username``, ``role``,
        ``expires_at``); ``NotFound`` for an unknown, used, revoked or expired token."""
        with Http(base_url, timeout=kw.get("timeout", 30.0), transport=kw.get("transport")) as anon:
            info: dict[str, str] = anon._call("POST", "/auth/invite", json={"token": token})
        return info

    @classmethod
    def accept_invite(cls, base_url: str, token: str, password: str, **kw: Any) -> Client:
        """Accept a one-time invite: set ``password`` and get a client logged in as the new
        user; ``kw`` as for ``Client``."""
        with Http(base_url, timeout=kw.get("timeout", 30.0), transport=kw.get("transport")) as anon:
            session = anon._call(
                "POST", "/auth/invite/accept", json={"token": token, "password": password}
            )
        return cls(base_url, session["token"], **kw)

    def in_tenant(self, tenant: str | None) -> Client:
        """A new client with the same credentials acting in ``tenant`` (``None``: its own)."""
        return Client(
            self.base_url,
            self._api_key,
            tenant=tenant,
            timeout=self._timeout,
            transport=self._transport,
        )

    def health(self) -> dict[str, str]:
        """``{"status": "ok", "version": …}`` (needs no role)."""
        health: dict[str, str] = self._call("GET", "/health")
        return health

    def metrics(self) -> str:
        """The node's counters in the Prometheus text format (a platform admin's key); parse
        them with ``prometheus_client.parser.text_string_to_metric_families``."""
        got = self._call("GET", "/metrics")
        return got.decode() if isinstance(got, bytes) else str(got)
