"""A real platform (``atoll up`` in-process, ephemeral ports, tmp data dir) and a real headless
Chromium driven by Playwright. The platform runs on its own thread and event loop because
Playwright's sync API must not run inside one."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import expect

from atoll.web import DIST

CHROMIUM = os.environ.get("ATOLL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Same algorithm as production at test-sized cost (the default takes ~1 s per hash on 2 cores).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
REPO = Path(__file__).resolve().parents[2]

# CI runs two workers on two cores shared with everything else: give UI expectations room.
expect.set_options(timeout=15_000)


@dataclass
class RunningPlatform:
    url: str
    mqtt_host: str
    mqtt_port: int
    username: str
    password: str
    api_key: str
    platform: object


class _PlatformThread:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.info: RunningPlatform | None = None
        self.thread = threading.Thread(target=self._run, name="atoll-platform", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:  # noqa: BLE001 - surfaced to the test thread
            self.error = e
            self.ready.set()

    async def _main(self) -> None:
        from atoll.config import Settings
        from atoll.platform import Platform

        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        settings = Settings(
            home=self.home, http_port=0, mqtt_port=0, http_host="127.0.0.1", mqtt_host="127.0.0.1"
        )
        async with Platform(settings, password_hasher=FAST_HASHER) as p:
            boot = p.bootstrap
            port = int(p.mqtt_url.rsplit(":", 1)[1])
            self.info = RunningPlatform(
                p.http_url, "127.0.0.1", port, boot.username, boot.password, boot.api_key, p
            )
            self.ready.set()
            await self.stop_event.wait()

    def start(self) -> RunningPlatform:
        self.thread.start()
        if not self.ready.wait(120) or self.error is not None:
            raise RuntimeError(f"platform did not start: {self.error!r}")
        return self.info

    def stop(self) -> None:
        if self.info is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(60)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    if not (DIST / "index.html").is_file():
        pytest.fail("the console is not built: run `make console`")
    runner = _PlatformThread(tmp_path_factory.mktemp("atoll-home"))
    try:
        yield runner.start()
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an event loop running on this
    # thread while it is open, which would break pytest-asyncio tests run on the same worker.
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: `make system-deps` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request, tmp_path):
    ctx = browser.new_context(viewport={"width": 1360, "height": 820})
    pg = ctx.new_page()
    errors: list[str] = []
    logs: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
    pg.set_default_timeout(15_000)
    yield pg
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        # What the browser showed when the test failed, for the report.
        shot = tmp_path / "failure.png"
        pg.screenshot(path=str(shot))
        print(f"\nfailure screenshot: {shot}\nurl: {pg.url}\nconsole:\n" + "\n".join(logs[-30:]))
    ctx.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def shots(tmp_path):
    """Where screenshots go: docs/screenshots when ATOLL_SCREENSHOTS=1 (to refresh the docs),
    else a tmp dir, so a normal test run never touches the working tree."""
    target = REPO / "docs" / "screenshots" if os.environ.get("ATOLL_SCREENSHOTS") else tmp_path

    def shot(page, name: str) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.png"
        page.screenshot(path=str(path), type="png")
        return path

    return shot


@pytest.fixture
def webhook():
    """A local webhook receiver: ``(url, received)``, each POSTed JSON body appended."""
    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
