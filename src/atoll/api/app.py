"""The HTTP API application: ``create_app(ctx)``.

Besides the core routers, ``create_app`` includes its ``extensions``: modules exposing ``router``
(an ``APIRouter`` mounted under ``/api/v1``) or ``create_router(ctx)``; a module exposing
``mount(app, ctx)`` instead (the web console) gets the app itself, after every router.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse

from atoll import __version__
from atoll.api import (
    alarms,
    audit,
    auth,
    commands,
    credentials,
    detection,
    device_types,
    devices,
    forecasts,
    ingest,
    invites,
    keys,
    lab,
    live,
    maintenance,
    metrics,
    models,
    portfolio,
    projects,
    rul,
    rules,
    series,
    solutions,
    tenants,
    twins,
    users,
)
from atoll.api.context import (
    ApiContext,
    CommandSender,
    DetectionPort,
    DeviceSessions,
    IngestSubmitter,
    RulesPort,
    RulPort,
)
from atoll.api.errors import BodyLimit, install
from atoll.api.metrics import MetricsSource
from atoll.api.schemas import ERROR_RESPONSES
from atoll.bus.port import MessageBus
from atoll.config import Settings
from atoll.registry import Registry
from atoll.store.port import SeriesStore

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
DEFAULT_MAX_BODY = 256 * 1024
CORE_ROUTERS: tuple[ModuleType, ...] = (
    auth,
    tenants,
    keys,
    users,
    invites,
    projects,
    device_types,
    devices,
    credentials,
    twins,
    commands,
    maintenance,
    models,
    rul,
    series,
    forecasts,
    detection,
    ingest,
    audit,
    metrics,
)
EXTENSION_MODULES: tuple[ModuleType, ...] = (rules, alarms, lab, portfolio, live, solutions)


@dataclass
class AppContext:
    """The plain ``ApiContext``: what the runtime passes to ``create_app``."""

    registry: Registry
    store: SeriesStore
    ingest: IngestSubmitter | None = None
    commands: CommandSender | None = None
    bus: MessageBus | None = None
    sessions: DeviceSessions | None = None
    settings: Settings | None = None
    rules: RulesPort | None = None
    mqtt_url: str | None = None
    detection: DetectionPort | None = None
    rul: RulPort | None = None
    metrics: Mapping[str, MetricsSource] | None = None


def create_app(
    ctx: ApiContext,
    *,
    max_body_bytes: int | None = None,
    extensions: tuple[ModuleType, ...] = EXTENSION_MODULES,
) -> FastAPI:
    """Build the API. ``max_body_bytes`` defaults to
    ``ctx.settings.max_payload_bytes`` or 256 KiB."""
    if max_body_bytes is None:
        settings = ctx.settings
        max_body_bytes = (settings.max_payload_bytes if settings else None) or DEFAULT_MAX_BODY
    app = FastAPI(
        title="Atoll API",
        version=__version__,
        description=(
            "Devices, telemetry, twins, commands, rules and alarms. People and programs send "
            "`Authorization: Bearer <api key>`; devices use HTTP Basic auth with their id and "
            "secret. "
            'Errors are `{"error", "message", "hint"?}`.'
        ),
        docs_url="/docs",
        openapi_url=f"{PREFIX}/openapi.json",
    )
    app.state.ctx = ctx
    app.state.max_body_bytes = max_body_bytes
    install(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    health = APIRouter(tags=["health"])

    @health.get("/health", summary="Liveness")
    def _health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(health, prefix=PREFIX)
    for core in CORE_ROUTERS:
        app.include_router(core.router, prefix=PREFIX, responses=ERROR_RESPONSES)
    mounted = False
    for module in extensions:
        if hasattr(module, "mount"):
            module.mount(app, ctx)
            mounted = True
        elif hasattr(module, "create_router"):
            app.include_router(module.create_router(ctx), prefix=PREFIX, responses=ERROR_RESPONSES)
        elif hasattr(module, "router"):
            app.include_router(module.router, prefix=PREFIX, responses=ERROR_RESPONSES)
        else:
            log.warning("extension %s has no router, create_router or mount", module.__name__)
    if not mounted:

        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse("/docs")

    return app
