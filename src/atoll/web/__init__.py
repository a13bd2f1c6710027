"""The web console: a single-page app built by Vite into ``static/dist`` and served by the API app.

``mount_console(app)`` must be called after every API router is included: it serves the
build at ``/`` and answers every other unmatched GET with ``index.html`` so that console URLs
such as ``/devices/boiler-1`` survive a reload.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

__all__ = ["DIST", "ConsoleFiles", "mount_console"]

DIST = Path(__file__).parent / "static" / "dist"

# Vite puts a content hash in every asset name, so they never change and can be cached for
# a year; index.html names the current hashes and must be revalidated on every load.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Paths that belong to the API even when no route matched: a typo there should get a JSON 404,
# not the console's HTML.
NOT_CONSOLE = ("/api/", "/docs", "/redoc", "/openapi.json")

_MISSING = """<!doctype html><meta charset=utf-8><title>Atoll console not built</title>
<body style="font:14px system-ui;background:#111418;color:#d8dee8;padding:40px">
<h1>The Atoll console is not built</h1>
<p>Run <code>make console</code>
(or <code>cd src/atoll/web/console &amp;&amp; npm ci &amp;&amp; npm run build</code>)
and reload. The REST API is up: see <a style="color:#22a6b3" href="/docs">/docs</a>.</p>"""


class ConsoleFiles(StaticFiles):
    """Static files with SPA fallback and cache headers that match Vite's hashed names."""

    def __init__(self, directory: Path = DIST) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self.dist = Path(directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4404})
            return
        if scope["type"] != "http":
            return
        path = scope.get("root_path", "") + scope["path"]
        if path.startswith(NOT_CONSOLE):
            await self._json_404(path)(scope, receive, send)
            return
        if not (self.dist / "index.html").is_file():
            await HTMLResponse(_MISSING, status_code=503)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @staticmethod
    def _json_404(path: str) -> Response:
        return JSONResponse(
            {
                "error": "not_found",
                "message": f"no API route {path}",
                "hint": "see /docs for the routes",
            },
            status_code=404,
        )

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.startswith("assets"):
                raise
            response = await super().get_response("index.html", scope)
        if response.status_code == 404 and not path.startswith("assets"):
            response = await super().get_response("index.html", scope)
        immutable = path.startswith("assets/") and response.status_code in (200, 304)
        response.headers["Cache-Control"] = IMMUTABLE if immutable else REVALIDATE
        return response


def mount_console(app) -> None:
    """Serve the console at ``/`` on ``app`` (a FastAPI or Starlette app). Call it last."""
    app.mount("/", ConsoleFiles(), name="console")
