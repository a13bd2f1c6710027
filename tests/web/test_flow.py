"""The whole operator flow in a real Chromium against a real platform (the issue's acceptance
test): log in, create a project, register a device, send data over MQTT with its credentials,
see it plotted, create a rule (with server-side validation), trip it, acknowledge the alarm."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.web.test_console import Device, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_whole_flow_register_send_over_mqtt_see_plot_trip_rule_acknowledge(platform, page, shots):
    login(page, platform)
    page.click("[data-testid=project-new]")
    page.fill("[data-testid=project-name]", "Plant 1")
    page.click("[data-testid=project-create]")
    expect(page.locator("[data-testid=project-select]")).to_have_value("plant-1")
    expect(page.locator("[data-testid=live-state]")).to_have_text("live")

    # Register: the secret is shown once, with examples filled in for this platform.
    page.click("[data-testid=register-link]")
    page.fill("[data-testid=reg-id]", "boiler-1")
    page.fill("[data-testid=reg-name]", "Boiler 1")
    page.click("[data-testid=reg-submit]")
    secret = page.inner_text("[data-testid=cred-secret]").strip()
    assert len(secret) >= 32
    example = page.inner_text("[data-testid=ex-mqtt]")
    assert (
        f"-p {platform.mqtt_port}" in example
        and secret in example
        and "atoll/v1/devices/boiler-1/telemetry" in example
    )
    assert "curl -u 'boiler-1:" in page.inner_text("[data-testid=ex-curl]")
    shots(page, "register")
    # The three examples work exactly as printed (each sends temperature 21.5).
    for testid in ("ex-mqtt", "ex-curl"):
        done = subprocess.run(
            ["sh", "-c", page.inner_text(f"[data-testid={testid}]")],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, (testid, done.stdout, done.stderr)
    done = subprocess.run(
        [sys.executable, "-c", page.inner_text("[data-testid=ex-python]")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    page.click("[data-testid=goto-device]")
    expect(page.locator("[data-testid=device-title]")).to_contain_text("boiler-1")
    expect(page.locator("[data-testid=chart-temperature]")).to_be_visible()

    # Readings over MQTT with the device's own credentials appear without a reload.
    dev = Device(platform, "boiler-1", secret)
    try:
        for i, v in enumerate((22.0, 22.5)):
            time.sleep(0.01)
            dev.send({"temperature": v, "pressure": 1.2 + i / 10})
        chart = page.locator("[data-testid=chart-temperature]")
        expect(chart).to_be_visible()
        expect(page.locator("[data-testid=last-temperature]")).to_contain_text("22.5")
        # Pick another window: the chart re-queries the store (min/max per pixel column, so
        # readings less than a column apart share one) and still ends at the newest reading.
        n = page.evaluate("window.__atollChartLoads")
        page.click("[data-testid=range-bar] >> text=5m")
        page.wait_for_function(f"() => window.__atollChartLoads > {n}")
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=chart-temperature]')"
            "?.dataset.points) >= 2"
        )
        expect(page.locator("[data-testid=last-temperature]")).to_contain_text("22.5")
        expect(chart.locator("canvas")).to_have_count(1)
        expect(page.locator("[data-testid=chart-pressure]")).to_be_visible()

        # A rule, through the form; the server's validation message shows while typing.
        page.click("[data-testid=nav-rules]")
        page.click("[data-testid=rule-new]")
        page.fill("[data-testid=rule-name]", "Boiler too hot")
        page.select_option("[data-testid=rule-target-kind]", "device")
        page.fill("[data-testid=rule-target]", "boiler-1")
        page.fill("[data-testid=rule-metric]", "temperature")
        page.fill("[data-testid=rule-value]", "50")
        expect(page.locator("[data-testid=rule-invalid]")).to_contain_text(
            "clear (75) must be <= value (50)"
        )
        page.fill("[data-testid=rule-clear]", "45")
        expect(page.locator("[data-testid=rule-valid]")).to_be_visible()
        page.click("[data-testid=rule-yaml-tab]")
        assert "metric: temperature" in page.input_value("[data-testid=rule-yaml]")
        page.click("[data-testid=rule-save]")
        expect(page.locator("[data-testid=rule-saved]")).to_be_visible()
        expect(page.locator("[data-testid=rule-table]")).to_contain_text("temperature > 50")
        shots(page, "rules")

        # Trip it: the alarm arrives over the live feed (no reload) and is acknowledged.
        page.click("[data-testid=nav-alarms]")
        dev.send({"temperature": 80.0})
        row = page.locator("tr.alarm-row[data-device=boiler-1]")
        expect(row).to_have_attribute("data-state", "active", timeout=10_000)
        expect(page.locator("[data-testid=active-alarm-badge]")).to_have_text("1")
        row.locator("[data-testid=alarm-ack]").click()
        expect(row).to_have_attribute("data-state", "acknowledged")
        row.locator("text=Details").click()
        page.fill("[data-testid=alarm-comment-input]", "Valve checked, draining")
        page.click("[data-testid=alarm-comment-add]")
        expect(page.locator("[data-testid=alarm-comments]")).to_contain_text(
            "Valve checked, draining"
        )
        # Authored by the console user, not its session key (#13's walk: "session:admin").
        expect(page.locator("[data-testid=alarm-comments]")).to_contain_text(
            f"{platform.username} ·"
        )
        expect(page.locator("[data-testid=alarm-comments]")).not_to_contain_text("session:")
        shots(page, "alarms")

        # The device page marks the alarm on its charts and lists it.
        row.locator("a[href='/devices/boiler-1']").click()
        page.click("[data-testid=tab-alarms]")
        expect(page.locator(".alarm-mini")).to_contain_text("Boiler too hot")
        expect(page.locator(".alarm-mini")).to_contain_text("acknowledged")
        shots(page, "device")

        # Back on the fleet page the device is online.
        page.click("[data-testid=nav-fleet]")
        expect(page.locator(".row[data-device=boiler-1] .dot.online")).to_be_visible()
        shots(page, "fleet")
    finally:
        dev.close()
