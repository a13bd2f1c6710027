"""Lab pages benchmark in headless Chromium: the lab home, one enterprise and the alarm console
for a platform admin of 90 enterprises, 400 projects, 10,000 devices and 500 open alarms.

    .venv/bin/python bench/console_lab.py --json bench/results/console_lab.json
    .venv/bin/python bench/console_lab.py --enterprises 20 --projects 60 --devices 1000 \\
        --alarms 100 --json /tmp/lab.json                                      # quicker

The server is the real stack (registry on SQLite, DuckDB store, memory bus, ingest pipeline,
rules service with its alarm book, API, the built console) on an ephemeral port. Rules are made
through the API (one per project); alarms are opened in the rules service's alarm book, as a
rule's evaluation would, raised over the last 12 weeks; about 60 % are judged (real, false or
unsure): the lab pages' detection-quality column aggregates them. Per view and run, a fresh
browser context loads the page (signed in as a console login would leave it) and the time is the
page's own ``performance.now()`` (from navigation start) at the first animation frame showing
the content: every enterprise row, the enterprise's project rows, the alarm count. API requests
are counted from navigation to that moment and again one second later. For comparison, the fleet
page (``/``) for the same login is measured the same way. The first load of each view warms the
server up and is not counted.
Needs the console built (``make console``) and Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from playwright.sync_api import sync_playwright
from rich.progress import Progress

from atoll.api.app import EXTENSION_MODULES, AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.core.points import PointBatch, SeriesKey
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.rules.directory import RegistryDevices
from atoll.rules.service import RulesService
from atoll.store import open_store
from atoll.web import DIST
from atoll.web import app as console

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
SEVERITIES = ("critical", "major", "minor", "warning", "info")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The API app with its ingest pipeline and rules service, on its own thread and loop."""

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
        self.rules = RulesService(
            bus,
            db=self.registry.engine,
            directory=RegistryDevices(self.registry),
            store=self.store,
            tick_interval=0,
        )
        await self.rules.start()
        ctx = AppContext(
            registry=self.registry, store=self.store, ingest=pipeline, bus=bus, rules=self.rules
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(ctx, extensions=(*EXTENSION_MODULES, console)),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.started.set()
        await task
        await self.rules.stop()
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


def seed(registry: Registry, store, args) -> dict:
    """Enterprises, projects spread over them, devices spread over the projects (a third seen
    just now), a few points per device; answers the layout."""
    rng = random.Random(13)
    boot = registry.bootstrap()
    tenants = [f"ent-{i:03d}" for i in range(args.enterprises)]
    projects: dict[str, str] = {}  # project -> tenant
    devices: dict[str, list[str]] = {}  # project -> devices
    with Progress() as bar:
        task = bar.add_task("enterprises and projects", total=args.enterprises + args.projects)
        for i, t in enumerate(tenants):
            registry.create_tenant(
                f"Enterprise {i:03d} {rng.choice(['Foods', 'Metals', 'Water', 'Glass', 'Grain'])}",
                t,
            )
            bar.advance(task)
        for i in range(args.projects):
            t = tenants[i % len(tenants)] if i < len(tenants) else rng.choice(tenants)
            p = registry.create_project(t, f"Project {i:03d}", project_id=f"p{i:03d}")
            projects[p.id] = t
            bar.advance(task)
        task = bar.add_task("devices", total=args.devices)
        ids = list(projects)
        per: dict[str, int] = {p: 0 for p in ids}
        for _ in range(args.devices):
            per[rng.choice(ids)] += 1
        now = time.time_ns() // 1000
        for p, n in per.items():
            if not n:
                continue
            t = projects[p]
            done = registry.register_devices(
                p,
                [{"device_id": f"{p}-d{j:03d}", "device_type": None} for j in range(n)],
                tenant=t,
            )
            devices[p] = [d.id for d, _ in done]
            registry.touch_devices({d: now for d in devices[p][::3]})
            bar.advance(task, n)
        task = bar.add_task("points", total=len(devices))
        for p, ds in devices.items():
            batches = []
            for d in ds[: max(1, len(ds) // 4)]:
                ts = now - np.arange(60, 0, -1, dtype=np.int64) * 5_000_000
                batches.append(
                    PointBatch.of_series(SeriesKey(p, d, "temperature"), ts, 20 + np.zeros(60))
                )
            store.append(PointBatch.concat(batches))
            bar.advance(task)
    if hasattr(store, "compact"):
        store.compact()
    return {"boot": boot, "projects": projects, "devices": devices}


def open_alarms(base: str, server: Server, layout: dict, n: int) -> int:
    """One rule per project (through the API, as the project's tenant); then ``n`` open alarms
    on devices spread over every project, opened in the rules service's alarm book."""
    rng = random.Random(7)
    key = layout["boot"].api_key
    rules: dict[str, str] = {}
    with httpx.Client(base_url=base + "/api/v1", timeout=60) as http, Progress() as bar:
        task = bar.add_task("rules", total=len(layout["projects"]))
        for p, t in layout["projects"].items():
            r = http.post(
                f"/projects/{p}/rules",
                headers={"Authorization": f"Bearer {key}", "X-Atoll-Tenant": t},
                json={
                    "name": "Too hot",
                    "severity": rng.choice(SEVERITIES),
                    "target": {"device_type": "any"},
                    "condition": {"type": "threshold", "metric": "temperature", "value": 90},
                },
            )
            r.raise_for_status()
            rules[p] = r.json()["id"]
            bar.advance(task)
        task = bar.add_task("alarms", total=n)
        pairs = [(p, d) for p, ds in layout["devices"].items() for d in ds]
        rng.shuffle(pairs)
        book = server.rules.alarms
        opened = 0
        now = time.time_ns() // 1000
        for p, d in pairs[:n]:
            rule = server.rules.get_rule(rules[p])
            # Raised over the last 12 weeks, so the detection quality has weeks to show.
            at = now - rng.randrange(12 * 7 * 86_400) * 1_000_000
            alarm = book.raise_(rule, d, at, 95.0, f"{d}.temperature = 95 > 90")
            if alarm:
                opened += 1
                # Operators judged about 60 % of them: what the quality column aggregates.
                if rng.random() < 0.6:
                    verdict = rng.choices(["real", "false", "unsure"], [7, 2, 1])[0]
                    book.judge(alarm.id, verdict, "bench", now)
            bar.advance(task)
    return opened


def _context(browser, token: str):
    ctx = browser.new_context(viewport=VIEWPORT)
    # Signed in as the console's login leaves it (token, user, role); no project chosen yet.
    ctx.add_init_script(
        "localStorage.setItem('atoll.session',"
        f" JSON.stringify({{token: {json.dumps(token)}, user: 'admin', role: 'admin'}}));"
    )
    return ctx


def bench_view(
    browser, base: str, token: str, path: str, ready: str, runs: int, shot: Path | None = None
) -> dict:
    """Load ``path`` ``runs + 1`` times; the time at the first frame where ``ready`` (a JS
    expression) holds, and the API requests made by then and one second later."""
    loads, at_ready, settled = [], [], []
    for i in range(runs + 1):
        ctx = _context(browser, token)
        page = ctx.new_page()
        urls: list[str] = []
        page.on("request", lambda r, urls=urls: urls.append(r.url) if "/api/v1/" in r.url else None)
        page.goto(base + path, wait_until="commit")
        try:
            handle = page.wait_for_function(
                f"() => ({ready}) && performance.now()", polling="raf", timeout=60_000
            )
        except Exception:
            shot = Path(tempfile.gettempdir()) / "console_lab_timeout.png"
            page.screenshot(path=str(shot))
            print(f"{path}: not ready after 60 s; what the page showed: {shot}", file=sys.stderr)
            raise
        t = handle.json_value()
        n = len(urls)
        page.wait_for_timeout(1000)
        if i:
            loads.append(t)
            at_ready.append(n)
            settled.append(len(urls))
            paths = [u.split("/api/v1", 1)[1] for u in urls]
            if shot is not None and i == runs:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
        ctx.close()
    return {
        "path": path,
        "load": _stats(loads),
        "api_requests_at_ready": max(at_ready),
        "api_requests_after_1s": max(settled),
        "api_requests_last_run": paths,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--enterprises", type=int, default=90)
    ap.add_argument("--projects", type=int, default=400)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--alarms", type=int, default=500)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--screenshots", type=Path, help="also save each view as <dir>/lab-scale-*.png")
    args = ap.parse_args()
    if not (DIST / "index.html").is_file():
        sys.exit("the console is not built: run `make console` first")

    tmp = Path(tempfile.mkdtemp(prefix="atoll-lab-bench-"))
    try:
        registry = Registry.open(tmp)
        store = open_store(f"duckdb://{tmp}/series.duckdb")
        t = time.perf_counter()
        layout = seed(registry, store, args)
        print(f"seeded in {time.perf_counter() - t:.1f} s", flush=True)
        token = layout["boot"].api_key
        server = Server(registry, store)
        with server as base, sync_playwright() as pw:
            opened = open_alarms(base, server, layout, args.alarms)
            print(f"{opened} open alarms", flush=True)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            busiest = max(layout["projects"].values(), key=list(layout["projects"].values()).count)

            def shot(name: str) -> Path | None:
                return args.screenshots / f"lab-scale-{name}.png" if args.screenshots else None

            views = {
                "lab_home": bench_view(
                    browser,
                    base,
                    token,
                    "/lab",
                    "document.querySelectorAll('[data-testid=lab-table] tbody tr').length"
                    f" === {args.enterprises + 1}",
                    args.runs,
                    shot("home"),
                ),
                "enterprise": bench_view(
                    browser,
                    base,
                    token,
                    f"/lab/enterprises/{busiest}",
                    "document.querySelectorAll('[data-testid=lab-project-table] tbody tr').length"
                    f" === {list(layout['projects'].values()).count(busiest)}",
                    args.runs,
                    shot("enterprise"),
                ),
                "alarm_console": bench_view(
                    browser,
                    base,
                    token,
                    "/lab/alarms",
                    "document.querySelector('[data-testid=la-count]')?.textContent"
                    f" === '{opened:,} alarm{'' if opened == 1 else 's'}'"
                    " && document.querySelectorAll('[data-testid=la-table] tbody tr').length > 0",
                    args.runs,
                    shot("alarms"),
                ),
                "fleet_for_comparison": bench_view(
                    browser,
                    base,
                    token,
                    "/",
                    "!!document.querySelector('[data-testid=device-count]')"
                    " && /^[0-9,]+ devices$/.test("
                    "document.querySelector('[data-testid=device-count]').textContent)",
                    args.runs,
                ),
            }
            for name, v in views.items():
                print(
                    f"{name:>22}: median {v['load']['median_ms']} ms, p95 {v['load']['p95_ms']} ms,"
                    f" {v['api_requests_at_ready']} API requests at ready,"
                    f" {v['api_requests_after_1s']} after 1 s",
                    flush=True,
                )
            version = browser.version
            browser.close()
        store.close()
        registry.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "benchmark": "console_lab",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2-core python-svc",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "chromium": version,
        "viewport": VIEWPORT,
        "enterprises": args.enterprises,
        "projects": args.projects,
        "devices": args.devices,
        "open_alarms": opened,
        "views": views,
        "targets": {"p95_ms": 1000, "api_requests": 5},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
