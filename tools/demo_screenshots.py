"""Screenshots of a running ``atoll demo`` for the README (real headless Chromium): the fleet, a
faulty device, the alarms, the dashboard, and the motor closest to its failure (RUL).

    .venv/bin/atoll demo --home .atoll/demo &    # wait until faults have played out
    .venv/bin/python tools/demo_screenshots.py .atoll/demo docs/screenshots
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(home: Path, out: Path) -> None:
    info = json.loads((home / "demo.json").read_text())
    truth = json.loads((home / "ground_truth.json").read_text())["faults"]
    tenant = info["tenants"][0]
    faulty = next(f["device"] for f in truth if f"lab-{tenant['sector']}" in f["device"])
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        page.goto(info["console"] + "/")
        page.fill("input[name=username]", tenant["user"])
        page.fill("input[name=password]", tenant["password"])
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=project-tree]")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / "demo-fleet.png"))
        page.goto(f"{info['console']}/devices/{faulty}")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(out / "demo-device.png"))
        page.click("[data-testid=nav-alarms]")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / "demo-alarms.png"))
        # The tenant's project drawn by its sector template's dashboard layout.
        page.click("[data-testid=nav-dashboard]")
        page.wait_for_selector("[data-testid=dash-panel]")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(out / "demo-dashboard.png"))
        # The motor the RUL model judges closest to its failure: RUL counting down.
        due = page.evaluate(
            """async (project) => {
                const token = JSON.parse(localStorage.getItem("atoll.session")).token;
                const url = `/api/v1/projects/${encodeURIComponent(project)}/maintenance/due`;
                const r = await fetch(url, {headers: {authorization: `Bearer ${token}`}});
                return r.ok ? await r.json() : [];
            }""",
            tenant["project"],
        )
        if due:
            page.goto(f"{info['console']}/devices/{due[0]['device']}")
            page.wait_for_selector("[data-testid=device-rul]")
            page.wait_for_timeout(4000)
            page.screenshot(path=str(out / "demo-rul.png"))
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
