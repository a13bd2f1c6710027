"""Console benchmark in headless Chromium: device page on 1 year of 1 Hz data, fleet page with
10,000 devices, and reading-to-screen latency.

    .venv/bin/python bench/console.py --json bench/results/console.json
    .venv/bin/python bench/console.py --days 30 --devices 2000 --json /tmp/c.json   # quicker

The server is the real stack (registry on SQLite, DuckDB store, memory bus, ingest pipeline,
API with the live WebSocket, the built console) on an ephemeral port. Times are measured in
the browser (``performance.now()``), after one uncounted warm-up load per page: navigation
start → charts drawn / rows shown, and for
latency: ``fetch`` of an HTTP reading → the chart's frame that draws it. Needs the console
built (``make console``) and Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from atoll.api.app import AppContext, create_app
from atoll.bench.store import DAY, KEY, T0, bulk_append_rate
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.store import open_store
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
VIEWPORT = {"width": 1440, "height": 900}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The API app with its ingest pipeline, served by uvicorn on its own thread and loop."""

    def __init__(self, registry: Registry, store) -> None:
        self.registry, self.store = registry, store
        self.port = _free_port()
        self.started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        bus = MemoryBus()
        pipeline = IngestPipeline(
            self.store, bus, RegistryDirectory(self.registry), flush_interval=0.05
        )
        await pipeline.start()
        app = create_app(
            AppContext(registry=self.registry, store=self.store, ingest=pipeline, bus=bus)
        )
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.started.set()
        await task
        await pipeline.stop()
        await bus.close()

    def __enter__(self) -> str:
        self.thread.start()
        if not self.started.wait(60):
            raise RuntimeError("API server did not start")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _stats(xs: list[float]) -> dict:
    in_order = [round(x, 1) for x in xs]
    xs = sorted(xs)
    return {
        "runs_ms": in_order,
        "median_ms": round(statistics.median(xs), 1),
        "min_ms": round(xs[0], 1),
        "max_ms": round(xs[-1], 1),
        "p95_ms": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
        "runs": len(xs),
    }


def _page(browser, base: str, token: str, project: str):
    ctx = browser.new_context(viewport=VIEWPORT)
    # Signed in as the console would be after login; the bench measures pages, not the login.
    ctx.add_init_script(
        "localStorage.setItem('atoll.session',"
        f" JSON.stringify({{token: {json.dumps(token)}, user: 'bench'}}));"
        f"localStorage.setItem('atoll.project', JSON.stringify({json.dumps(project)}));"
    )
    page = ctx.new_page()
    return ctx, page


def bench_device_year(browser, base, token, days: int, runs: int) -> dict:
    end_ms = (T0 + days * DAY) // 1000
    start_ms = end_ms - days * 86_400_000
    url = f"{base}/devices/{KEY.device}?start={start_ms}&end={end_ms}"
    panel = f"[data-testid=chart-{KEY.metric}]"
    drawn = (
        f"() => {{ const p = document.querySelector('{panel}');"
        " return p && Number(p.dataset.points) > 0 && window.__atollChartLoads >= 1; }"
    )
    loads = []
    points = 0
    for i in range(runs + 1):  # the first load warms the server up and is not counted
        ctx, page = _page(browser, base, token, KEY.project)
        page.goto(url)
        page.wait_for_function(drawn, timeout=60_000)
        if i:
            # The page's own mark, not the (later) moment Playwright's polling noticed it.
            loads.append(page.evaluate("window.__atollChartAt"))
        points = int(page.get_attribute(panel, "data-points"))
        ctx.close()
    # Zoom by dragging across 2 % of the plot, three times: a year → ~a week → ~3 h → ~4 min,
    # each a new server query at the new range, timed from mouse-up to the redrawn chart.
    ctx, page = _page(browser, base, token, KEY.project)
    page.goto(url)
    page.wait_for_function(drawn, timeout=60_000)
    zooms = []
    for _ in range(3):
        box = page.locator(f"{panel} .u-over").bounding_box()
        before = page.evaluate("window.__atollChartLoads")
        x0 = box["x"] + box["width"] * 0.49
        y = box["y"] + box["height"] / 2
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x0 + box["width"] * 0.01, y, steps=2)
        page.mouse.move(x0 + box["width"] * 0.02, y, steps=2)
        t = page.evaluate("performance.now()")
        page.mouse.up()
        page.wait_for_function(f"window.__atollChartLoads > {before}", timeout=30_000)
        done = page.evaluate("window.__atollChartAt")
        label = page.inner_text("[data-testid=range-label]")
        zooms.append(
            {
                "range": label.split("(")[-1].rstrip(")"),
                "ms": round(done - t, 1),
                "points": int(page.get_attribute(panel, "data-points")),
            }
        )
    ctx.close()
    return {
        "points_in_store": days * 86_400,
        "points_drawn": points,
        "load": _stats(loads),
        "zoom": zooms,
    }


def bench_fleet(browser, base, token, project: str, devices: int, runs: int) -> dict:
    shown = (
        "() => { const c = document.querySelector('[data-testid=device-count]');"
        f" return c && c.textContent.replace(/[^0-9]/g, '') === '{devices}'"
        " && document.querySelectorAll('[data-testid=device-list] .row[data-device]').length"
        " > 10; }"
    )
    loads, scrolls = [], []
    for i in range(runs + 1):  # the first load warms the server up and is not counted
        ctx, page = _page(browser, base, token, project)
        page.goto(base + "/")
        page.wait_for_function(shown, timeout=60_000)
        if i:
            loads.append(page.evaluate("window.__atollFleetAt"))
        # Jump to the middle of the fleet: the page that holds it is fetched on demand.
        target = devices // 2
        t = page.evaluate(
            "(i) => { const el = document.querySelector('[data-testid=device-list]');"
            " el.scrollTop = i * 30; el.dispatchEvent(new Event('scroll'));"
            " return performance.now(); }",
            target,
        )
        page.wait_for_function(
            f"() => !!document.querySelector('.row[data-device=\"dev-{target:05d}\"]')",
            timeout=30_000,
        )
        if i:
            scrolls.append(page.evaluate("performance.now()") - t)
        rows_in_dom = page.evaluate(
            "document.querySelectorAll('[data-testid=device-list] .row').length"
        )
        ctx.close()
    return {
        "devices": devices,
        "load": _stats(loads),
        "scroll_to_middle": _stats(scrolls),
        "rows_in_dom": rows_in_dom,
    }


def bench_latency(browser, base, token, project: str, device: str, secret: str, runs: int) -> dict:
    ctx, page = _page(browser, base, token, project)
    page.goto(f"{base}/devices/{device}")
    page.wait_for_selector("[data-testid=live-state]:has-text('live')", timeout=30_000)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-level]')?.dataset.points) > 0",
        timeout=30_000,
    )
    auth = "Basic " + __import__("base64").b64encode(f"{device}:{secret}".encode()).decode()
    out = []
    for i in range(runs):
        # The browser itself sends the reading over HTTP, so both ends share one clock.
        ms = page.evaluate(
            """async ([auth, i]) => {
                const ts = Date.now();
                const t0 = performance.now();
                const r = await fetch('/api/v1/ingest/telemetry', {method: 'POST',
                  headers: {'Authorization': auth, 'Content-Type': 'application/json'},
                  body: JSON.stringify({ts, values: {level: 100 + i}})});
                if (!r.ok) throw new Error('ingest ' + r.status);
                while (!(window.__atollLastDraw && window.__atollLastDraw.t * 1000 >= ts)) {
                  await new Promise((res) => setTimeout(res, 2));
                }
                return window.__atollLastDraw.at - t0;
            }""",
            [auth, i],
        )
        out.append(ms)
        page.wait_for_timeout(150)
    ctx.close()
    return _stats(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--days", type=int, default=365, help="days of 1 Hz data on the device page")
    ap.add_argument("--devices", type=int, default=10_000, help="devices on the fleet page")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency-runs", type=int, default=20)
    args = ap.parse_args()
    if not (DIST / "index.html").is_file():
        sys.exit("the console is not built: run `make console` first")

    tmp = Path(tempfile.mkdtemp(prefix="atoll-console-bench-"))
    try:
        registry = Registry.open(tmp)
        boot = registry.bootstrap()
        registry.create_project(boot.tenant, "Bench", project_id=KEY.project)
        registry.register_device(KEY.project, device_id=KEY.device)
        _, creds = registry.register_device(KEY.project, device_id="live-1")
        registry.create_project(boot.tenant, "Fleet", project_id="fleet")
        t = time.perf_counter()
        for i in range(args.devices):
            registry.register_device("fleet", device_id=f"dev-{i:05d}", name=f"Device {i}")
        now = time.time_ns() // 1000
        registry.touch_devices({f"dev-{i:05d}": now for i in range(0, args.devices, 3)})
        print(f"registered {args.devices} devices in {time.perf_counter() - t:.1f} s", flush=True)

        store = open_store(f"duckdb://{tmp}/series.duckdb")
        t = time.perf_counter()
        append = bulk_append_rate(store, points=args.days * 86_400, chunk=604_800)
        if hasattr(store, "compact"):
            store.compact()
        print(f"loaded {append['points']:,} points in {time.perf_counter() - t:.1f} s", flush=True)

        with Server(registry, store) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            import httpx

            httpx.post(
                f"{base}/api/v1/ingest/telemetry",
                auth=("live-1", creds.secret),
                json={"values": {"level": 1.0}},
            ).raise_for_status()
            device = bench_device_year(browser, base, boot.api_key, args.days, args.runs)
            print(
                f"device page, {args.days} d of 1 Hz: {device['load']['median_ms']} ms; zoom "
                + ", ".join(f"{z['range']} {z['ms']} ms" for z in device["zoom"]),
                flush=True,
            )
            fleet = bench_fleet(browser, base, boot.api_key, "fleet", args.devices, args.runs)
            print(
                f"fleet page, {args.devices} devices: {fleet['load']['median_ms']} ms; "
                f"scroll to middle {fleet['scroll_to_middle']['median_ms']} ms",
                flush=True,
            )
            latency = bench_latency(
                browser, base, boot.api_key, KEY.project, "live-1", creds.secret, args.latency_runs
            )
            print(
                f"reading → screen: {latency['median_ms']} ms median, {latency['p95_ms']} ms p95",
                flush=True,
            )
            version = browser.version
            browser.close()
        store.close()
        registry.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "benchmark": "console",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "chromium": version,
        "viewport": VIEWPORT,
        "device_page": device,
        "fleet_page": fleet,
        "reading_to_screen": latency,
        "targets_ms": {"device_page": 1000, "fleet_page": 1000, "reading_to_screen": 1000},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
