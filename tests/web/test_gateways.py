"""A gateway's page lists its child devices; a child's page says which gateway it speaks
through. Real Chromium against a real platform, the children's readings sent by a real
MQTT gateway (docs/DEVICES.md, "Gateways")."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import expect

from atoll.core import topics
from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_a_gateway_page_lists_its_children_and_a_child_names_its_gateway(platform, page, shots):
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Plant", "id": "gwplant"}).status_code == 201
        http.post(
            "/projects/gwplant/device-types",
            json={"id": "press", "metrics": [{"name": "force", "unit": "kN"}]},
        )
        r = http.post("/projects/gwplant/devices", json={"id": "edge-7", "kind": "gateway"})
        secret = r.json()["credentials"]["secret"]
        for kid in ("press-71", "press-72"):
            r = http.post(
                "/projects/gwplant/devices",
                json={"id": kid, "device_type": "press", "parent": "edge-7"},
            )
            assert r.status_code == 201, r.text
        http.post("/projects/gwplant/devices", json={"id": "lonely-7"})
    gw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-7")
    gw.username_pw_set("edge-7", secret)
    gw.connect(platform.mqtt_host, platform.mqtt_port)
    gw.loop_start()
    try:
        body = {"press-71": {"values": {"force": 12.5}}, "press-72": {"values": {"force": 3}}}
        info = gw.publish(topics.gateway_telemetry("edge-7"), json.dumps(body), qos=1)
        info.wait_for_publish(30)
        assert info.is_published()
    finally:
        gw.loop_stop()
        gw.disconnect()

    login(page, platform)
    # The fleet table marks the gateway and says which gateway a child speaks through.
    page.select_option("[data-testid=project-select]", "gwplant")
    expect(page.locator("[data-device=edge-7] [data-testid=row-gateway]")).to_have_text("gateway")
    expect(page.locator("[data-device=press-71] [data-testid=row-via]")).to_have_text("via edge-7")
    expect(page.locator("[data-device=lonely-7] [data-testid=row-via]")).to_have_count(0)
    page.goto(f"{platform.url}/devices/edge-7")
    expect(page.locator("[data-testid=device-kind]")).to_have_text("gateway")
    children = page.locator("[data-testid=gateway-child]")
    expect(children).to_have_count(2)
    expect(children.nth(0)).to_contain_text("press-71")
    expect(children.nth(0)).to_contain_text("press")
    expect(children.nth(1)).to_contain_text("press-72")
    expect(page.locator("[data-testid=gateway-children]")).not_to_contain_text("lonely-7")
    shots(page, "device-gateway")

    children.nth(0).locator("a").click()
    expect(page.locator("[data-testid=device-title]")).to_contain_text("press-71")
    via = page.locator("[data-testid=device-via]")
    expect(via).to_have_text("via gateway edge-7")
    # The reading the gateway sent is the child's own series.
    expect(page.locator("text=force").first).to_be_visible()
    expect(page.locator("[data-testid=gateway-children]")).to_have_count(0)
    via.locator("a").click()
    expect(page.locator("[data-testid=device-title]")).to_contain_text("edge-7")

    # A plain device shows neither.
    page.goto(f"{platform.url}/devices/lonely-7")
    expect(page.locator("[data-testid=device-title]")).to_contain_text("lonely-7")
    expect(page.locator("[data-testid=device-via]")).to_have_count(0)
    expect(page.locator("[data-testid=device-kind]")).to_have_count(0)


def test_the_register_form_makes_a_gateway(platform, page):
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Plant 2", "id": "gwplant2"}).status_code == 201
    login(page, platform)
    page.select_option("[data-testid=project-select]", "gwplant2")
    page.goto(f"{platform.url}/register")
    page.fill("[data-testid=reg-id]", "edge-8")
    page.check("[data-testid=reg-gateway]")
    page.click("[data-testid=reg-submit]")
    expect(page.locator("[data-testid=cred-device]")).to_have_text("edge-8")
    expect(page.locator("[data-testid=gateway-note]")).to_contain_text(
        "atoll/v1/devices/edge-8/gateway/telemetry"
    )
    with api(platform) as http:
        assert http.get("/devices/edge-8").json()["kind"] == "gateway"
    page.click("[data-testid=goto-device]")
    expect(page.locator("[data-testid=device-kind]")).to_have_text("gateway")
    expect(page.locator("[data-testid=gateway-children]")).to_contain_text("None yet")
