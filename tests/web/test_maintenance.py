"""The Maintenance page in a real Chromium against a real platform (its own RUL service): a
motor fleet's RUL model fitted from back-filled history and recorded failures, activated, two
motors report, and the page lists them most at risk first with the model that judged; the
device page shows the estimate too."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

import atoll
from atoll.testing import rul_fleet as synthetic
from tests.web.test_console import login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_due_list_shows_the_motor_near_failure_first(platform, page, shots):
    with atoll.Client(platform.url, platform.api_key, timeout=120) as c:
        c.create_project("Press line", id="pm")
        c.create_device_type("pm", "motor", synthetic.METRICS)
        motors = synthetic.fleet(6, seed=3)
        motors[0].current, motors[0].current_life = 90, 100
        motors[1].current, motors[1].current_life = 10, 100
        secrets = {}
        for m in motors:
            reg = c.register_device("pm", id=m.device, device_type="motor")
            m.device = reg.device.id
            secrets[m.device] = reg.credentials.secret
        now = time.time_ns() // 1000
        end = now // synthetic.HOUR * synthetic.HOUR - synthetic.HOUR
        csv = synthetic.history(platform.platform.store, "pm", motors, end, seed=3)
        c.import_maintenance("pm", csv)
        model = c.fit_rul("pm", "motor")
        c.approve_model("pm", model.id)
        c.activate_model("pm", model.id)
        for m in motors[:2]:
            with atoll.DeviceClient(platform.url, m.device, secrets[m.device]) as d:
                d.send({"vibration": 2.5, "temperature": 51.0}, ts=now // 1000)
        deadline = time.time() + 90
        while len(c.maintenance_due("pm")) < 2:
            assert time.time() < deadline, "the RUL service judged no motor"
            time.sleep(0.5)

    login(page, platform)
    page.select_option("[data-testid=project-select]", "pm")
    page.click("[data-testid=nav-maintenance]")
    rows = page.locator("[data-testid=due-table] tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-device", motors[0].device)
    expect(rows.nth(1)).to_have_attribute("data-device", motors[1].device)
    expect(rows.nth(0)).to_contain_text(f"{model.id} v1")
    expect(rows.nth(0).locator("[data-testid=due-rul]")).to_contain_text(" h")
    shots(page, "maintenance-due")
    page.select_option("[data-testid=due-within]", "1d")
    expect(rows).to_have_count(1)
    # The device page shows the same estimate, with the model in its tooltip.
    rows.nth(0).locator("a").click()
    badge = page.locator("[data-testid=device-rul]")
    expect(badge).to_contain_text("RUL ")
    expect(badge).to_have_attribute("title", re.compile(f"by {model.id} v1"))
    # The rul chart leads the device's charts, with its interval as a band; the model's
    # version is not a chart of its own.
    charts = page.locator(".chart-panel")
    expect(charts.first).to_have_attribute("data-testid", "chart-rul")
    expect(page.locator("[data-testid=band-legend-rul]")).to_contain_text("90 % interval")
    expect(page.locator("[data-testid=chart-rul_model_version]")).to_have_count(0)
    expect(page.locator("[data-testid=chart-rul_lo]")).to_have_count(0)
    expect(page.locator("[data-testid=chart-vibration]")).to_be_visible()
    shots(page, "device-rul")
