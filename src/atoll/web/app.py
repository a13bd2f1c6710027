"""Hook for ``atoll.api.app.create_app``: its extension loader calls ``mount(app, ctx)``.

Besides the console itself this adds ``GET /api/v1/console/info``: where devices connect
(the MQTT URL the runtime actually bound), so the registration screen can print
``mosquitto_pub`` examples that work as pasted; and ``GET /api/v1/projects/{p}/dashboard``
(``atoll.web.dashboards``), the layout of a project's template dashboard.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from fastapi import FastAPI

from atoll import __version__
from atoll.api.context import ApiContext
from atoll.api.schemas import ERROR_RESPONSES
from atoll.web import dashboards, mount_console


def console_info(ctx: ApiContext | None) -> dict[str, Any]:
    url = None
    if ctx is not None:
        url, s = ctx.mqtt_url, ctx.settings
        if url is None and s is not None and s.mqtt_mode != "off":
            # No runtime said what the broker bound: what the settings ask for.
            url = f"mqtt://{s.mqtt_host}:{s.mqtt_port}"
    mqtt = None
    if url:
        u = urlparse(url)
        mqtt = {"url": url, "host": u.hostname, "port": u.port or 1883}
    return {"version": __version__, "mqtt": mqtt}


def mount(app: FastAPI, ctx: ApiContext | None = None) -> None:
    @app.get("/api/v1/console/info", tags=["console"], summary="What the console needs to know")
    def _info() -> dict[str, Any]:
        return console_info(ctx)

    app.include_router(dashboards.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    mount_console(app)
