"""``mount_console``: the built console at ``/``,
SPA fallback, cache headers, API 404s stay JSON."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from atoll.web import ConsoleFiles


def _app(dist) -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/api/v1/ping")
    def ping():
        return {"ok": True}

    app.mount("/", ConsoleFiles(dist))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://atoll.test")


def _dist(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


async def test_index_and_deep_links_serve_the_app_and_are_revalidated(tmp_path):
    c = _app(_dist(tmp_path))
    for path in ("/", "/devices/boiler-1", "/alarms"):
        r = await c.get(path)
        assert r.status_code == 200, path
        assert "id=app" in r.text
        assert r.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_cached_for_a_year(tmp_path):
    c = _app(_dist(tmp_path))
    r = await c.get("/assets/index-abc123.js")
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"]
    assert (await c.get("/assets/missing.js")).status_code == 404


async def test_api_routes_win_and_unknown_api_paths_get_json_404(tmp_path):
    c = _app(_dist(tmp_path))
    assert (await c.get("/api/v1/ping")).json() == {"ok": True}
    r = await c.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


async def test_missing_build_explains_how_to_build(tmp_path):
    c = _app(tmp_path / "nothing")
    r = await c.get("/")
    assert r.status_code == 503
    assert "make console" in r.text
