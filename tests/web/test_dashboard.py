"""The template dashboard in a real Chromium against a real platform: a project started from
the manufacturing template (``atoll.solutions.apply``) is drawn with its template's panels;
charts across devices, tiles and the alarm list follow MQTT readings live."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

import atoll
from atoll.solutions import load
from atoll.solutions.apply import apply
from tests.web.test_console import Device, api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_template_dashboard_draws_the_layout_and_follows_live_readings(platform, page, shots):
    template = load("manufacturing")
    with atoll.Client(platform.url, platform.api_key, timeout=60) as client:
        apply(client, template, "line", project_name="Line 1", rules=False)
    secrets = {}
    with api(platform) as http:
        for dev, dtype in (("motor-1", "motor"), ("motor-2", "motor"), ("pump-1", "pump")):
            r = http.post("/projects/line/devices", json={"id": dev, "device_type": dtype})
            assert r.status_code == 201, r.text
            secrets[dev] = r.json()["credentials"]["secret"]
        r = http.post(
            "/projects/line/rules",
            json={
                "name": "Pump bearing hot",
                "severity": "critical",
                "target": {"device_type": "pump"},
                "condition": {
                    "type": "threshold",
                    "metric": "bearing_temp",
                    "op": ">",
                    "value": 80,
                    "clear": 75,
                },
            },
        )
        assert r.status_code == 201, r.text
    # Half an hour of minute readings per device, sent over HTTP with each device's secret.
    now_ms = int(time.time() * 1000)
    for dev, secret in secrets.items():
        if dev.startswith("motor"):

            def values(i, d=dev):
                return {
                    "vibration_rms": 1.5 + i / 100 + (d == "motor-2"),
                    "bearing_temp": 50.0,
                    "current": 30.0 + i % 5,
                }
        else:

            def values(i):
                return {
                    "pressure": 6.0,
                    "flow": 120.0 + i,
                    "vibration_rms": 2.0,
                    "bearing_temp": 48.0 + i / 10,
                    "current": 45.0,
                }

        batch = [{"ts": now_ms - (30 - i) * 60_000, "values": values(i)} for i in range(30)]
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry", json=batch, auth=(dev, secret), timeout=60
        )
        assert r.status_code in (200, 201, 202), r.text

    login(page, platform)
    page.select_option("[data-testid=project-select]", "line")
    page.click("[data-testid=nav-dashboard]")
    expect(page.locator("[data-testid=dashboard-title]")).to_have_text(template.dashboard.title)
    expect(page.locator("[data-testid=dashboard-template]")).to_have_value("manufacturing")
    panels = page.locator("[data-testid=dash-panel]")
    expect(panels).to_have_count(len(template.dashboard.panels))
    expect(panels.locator(".panel-head strong")).to_have_text(
        [p.title for p in template.dashboard.panels]
    )

    # Line panels: one uPlot per panel, every device of the type a line (two motors, one pump
    # with pressure and flow on two axes).
    motor_vib = page.locator("[data-testid=dash-chart-0]")
    expect(motor_vib.locator("canvas")).to_have_count(1)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=dash-chart-0]')?.dataset.points) >= 40"
    )
    expect(motor_vib.locator(".u-legend .u-series")).to_have_count(3)  # time + motor-1 + motor-2
    expect(motor_vib.locator(".u-legend")).to_contain_text("motor-2")
    pump = page.locator("[data-testid=dash-chart-3]")
    expect(pump.locator(".u-legend")).to_contain_text("pump-1 flow")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=dash-chart-3]')?.dataset.points) >= 40"
    )

    # Tiles show the latest stored values: a gauge for pump vibration, a stat for its bearing.
    bearing = page.locator("[data-testid=tile][data-device=pump-1][data-metric=bearing_temp]")
    expect(bearing.locator("[data-testid=tile-value]")).to_have_text("50.9°C")
    expect(
        page.locator("[data-testid=tile][data-device=pump-1][data-metric=vibration_rms] .meter")
    ).to_be_visible()
    expect(page.locator("[data-testid=dash-alarms]")).to_contain_text("No open alarms")
    expect(page.locator("[data-testid=live-state]")).to_have_text("live")

    # Live: MQTT readings move the tile and extend the chart without a reload; a rule trips and
    # its alarm appears in the list.
    before = int(motor_vib.get_attribute("data-points"))
    motor = Device(platform, "motor-1", secrets["motor-1"])
    pump_dev = Device(platform, "pump-1", secrets["pump-1"])
    try:
        motor.send({"vibration_rms": 3.3, "bearing_temp": 51.0, "current": 31.0})
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=dash-chart-0]')?.dataset.points)"
            f" > {before}"
        )
        pump_dev.send(
            {
                "bearing_temp": 86.5,
                "pressure": 6.1,
                "flow": 150.0,
                "vibration_rms": 2.1,
                "current": 46.0,
            }
        )
        expect(bearing.locator("[data-testid=tile-value]")).to_have_text("86.5°C")
        expect(bearing).to_have_class("tile bad")  # above the template's expected 85 °C
        alarm = page.locator("[data-testid=dash-alarm][data-device=pump-1]")
        expect(alarm).to_contain_text("Pump bearing hot")
        expect(alarm).to_contain_text("active")
        shots(page, "dashboard")
    finally:
        motor.close()
        pump_dev.close()

    # Another template's layout can be picked; its panels say when the project has no such devices.
    page.select_option("[data-testid=dashboard-template]", "retail")
    expect(page.locator("[data-testid=dashboard-title]")).to_have_text(
        load("retail").dashboard.title
    )
    expect(panels.first).to_contain_text("devices in this project yet")
