"""``atoll.client``: the public surface, the transport, and acting in a tenant."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

import atoll
import atoll.client


def test_public_surface_is_guarded():
    assert sorted(atoll.__all__) == sorted(
        [
            "AtollError",
            "Client",
            "Conflict",
            "DeviceClient",
            "Forbidden",
            "InvalidInput",
            "NotFound",
            "PayloadTooLarge",
            "Unauthenticated",
            "Unavailable",
            "__version__",
        ]
    )
    for name in atoll.__all__:
        assert getattr(atoll, name) is not None, name
    assert issubclass(atoll.NotFound, atoll.AtollError)
    with pytest.raises(AttributeError):
        atoll.NoSuchThing  # noqa: B018
    assert atoll.Client is atoll.client.Client
    assert sorted(atoll.client.__all__) == sorted(
        [
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
            "ImportedRules",
            "Forecast",
            "Invite",
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
    )
    for name in set(atoll.client.__all__) - {"TimeLike"}:
        assert getattr(atoll.client, name).__name__ == name


def test_every_route_of_the_api_has_an_sdk_method(server):
    """Compares the server's OpenAPI routes with the
    requests the SDK makes (read from its source)."""
    import inspect
    import re

    spec = httpx.get(server.url + "/api/v1/openapi.json").json()
    source = "\n".join(
        inspect.getsource(m)
        for m in (
            atoll.client,
            atoll.client.tenancy,
            atoll.client.devices,
            atoll.client.series,
            atoll.client.rules,
            atoll.client.alarms,
            atoll.client.ingest,
            atoll.client.lab,
            atoll.client.models,
        )
    )
    called = {
        (m, re.sub(r"\{[^}]+\}", "{}", p))
        for m, p in re.findall(r'_call\(\s*"([A-Z]+)",\s*f?"([^"]+)"', source)
    }
    # Not for the SDK: routes tagged "console" are the console's own page data (its bootstrap
    # info, template dashboard layouts); everything else must have an SDK call.
    missing = []
    for path, ops in spec["paths"].items():
        route = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1"))
        for method, op in ops.items():
            if "console" in op.get("tags", []):
                continue
            if (method.upper(), route) not in called:
                missing.append(f"{method.upper()} {route}")
    assert missing == []


def test_unreachable_server_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with (
        atoll.Client(f"http://127.0.0.1:{port}", "atk_x_y", timeout=2) as c,
        pytest.raises(atoll.Unavailable),
    ):
        c.projects()
    assert time.monotonic() - start < 5


def test_health_needs_no_role(server):
    with atoll.Client(server.url, "atk_not_a_key") as c:
        assert c.health()["status"] == "ok"


def test_a_platform_admin_acts_in_a_tenant(server, client):
    _, acme_key = client.create_tenant("Acme", id="acme")
    with atoll.Client(server.url, acme_key.token) as acme:
        # An id chosen in tenant acme lives in acme's namespace.
        assert acme.create_project("Acme plant", id="acme-plant").id == "acme~acme-plant"
    assert client.projects() == []  # data calls are scoped to the admin's own tenant
    with atoll.Client(server.url, server.boot.api_key, tenant="acme") as admin_in_acme:
        assert admin_in_acme.acting_tenant == "acme"
        assert [p.id for p in admin_in_acme.projects()] == ["acme~acme-plant"]
        assert admin_in_acme.me().tenant == "acme"
        admin_in_acme.create_project("Second", id="acme-2")
    with client.in_tenant("acme") as in_acme, in_acme.in_tenant(None) as back_home:
        assert {p.id for p in in_acme.projects()} == {"acme~acme-plant", "acme~acme-2"}
        assert back_home.projects() == []
        assert any(
            "(platform) via default" in e.actor for e in in_acme.audit(action="project.create")
        )
    with client.in_tenant("nope") as nowhere, pytest.raises(atoll.NotFound):
        nowhere.projects()
    # Any other key may name only its own tenant; another one is "not found", never "forbidden".
    with (
        atoll.Client(server.url, acme_key.token, tenant="default") as acme_elsewhere,
        pytest.raises(atoll.NotFound),
    ):
        acme_elsewhere.projects()
    with atoll.Client.login(server.url, "admin", server.boot.password, tenant="acme") as console:
        assert {p.id for p in console.projects()} == {"acme~acme-plant", "acme~acme-2"}
