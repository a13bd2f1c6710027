"""The console in a real Chromium against a real platform: the whole operator flow, the fleet
table at scale, chart zoom re-querying the store, twin and commands."""

from __future__ import annotations

import json
import re
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import expect

from atoll.core import topics
from atoll.core.events import score_metric

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


class Device:
    """A device speaking MQTT with its own credentials, as a real one would."""

    def __init__(self, platform, device_id: str, secret: str) -> None:
        self.id = device_id
        self.received: list[tuple[str, dict]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id)
        self.client.username_pw_set(device_id, secret)
        self.client.on_message = lambda c, u, m: self.received.append(
            (m.topic, json.loads(m.payload))
        )
        self.client.connect(platform.mqtt_host, platform.mqtt_port)
        self.client.loop_start()
        self.client.subscribe(topics.device_root(device_id) + "/commands/+", qos=1)

    def send(self, values: dict, ts_ms: int | None = None) -> None:
        body = {"values": values} | ({"ts": ts_ms} if ts_ms is not None else {})
        info = self.client.publish(topics.telemetry(self.id), json.dumps(body), qos=1)
        info.wait_for_publish(30)
        assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def login(page, platform) -> None:
    page.goto(platform.url + "/")
    page.fill("input[name=username]", platform.username)
    page.fill("input[name=password]", platform.password)
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=project-tree]")).to_be_visible()


def api(platform) -> httpx.Client:
    # Generous timeout: CI shares two cores between two test workers and everything else.
    return httpx.Client(
        base_url=platform.url + "/api/v1",
        headers={"Authorization": f"Bearer {platform.api_key}"},
        timeout=60,
    )


def test_fleet_table_pages_and_filters_on_the_server(platform, page, shots):
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Fleet", "id": "fleet"}).status_code == 201
        for i in range(450):
            r = http.post(
                "/projects/fleet/devices", json={"id": f"unit-{i:04d}", "name": f"Unit {i}"}
            )
            assert r.status_code == 201, r.text
    requests: list[str] = []
    page.on(
        "request", lambda r: requests.append(r.url) if "/projects/fleet/devices" in r.url else None
    )
    login(page, platform)
    page.select_option("[data-testid=project-select]", "fleet")
    expect(page.locator("[data-testid=device-count]")).to_have_text("450 devices")
    rows = page.locator("[data-testid=device-list] .row[data-device]")
    assert rows.count() < 100  # virtualised: only what is in view (plus a margin) exists
    # Scrolling to the end fetches the last page on demand.
    page.eval_on_selector("[data-testid=device-list]", "el => el.scrollTop = el.scrollHeight")
    expect(page.locator(".row[data-device=unit-0449]")).to_be_visible()
    assert any("offset=400" in u for u in requests)
    shots(page, "fleet-paged")
    # The filter runs in the API (search is a query parameter, total from X-Total-Count).
    page.fill("[data-testid=device-filter]", "unit-01")
    expect(page.locator("[data-testid=device-count]")).to_have_text("100 devices")
    assert any("q=unit-01" in u for u in requests)
    page.select_option("[data-testid=status-filter]", "online")
    expect(page.locator("[data-testid=device-count]")).to_have_text("0 devices")


def test_chart_zoom_requeries_downsampled_then_raw(platform, page, shots):
    with api(platform) as http:
        http.post("/projects", json={"name": "Zoom", "id": "zoom"})
        secret = http.post("/projects/zoom/devices", json={"id": "meter-1"}).json()["credentials"][
            "secret"
        ]
    end = (int(time.time()) // 60) * 60_000
    start = end - 7 * 86_400_000
    readings = [
        {"ts": start + i * 60_000, "values": {"power": 50 + (i % 1440) / 30}}
        for i in range(7 * 1440)
    ]
    for chunk in (readings[i : i + 2016] for i in range(0, len(readings), 2016)):
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry",
            json=chunk,
            auth=("meter-1", secret),
            timeout=60,
        )
        assert r.status_code in (200, 201, 202), r.text

    queries: list[httpx.URL] = []
    page.on(
        "request", lambda r: queries.append(httpx.URL(r.url)) if "/series/power" in r.url else None
    )
    login(page, platform)
    page.goto(f"{platform.url}/devices/meter-1?start={start}&end={end}")
    panel = page.locator("[data-testid=chart-power]")
    expect(panel).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-power]')?.dataset.points) > 0"
    )
    first = queries[-1].params
    width = int(first["width"])
    assert first["mode"] == "chart" and 300 < width < 2000
    drawn = int(panel.get_attribute("data-points"))
    assert 100 < drawn <= 2 * width + 4  # a week of minutes, drawn as ≈2 points per pixel
    shots(page, "device-week")

    # Drag-select 1 % of the plot: a new query for just that range comes back as raw minutes.
    box = panel.locator(".u-over").bounding_box()
    x0, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2

    def narrow(request) -> bool:  # the zoom's query: this series, under 2 % of the week
        if "/series/power" not in request.url:
            return False
        q = httpx.URL(request.url).params
        return 0 < int(q["end"]) - int(q["start"]) < 0.02 * (end - start)

    # Waiting for the request itself: the page's own counter can move before Playwright has
    # handed the request event to this process (a loaded CI machine saw that race).
    with page.expect_request(narrow, timeout=30_000) as zoom:
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x0 + box["width"] * 0.01, y, steps=3)
        page.mouse.up()
    zoomed = httpx.URL(zoom.value.url).params
    span = int(zoomed["end"]) - int(zoomed["start"])
    page.wait_for_function("() => window.__atollChartLoads >= 2")
    page.wait_for_function(
        "() => { const n ="
        " Number(document.querySelector('[data-testid=chart-power]')?.dataset.points);"
        f" return n > 0 && n <= {span // 60_000 + 2}; }}"
    )
    expect(page.locator("[data-testid=range-label]")).to_have_text(
        re.compile(r"\((\d+ min|\d+ h)\)$")
    )
    # The zoomed window is in the URL, so it can be shared.
    assert f"start={zoomed['start']}" in page.url


def test_a_forecast_is_drawn_ahead_of_now_on_request(platform, page, shots):
    """The chart's Forecast button asks the forecast API for a third of the window ahead and
    draws its path and band past now; a series too short to forecast says why."""
    with api(platform) as http:
        http.post("/projects", json={"name": "Cold", "id": "cold"})
        secret = http.post("/projects/cold/devices", json={"id": "fz-1"}).json()["credentials"][
            "secret"
        ]
    now_ms = int(time.time() * 1000)
    start = now_ms - 2 * 86_400_000
    readings = []
    for i in range(2 * 1440):
        t = start + i * 60_000
        warm = max(0.0, (t - (now_ms - 3_600_000)) / 3_600_000) * 3.0  # dead for the last hour
        readings.append({"ts": t, "values": {"temperature": -20.0 + warm, "door": i % 2}})
    readings[-1]["values"]["fresh"] = 1.0
    for chunk in (readings[i : i + 1440] for i in range(0, len(readings), 1440)):
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry",
            json=chunk,
            auth=("fz-1", secret),
            timeout=60,
        )
        assert r.status_code in (200, 201, 202), r.text
    login(page, platform)
    page.goto(f"{platform.url}/devices/fz-1?span=6h")
    panel = page.locator("[data-testid=chart-temperature]")
    expect(panel).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-temperature]')"
        "?.dataset.points) > 0"
    )
    with page.expect_request(lambda r: "/series/temperature/forecast" in r.url) as asked:
        page.locator("[data-testid=forecast-toggle-temperature]").click()
    assert httpx.URL(asked.value.url).params["horizon"].endswith("m")
    legend = page.locator("[data-testid=forecast-legend-temperature]")
    # The first forecast in a process also loads the forecasting library: seconds under load.
    expect(legend).to_be_visible(timeout=90_000)
    assert int(legend.get_attribute("data-points")) > 0
    expect(page.locator("[data-testid=forecast-toggle-temperature]")).to_have_attribute(
        "aria-pressed", "true"
    )
    panel.scroll_into_view_if_needed()
    shots(page, "device-forecast")
    # A series with one reading: the reason, not an empty chart.
    page.locator("[data-testid=forecast-toggle-fresh]").click()
    expect(page.locator("[data-testid=forecast-error-fresh]")).to_contain_text(
        "a forecast needs", timeout=60_000
    )


def test_a_score_series_is_drawn_over_its_metric(platform, page):
    """The detection service names a metric's score series with ``score_metric``; the console
    overlays it on that metric's chart by the same name. A metric that merely ends in
    ``_score`` is a metric, with a chart (and scores) of its own."""
    with api(platform) as http:
        http.post("/projects", json={"name": "Scores", "id": "scores"})
        secret = http.post("/projects/scores/devices", json={"id": "oven-1"}).json()["credentials"][
            "secret"
        ]
    now = int(time.time() * 1000)
    readings = [
        {"ts": now - (120 - i) * 1000, "values": {"temp": 20 + (i % 7) / 10, "quality_score": 0.5}}
        for i in range(120)
    ]
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        json=readings,
        auth=("oven-1", secret),
        timeout=60,
    )
    assert r.status_code in (200, 201, 202), r.text
    want = {"temp", "quality_score", score_metric("temp"), score_metric("quality_score")}
    with api(platform) as http:
        for _ in range(1200):  # the detection service scores in the background
            names = {s["metric"] for s in http.get("/devices/oven-1/series").json()}
            if want <= names:
                break
            time.sleep(0.1)
    assert want <= names

    login(page, platform)
    page.goto(f"{platform.url}/devices/oven-1")
    for metric in ("temp", "quality_score"):
        panel = page.locator(f"[data-testid=chart-{metric}]")
        expect(panel.locator(".tag", has_text="anomaly overlay")).to_be_visible()
    expect(page.locator(".chart-panel")).to_have_count(2)  # no chart of the scores alone


def test_twin_and_commands_round_trip_to_a_real_mqtt_device(platform, page):
    with api(platform) as http:
        http.post("/projects", json={"name": "Twin", "id": "twin"})
        secret = http.post("/projects/twin/devices", json={"id": "valve-1"}).json()["credentials"][
            "secret"
        ]
    dev = Device(platform, "valve-1", secret)
    try:
        dev.client.subscribe(topics.twin_desired("valve-1"), qos=1)
        login(page, platform)
        page.goto(f"{platform.url}/devices/valve-1")
        expect(page.locator("[data-testid=live-state]")).to_have_text("live")

        # Reported state from the device shows up live; desired state goes down to the device.
        dev.client.publish(
            topics.twin_reported("valve-1"), json.dumps({"position": 40}), qos=1
        ).wait_for_publish(30)
        expect(page.locator("[data-testid=twin-reported]")).to_contain_text('"position": 40')
        page.fill("[data-testid=twin-patch]", '{"position": 75}')
        page.click("text=Update desired")
        expect(page.locator("[data-testid=twin-desired]")).to_contain_text('"position": 75')
        deadline = time.time() + 30
        while not any(
            t.endswith("/twin/desired") and m.get("position") == 75 for t, m in dev.received
        ):
            assert time.time() < deadline, dev.received
            time.sleep(0.05)

        # A command reaches the device on its command topic; its ack updates the list live.
        page.click("[data-testid=tab-commands]")
        page.fill("[data-testid=cmd-name]", "open")
        page.fill("[data-testid=cmd-args]", '{"percent": 75}')
        page.click("[data-testid=cmd-send]")
        deadline = time.time() + 30
        while not any("/commands/" in t for t, _ in dev.received):
            assert time.time() < deadline, dev.received
            time.sleep(0.05)
        topic, body = next((t, m) for t, m in dev.received if "/commands/" in t)
        assert body["name"] == "open" and body["args"] == {"percent": 75}
        dev.client.publish(
            topic + "/ack", json.dumps({"status": "ok", "result": {"percent": 75}}), qos=1
        ).wait_for_publish(30)
        expect(page.locator("[data-testid=commands] tr").first).to_contain_text("acked")
        # Bad JSON is refused in the form, with the reason.
        page.fill("[data-testid=cmd-args]", "{percent: 75")
        page.click("[data-testid=cmd-send]")
        expect(page.locator("[data-testid=commands] [role=alert]")).to_contain_text(
            "not valid JSON"
        )
    finally:
        dev.close()


def test_channels_created_and_tested_against_a_local_webhook_receiver(platform, page, webhook):
    url, received = webhook
    with api(platform) as http_:
        http_.post("/projects", json={"name": "Hooks", "id": "hooks"})
    login(page, platform)
    page.select_option("[data-testid=project-select]", "hooks")
    page.click("[data-testid=nav-rules]")
    panel = page.locator("[data-testid=channels]")
    panel.locator("input").first.fill("ops")
    panel.locator("textarea").fill(json.dumps({"url": url}))
    panel.locator("text=Save channel").click()
    expect(panel.locator("td.mono").first).to_have_text("ops")
    panel.locator("text=Test").click()
    expect(panel).to_contain_text("Test to ops: delivered")
    assert received, "the webhook receiver got nothing"
    # A bad config comes back with the server's reason.
    panel.locator("input").first.fill("broken")
    panel.locator("textarea").fill('{"url": 5}')
    panel.locator("text=Save channel").click()
    expect(panel.locator("[role=alert]")).to_contain_text("broken")
