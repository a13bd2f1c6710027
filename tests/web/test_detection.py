"""The device page explains detection in a real Chromium against a real platform: the expected
band behind a metric's line, the model that judges each series, refit and accept as new normal
(operators only), and an anomaly alarm's contributors."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from atoll.core.events import expected_metric, score_metric
from atoll.core.points import PointBatch, SeriesKey
from tests.web.test_access import login_as
from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]

S = 1_000_000
HISTORY = 3000  # readings of stored history, one a second
LIVE = 600  # then sent live; the level shifts by 6 from reading SHIFT on
SHIFT = 400


def _signal(start: int, n: int, seed: int) -> np.ndarray:
    t = np.arange(start, start + n)
    return 20 + 2 * np.sin(2 * np.pi * t / 60) + np.random.default_rng(seed).normal(0, 0.05, n)


def _seed(platform, device: str, secret: str) -> int:
    """An hour of stored history of ``device``'s temperature, then ten minutes sent live whose
    last 200 readings sit 6 degrees high: the model fitted on the history flags them and the
    detection service stores their expected band. Returns the first live timestamp (µs)."""
    now_s = int(time.time())
    t0 = (now_s - HISTORY - LIVE - 30) * S
    ts = t0 + np.arange(HISTORY, dtype=np.int64) * S
    key = SeriesKey("plant", device, "temperature")
    platform.platform.store.append(PointBatch.of_series(key, ts, _signal(0, HISTORY, 0)))
    live = _signal(HISTORY, LIVE, 1)
    live[SHIFT:] += 6.0
    start = t0 + HISTORY * S
    for lo in range(0, LIVE, 100):
        body = [
            {"ts": (start + (lo + i) * S) // 1000, "values": {"temperature": float(v)}}
            for i, v in enumerate(live[lo : lo + 100])
        ]
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry", json=body, auth=(device, secret), timeout=60
        )
        assert r.status_code in (200, 201, 202), r.text
    want = {score_metric("temperature"), expected_metric("temperature", "hi")}
    with api(platform) as http:
        for _ in range(1200):  # the detection service judges in the background
            names = {s["metric"] for s in http.get(f"/devices/{device}/series").json()}
            if want <= names:
                break
            time.sleep(0.1)
    assert want <= names, names
    return start


def _device(platform, device: str) -> str:
    with api(platform) as http:
        r = http.post("/projects/plant/devices", json={"id": device, "device_type": "pump"})
        assert r.status_code == 201, r.text
        return r.json()["credentials"]["secret"]


def _user(platform, page, name: str, role: str) -> None:
    """Sign ``page`` in as a new console user ``name`` with ``role``."""
    with api(platform) as http:
        r = http.post(
            "/users", json={"username": name, "password": "a-long-password", "role": role}
        )
        assert r.status_code == 201, r.text
    login_as(page, platform, name, "a-long-password")


@pytest.fixture(scope="module")
def pump(platform):
    """Project ``plant``, device ``pump-7`` seeded by ``_seed`` and an anomaly rule on it, whose
    alarm keeps the explanation of the reading that raised it. Gives the first live timestamp (µs)
    and the device's secret."""
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Plant", "id": "plant"}).status_code == 201
        r = http.post(
            "/projects/plant/device-types",
            json={"id": "pump", "metrics": [{"name": "temperature", "unit": "°C"}]},
        )
        assert r.status_code == 201, r.text
    secret = _device(platform, "pump-7")
    with api(platform) as http:
        r = http.post(
            "/projects/plant/rules",
            json={
                "name": "Pump temperature abnormal",
                "severity": "major",
                "target": {"device": "pump-7"},
                "condition": {"type": "anomaly", "metric": "temperature"},
            },
        )
        assert r.status_code == 201, r.text
    start = _seed(platform, "pump-7", secret)
    with api(platform) as http:
        for _ in range(600):
            alarms = http.get("/alarms", params={"device": "pump-7"}).json()
            if alarms:
                break
            time.sleep(0.1)
    assert alarms and alarms[0]["context"]["anomaly"]["contributors"], alarms
    return start, secret


def test_the_device_chart_draws_the_expected_band_and_the_panel_the_model(
    platform, page, shots, pump
):
    login(page, platform)
    page.goto(f"{platform.url}/devices/pump-7")
    chart = page.locator("[data-testid=chart-temperature]")
    expect(page.locator(".chart-panel")).to_have_count(1)  # the band's series are no charts
    legend = page.locator("[data-testid=band-legend-temperature]")
    expect(legend).to_contain_text("expected band")
    expect(legend).to_contain_text("flagged reading")
    assert int(chart.get_attribute("data-band")) > 0

    page.click("[data-testid=tab-detection]")
    card = page.locator("[data-testid=model-temperature]")
    expect(card.locator("[data-testid=model-version]")).to_have_text("v1")
    expect(card).to_contain_text("fitted")
    expect(card).to_contain_text("plant/pump-7/temperature@1")
    expect(card).to_contain_text(f"{HISTORY} readings")
    expect(card.locator("[data-testid=model-condition]")).to_contain_text("abnormal since")
    expect(card.locator("[data-testid=model-thresholds]")).to_contain_text("normal range")
    # An admin may refit and accept.
    expect(card.locator("[data-testid=model-refit]")).to_be_visible()
    expect(card.locator("[data-testid=model-accept]")).to_be_visible()
    shots(page, "device-detection")

    # The device's own alarm list unfolds the same explanation and shows its time on the charts.
    page.click("[data-testid=tab-alarms]")
    page.click("[data-testid=device-alarms] [data-testid=alarm-why]")
    why = page.locator("[data-testid=device-alarms] [data-testid=alarm-explanation]")
    expect(why.locator("[data-testid=alarm-contributors] li")).to_have_count(3)
    why.locator("[data-testid=alarm-chart-link]").click()
    expect(page.locator("[data-testid=live-toggle]")).to_have_text("Go live")
    expect(page).to_have_url(re.compile(r"start="))  # waits: the URL can follow the render


def test_an_anomaly_alarm_shows_the_expected_band_contributors_and_model(
    platform, page, shots, pump
):
    login(page, platform)
    page.goto(f"{platform.url}/alarms")
    row = page.locator("tr.alarm-row[data-device=pump-7]")
    row.get_by_role("button", name="Details").click()
    why = page.locator("[data-testid=alarm-explanation]")
    expect(why.locator("[data-testid=alarm-expected]")).to_contain_text("band")
    contributors = why.locator("[data-testid=alarm-contributors] li")
    expect(contributors).to_have_count(3)
    names = contributors.evaluate_all("els => els.map(e => e.dataset.name)")
    assert set(names) == {"nn", "ar", "band"}
    expect(contributors.first).to_contain_text("%")
    expect(why.locator("[data-testid=alarm-model]")).to_have_text("plant/pump-7/temperature@1")
    shots(page, "alarm-explanation")

    # The link opens the device's chart around the reading that raised the alarm.
    why.locator("[data-testid=alarm-chart-link]").click()
    expect(page.locator("[data-testid=device-title]")).to_contain_text("pump-7")
    expect(page).to_have_url(re.compile(r"start=.*end=|end=.*start="))
    expect(page.locator("[data-testid=band-legend-temperature]")).to_be_visible()


def test_live_flagged_readings_extend_the_band_without_a_reload(platform, page, pump):
    _, secret = pump
    login(page, platform)
    page.goto(f"{platform.url}/devices/pump-7")
    chart = page.locator("[data-testid=chart-temperature]")
    expect(page.locator("[data-testid=band-legend-temperature]")).to_be_visible()
    before = int(chart.get_attribute("data-band"))
    now_ms = int(time.time() * 1000)
    body = [{"ts": now_ms + i * 1000, "values": {"temperature": 27.0 + i % 3}} for i in range(20)]
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry", json=body, auth=("pump-7", secret), timeout=60
    )
    assert r.status_code in (200, 201, 202), r.text
    # The anomaly events of these readings bring their band over the live socket.
    expect(chart).not_to_have_attribute("data-band", str(before))
    page.wait_for_function(
        f"document.querySelector('[data-testid=chart-temperature]')?.dataset.band >= {before + 20}"
    )


def test_a_viewer_sees_the_model_but_no_refit_or_accept(platform, page, pump):
    _user(platform, page, "vera", "viewer")
    page.goto(f"{platform.url}/devices/pump-7")
    page.click("[data-testid=tab-detection]")
    card = page.locator("[data-testid=model-temperature]")
    expect(card.locator("[data-testid=model-version]")).to_be_visible()
    expect(card.locator("[data-testid=model-refit]")).to_have_count(0)
    expect(card.locator("[data-testid=model-accept]")).to_have_count(0)


def test_an_operator_accepts_the_episode_as_new_normal_then_refits(platform, page, pump):
    _seed(platform, "pump-8", _device(platform, "pump-8"))  # its own device: pump-7 stays flagged
    _user(platform, page, "otto", "operator")
    page.goto(f"{platform.url}/devices/pump-8")
    page.click("[data-testid=tab-detection]")
    card = page.locator("[data-testid=model-temperature]")
    expect(card.locator("[data-testid=model-condition]")).to_contain_text("abnormal since")
    card.locator("[data-testid=model-accept]").click()
    form = card.locator("[data-testid=accept-form]")
    expect(form.locator("[data-testid=accept-span]")).to_have_value("episode")
    form.locator("[data-testid=accept-comment]").fill("pump re-set to the new set point")
    messages: list[str] = []

    def confirm(d):
        messages.append(d.message)
        d.accept()

    page.once("dialog", confirm)
    form.locator("[data-testid=accept-submit]").click()
    expect(card.locator("[data-testid=model-result]")).to_contain_text("model v2")
    assert "new normal" in messages[0]
    expect(card.locator("[data-testid=model-version]")).to_have_text("v2")
    expect(card.locator("[data-testid=model-condition]")).to_have_text("normal")
    expect(card).to_contain_text("accepted")
    with api(platform) as http:
        (entry,) = http.get("/audit", params={"action": "detection.accept"}).json()
    assert entry["target"] == "device:pump-8" and "otto" in entry["actor"]
    assert entry["detail"]["comment"] == "pump re-set to the new set point"
    assert entry["detail"]["version"] == 2

    page.once("dialog", lambda d: d.accept())
    card.locator("[data-testid=model-refit]").click()
    expect(card.locator("[data-testid=model-result]")).to_contain_text("model v3")
    expect(card.locator("[data-testid=model-version]")).to_have_text("v3")

    # Or the stretch the charts show: zoomed to the last 5 minutes, that window is accepted.
    page.get_by_role("button", name="5m").click()
    card.locator("[data-testid=model-accept]").click()
    form.locator("[data-testid=accept-span]").select_option("view")
    page.once("dialog", lambda d: d.accept())
    form.locator("[data-testid=accept-submit]").click()
    expect(card.locator("[data-testid=model-version]")).to_have_text("v4")
    with api(platform) as http:
        entries = http.get("/audit", params={"action": "detection.accept"}).json()
    span = entries[0]["detail"]
    assert span["version"] == 4 and "comment" not in span
    took = datetime.fromisoformat(span["to"]) - datetime.fromisoformat(span["from"])
    assert timedelta(minutes=4) < took < timedelta(minutes=6), span
