"""The platform admin oversees every tenant from one console login."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_bootstrap_admin_sees_every_tenant_and_opens_another_tenants_device(platform, page):
    with api(platform) as http:
        assert (
            http.post("/projects", json={"name": "Home lab", "id": "home-lab"}).status_code == 201
        )
        r = http.post("/tenants", json={"name": "Acme Works", "id": "acme"})
        assert r.status_code == 201, r.text
        acme = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
        r = http.post("/projects", json={"name": "Acme plant", "id": "acme-plant"}, headers=acme)
        assert r.status_code == 201 and r.json()["id"] == "acme~acme-plant", r.text
        r = http.post("/projects/acme~acme-plant/devices", json={"id": "press-1"}, headers=acme)
        assert r.status_code == 201 and r.json()["device"]["id"] == "acme~press-1", r.text
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    login(page, platform)
    tenants = page.locator("[data-testid=tree-tenant]")
    expect(tenants).to_have_text(["Acme Works", "Default"])
    page.click("[data-testid=project-tree] .tree-item:has-text('Acme plant')")
    page.click(".row[data-device='acme~press-1']")
    expect(page.locator("[data-testid=device-title]")).to_contain_text("acme~press-1")
    expect(page.locator("[data-testid=live-state]")).to_have_text("live")
    assert any("project=acme~acme-plant" in u and "tenant=acme" in u for u in sockets), sockets
