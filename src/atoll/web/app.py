"""Hook for ``atoll.api.app.create_app``: its extension loader calls ``mount(app, ctx)``."""

from __future__ import annotations

from atoll.web import mount_console


def mount(app, ctx=None) -> None:
    mount_console(app)
