"""The rest of issue #13's user walk in a real Chromium against a real platform: the fleet table
(whole ids, no id repeated as the name, new devices without a reload, last values of quiet
devices, no overflow on a phone), a device that does not exist, "+ New project" for the
platform operator, unrounded numbers, commands that expire, refused MQTT connections and the
early 404 on every reload. Each test failed on the console before its fix."""

from __future__ import annotations

import json
import re
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import expect

from atoll.core import topics
from tests.web.test_access import as_key
from tests.web.test_console import Device, api, login
from tests.web.test_lab import enterprise, send

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]

LONG = "assembly-line-07-station-12-press"


def fleet(platform, tid: str, ids: list[str]) -> dict:
    """A tenant with one project ``{tid}~plant`` of boilers: ``plant-b0`` and the given ids."""
    seeded = enterprise(platform, tid, tid.title(), {"plant": 1}, hot=False)
    with as_key(platform, seeded["key"]) as http:
        for i in ids:
            r = http.post(f"/projects/{tid}~plant/devices", json={"id": i, "device_type": "boiler"})
            assert r.status_code == 201, r.text
            c = r.json()["credentials"]
            seeded["secrets"][c["device"]] = c["secret"]
    return seeded


def open_fleet(page, platform, project: str) -> None:
    login(page, platform)
    page.select_option("[data-testid=project-select]", project)
    expect(page.locator("[data-testid=device-count]")).not_to_have_text("loading…")


def test_fleet_rows_show_whole_distinct_ids_and_no_id_as_name(platform, page):
    seeded = fleet(platform, "ids", [f"{LONG}-b01", f"{LONG}-b02"])
    with as_key(platform, seeded["key"]) as http:
        r = http.post(
            "/projects/ids~plant/devices",
            json={"id": "named", "name": "North press", "device_type": "boiler"},
        )
        assert r.status_code == 201
    open_fleet(page, platform, "ids~plant")
    rows = page.locator("[data-testid=device-list] .row[data-device]")
    expect(rows).to_have_count(4)
    ids = page.locator("[data-testid=device-list] .row[data-device] .c-id")
    # What is on screen: nothing of an id is cut off by its column, and no two rows read alike.
    shown = ids.evaluate_all(
        "els => els.map(e => ({text: e.innerText, cut: e.scrollWidth > e.clientWidth}))"
    )
    assert not any(s["cut"] for s in shown), shown
    assert len({s["text"] for s in shown}) == 4, shown
    a, b = (s["text"] for s in shown if LONG[:10] in s["text"])
    assert a.endswith("-b01") and b.endswith("-b02")
    # The name column says the name, not the id again.
    long_row = page.locator(f"[data-device='ids~{LONG}-b01']")
    expect(long_row.locator(".c-name")).to_have_text("")
    expect(page.locator("[data-device='ids~named'] .c-name")).to_have_text("North press")


def test_fleet_lists_new_devices_and_last_values_of_quiet_ones_without_a_reload(platform, page):
    seeded = fleet(platform, "quiet", ["q1"])
    send(platform, seeded["secrets"], "quiet~q1", 21.5)  # before the page opens: quiet since
    open_fleet(page, platform, "quiet~plant")
    expect(page.locator("[data-device='quiet~q1'] .c-values")).to_contain_text("temperature=21.5")
    # A device registered and sending after the page loaded appears by itself.
    with as_key(platform, seeded["key"]) as http:
        r = http.post("/projects/quiet~plant/devices", json={"id": "q2", "device_type": "boiler"})
        secret = r.json()["credentials"]["secret"]
    expect(page.locator("[data-testid=live-state]")).to_have_text("live")
    deadline = time.monotonic() + 20
    row = page.locator("[data-device='quiet~q2']")
    while row.count() == 0 and time.monotonic() < deadline:
        send(platform, {"quiet~q2": secret}, "quiet~q2", 30.0)
        page.wait_for_timeout(700)
    expect(row).to_have_count(1)
    expect(row.locator(".c-values")).to_contain_text("temperature=30")
    expect(page.locator("[data-testid=device-count]")).to_have_text("3 devices")


def test_fleet_fits_a_390_px_phone(platform, browser):
    fleet(platform, "phone", [f"{LONG}-b01", f"{LONG}-b02"])
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    try:
        open_fleet(page, platform, "phone~plant")
        expect(page.locator("[data-testid=device-list] .row[data-device]")).to_have_count(3)
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                             && e.getClientRects().length)
                .map(e => e.tagName + '.' + e.className)"""
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        assert wide == [], wide
    finally:
        ctx.close()


def test_a_device_that_does_not_exist_says_so_without_the_device_page(platform, page):
    login(page, platform)
    page.goto(platform.url + "/devices/no-such-device")
    box = page.locator("[data-testid=device-not-found]")
    expect(box).to_contain_text("Device not found")
    expect(box).to_contain_text("no-such-device")
    expect(page.locator("[role=alert]")).to_have_count(0)
    expect(page.locator("[data-testid=range-bar]")).to_have_count(0)
    expect(page.locator("[data-testid=tab-commands]")).to_have_count(0)
    expect(page.locator("button", has_text="Update desired")).to_have_count(0)


def test_a_link_to_another_tenants_device_opens_it_for_the_platform_operator(platform, page):
    """The platform operator looking at one enterprise follows a link to a device of another:
    the page acts in the device's tenant instead of answering "not found"."""
    enterprise(platform, "here", "Here Co", {"site": 1}, hot=False)
    enterprise(platform, "there", "There Co", {"yard": 1}, hot=False)
    open_fleet(page, platform, "here~site")
    page.goto(platform.url + "/devices/there~yard-b0")
    expect(page.locator("[data-testid=device-title]")).to_contain_text("there~yard-b0")
    expect(page.locator("[data-testid=device-not-found]")).to_have_count(0)
    expect(page.locator("[data-testid=project-select]")).to_have_value("there~yard")
    expect(page.locator("[role=alert]")).to_have_count(0)


def test_new_project_asks_the_platform_operator_for_the_enterprise(platform, page):
    enterprise(platform, "first", "First Co", {"one": 1}, hot=False)
    enterprise(platform, "second", "Second Co", {"two": 1}, hot=False)
    open_fleet(page, platform, "first~one")
    page.click("[data-testid=project-new]")
    owner = page.locator("[data-testid=project-tenant]")
    expect(owner).to_have_value("first")  # the one on screen, said, not assumed
    owner.select_option("second")
    page.fill("[data-testid=project-name]", "Kiln")
    page.click("[data-testid=project-create]")
    expect(page.locator("[data-testid=project-select]")).to_have_value("second~kiln")
    with api(platform) as http:
        got = {p["id"]: p["tenant"] for p in http.get("/lab/projects").json()["projects"]}
    assert got["second~kiln"] == "second"
    assert "first~kiln" not in got


def kettle(platform, project: str) -> str:
    """A project with one device, ``{project}-1``; answers its secret."""
    with api(platform) as http:
        http.post("/projects", json={"name": project.title(), "id": project})
        r = http.post(f"/projects/{project}/devices", json={"id": f"{project}-1"})
        return r.json()["credentials"]["secret"]


def test_numbers_show_without_float_noise(platform, page):
    dev = Device(platform, "kettle-1", kettle(platform, "kettle"))
    try:
        dev.client.publish(
            topics.twin_reported("kettle-1"), json.dumps({"temperature": 108.74999999999999}), qos=1
        ).wait_for_publish(30)
        dev.send({"temperature": 108.74999999999999})
    finally:
        dev.close()
    open_fleet(page, platform, "kettle")
    expect(page.locator("[data-device=kettle-1] .c-values")).to_contain_text("temperature=108.75")
    page.goto(platform.url + "/devices/kettle-1")
    expect(page.locator("[data-testid=twin-reported]")).to_contain_text('"temperature": 108.75')
    expect(page.locator("[data-testid=twin-reported]")).not_to_contain_text("108.7499")


def test_a_command_nobody_acknowledges_turns_expired_on_screen(platform, page):
    kettle(platform, "urn")
    # The device is not connected: nobody acknowledges the command within its 2 s.
    with api(platform) as http:
        r = http.post("/devices/urn-1/commands", json={"name": "boil", "ttl_s": 2})
        assert r.status_code in (200, 201, 202), r.text
    open_fleet(page, platform, "urn")
    page.goto(platform.url + "/devices/urn-1")
    page.click("[data-testid=tab-commands]")
    status = page.locator("[data-testid=commands] tbody tr").first
    expect(status).to_contain_text("expired", timeout=20_000)


def test_refused_mqtt_connections_show_on_the_device_page(platform, page):
    with api(platform) as http:
        http.post("/projects", json={"name": "Gate", "id": "gate"})
        secret = http.post("/projects/gate/devices", json={"id": "gate-1"}).json()["credentials"][
            "secret"
        ]
    # Right credentials, wrong client id: the broker refuses the connection.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="someone-else")
    client.username_pw_set("gate-1", secret)
    codes: list = []
    client.on_connect = lambda c, u, f, rc, p=None: codes.append(rc)
    client.connect(platform.mqtt_host, platform.mqtt_port)
    client.loop_start()
    deadline = time.monotonic() + 20
    while not codes and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    assert codes and codes[0].is_failure, codes
    open_fleet(page, platform, "gate")
    with api(platform) as http:
        deadline = time.monotonic() + 20
        while not http.get("/devices/gate-1/rejections").json() and time.monotonic() < deadline:
            time.sleep(0.1)
    page.goto(platform.url + "/devices/gate-1")
    refused = page.locator("[data-testid=device-rejections]")
    expect(refused).to_contain_text("bad_client_id")
    expect(refused).to_contain_text("someone-else")


def test_reloading_pages_makes_no_request_that_fails(platform, page):
    """Issue #13: an early request without the selected tenant answered 404 on every reload."""
    seeded = enterprise(platform, "reload", "Reload Co", {"line-1": 1})
    assert seeded["key"]
    failed: list[str] = []
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if "/api/v1/" in r.url and r.status >= 400
            else None
        ),
    )
    open_fleet(page, platform, "reload~line-1")
    for path in ("/", "/alarms", "/lab", "/lab/alarms", "/devices/reload~line-1-b0", "/rules"):
        page.goto(platform.url + path)
        page.wait_for_load_state("networkidle")
        page.reload()
        page.wait_for_load_state("networkidle")
    assert failed == []


def test_the_rule_editor_offers_declared_types_and_metrics_and_names_a_typo(platform, page):
    """#13's walk: a misspelled metric or device type was marked valid. The editor now offers
    the project's declared types and metrics and shows the server's warning for a typo."""
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Oven", "id": "oven"}).status_code == 201
        r = http.post(
            "/projects/oven/device-types",
            json={
                "id": "oven",
                "metrics": [{"name": "temperature", "unit": "°C"}, {"name": "door"}],
            },
        )
        assert r.status_code == 201, r.text
    login(page, platform)
    page.select_option("[data-testid=project-select]", "oven")
    page.click("[data-testid=nav-rules]")
    page.click("[data-testid=rule-new]")
    page.fill("[data-testid=rule-name]", "Oven too hot")
    page.fill("[data-testid=rule-target]", "ovn")
    warnings = page.locator("[data-testid=rule-warnings]")
    expect(warnings).to_contain_text("'ovn' is not a device type of this project (it has oven)")
    expect(page.locator("#rule-type-choices option")).to_have_count(1)
    page.fill("[data-testid=rule-target]", "oven")
    choices = page.locator("[data-testid=rule-metric-choices] option")
    expect(choices).to_have_count(2)
    assert sorted(choices.evaluate_all("os => os.map(o => o.value)")) == ["door", "temperature"]
    page.fill("[data-testid=rule-metric]", "temprature")
    expect(warnings).to_contain_text("'temprature' is not declared by oven")
    expect(page.locator("[data-testid=rule-valid]")).to_have_count(0)
    page.fill("[data-testid=rule-metric]", "temperature")
    expect(page.locator("[data-testid=rule-valid]")).to_be_visible()


def test_a_chart_with_no_readings_in_its_window_says_so(platform, page):
    """#13's walk: empty "0 pts" charts with no hint. A series whose readings are all older than
    the window says there is nothing in it and what to do; a longer window draws them."""
    secret = kettle(platform, "quiet")
    three_hours_ago = int(time.time() * 1000) - 3 * 3600 * 1000
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        auth=("quiet-1", secret),
        json=[{"ts": three_hours_ago + i * 1000, "values": {"level": 40.0 + i}} for i in range(5)],
    )
    assert r.status_code == 200, r.text
    login(page, platform)
    page.goto(platform.url + "/devices/quiet-1")
    hint = page.locator("[data-testid=chart-empty-level]")
    expect(hint).to_contain_text("No readings of level in this window: pick a longer one")
    page.click("[data-testid=range-bar] >> text=24h")
    # (Five readings a second apart share a pixel column at 24 h: drawn as its min and max.)
    expect(page.locator("[data-testid=chart-level]")).to_have_attribute(
        "data-points", re.compile(r"^[1-9]")
    )
    expect(hint).to_have_count(0)


def test_a_stretch_without_readings_is_drawn_as_a_break(platform, page):
    """#13's walk: gaps were drawn as ramps from the last reading before to the first after."""
    secret = kettle(platform, "gappy")
    now_ms = int(time.time() * 1000)
    body = [
        {"ts": start + i * 1000, "values": {"level": 40.0 + i}}
        for start in (now_ms - 20 * 60_000, now_ms - 5 * 60_000)
        for i in range(10)
    ]
    r = httpx.post(f"{platform.url}/api/v1/ingest/telemetry", auth=("gappy-1", secret), json=body)
    assert r.status_code == 200, r.text
    login(page, platform)
    page.goto(platform.url + "/devices/gappy-1")
    chart = page.locator("[data-testid=chart-level]")
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    expect(chart.locator(".chart-box")).to_have_attribute("data-gaps", "1")


def test_a_past_window_does_not_take_in_live_readings(platform, page):
    """#13's walk: a past window showed live values. Readings arriving while a past window is
    on screen leave it, its point count and its "last" value as stored for that window."""
    secret = kettle(platform, "past")
    then = int(time.time() * 1000) - 3 * 3600 * 1000

    def send(body):
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry", auth=("past-1", secret), json=body
        )
        assert r.status_code == 200, r.text

    send([{"ts": then + i * 1000, "values": {"level": 40.0 + i}} for i in range(5)])
    login(page, platform)
    page.goto(f"{platform.url}/devices/past-1?start={then - 60_000}&end={then + 60_000}")
    chart = page.locator("[data-testid=chart-level]")
    expect(page.locator("[data-testid=last-level]")).to_have_text("last 44")
    points = chart.get_attribute("data-points")
    send({"values": {"level": 99.0}})  # now, while the past window is open
    page.wait_for_timeout(1500)  # the live message has had time to arrive and be drawn
    expect(page.locator("[data-testid=last-level]")).to_have_text("last 44")
    assert chart.get_attribute("data-points") == points


def test_charts_show_the_unit_the_device_type_declares(platform, page):
    """#13's walk: no units on axes. The chart names its unit and draws it on the value axis."""
    with api(platform) as http:
        http.post("/projects", json={"name": "Units", "id": "units"})
        r = http.post(
            "/projects/units/device-types",
            json={"id": "tank", "metrics": [{"name": "level", "unit": "m³"}, {"name": "count"}]},
        )
        assert r.status_code == 201, r.text
        r = http.post("/projects/units/devices", json={"id": "tank-1", "device_type": "tank"})
        secret = r.json()["credentials"]["secret"]
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        auth=("tank-1", secret),
        json={"values": {"level": 3.5, "count": 2}},
    )
    assert r.status_code == 200, r.text
    login(page, platform)
    page.goto(platform.url + "/devices/tank-1")
    expect(page.locator("[data-testid=unit-level]")).to_have_text("m³")
    expect(page.locator("[data-testid=chart-count]")).to_be_visible()
    expect(page.locator("[data-testid=unit-count]")).to_have_count(0)  # none declared


def test_charts_draw_the_threshold_of_each_rule_and_name_the_alarm_shading(platform, page, shots):
    """#13's walk: no threshold lines, unlabelled alarm bands. A threshold rule on the device's
    type is drawn on its metric's chart and named in the chart's head; once an alarm is open the
    head names the shading too."""
    with api(platform) as http:
        http.post("/projects", json={"name": "Lines", "id": "lines"})
        r = http.post(
            "/projects/lines/device-types",
            json={"id": "vat", "metrics": [{"name": "level", "unit": "m"}]},
        )
        assert r.status_code == 201, r.text
        r = http.post("/projects/lines/devices", json={"id": "vat-1", "device_type": "vat"})
        secret = r.json()["credentials"]["secret"]
        rule = {
            "name": "Vat high",
            "target": {"device_type": "vat"},
            "condition": {"type": "threshold", "metric": "level", "op": ">", "value": 5},
        }
        assert http.post("/projects/lines/rules", json=rule).status_code == 201
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        auth=("vat-1", secret),
        json={"values": {"level": 3.0}},
    )
    assert r.status_code == 200, r.text
    login(page, platform)
    page.goto(platform.url + "/devices/vat-1")
    expect(page.locator("[data-testid=thresholds-level]")).to_contain_text("> 5")
    expect(page.locator("[data-testid=alarm-key-level]")).to_have_count(0)
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        auth=("vat-1", secret),
        json={"values": {"level": 7.0}},
    )
    assert r.status_code == 200, r.text
    expect(page.locator("[data-testid=alarm-key-level]")).to_be_visible(timeout=30_000)
    shots(page, "device-threshold-and-alarm")
