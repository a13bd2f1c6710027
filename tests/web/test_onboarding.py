"""Onboarding in the console (issue #13 item 3): a new enterprise with its admin invited by a
one-time link, invites by an enterprise admin, and every user's password change."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def _login_as(page, platform, username: str, password: str) -> None:
    page.goto(platform.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=user-menu]")).to_have_text(username)


def _logout(page) -> None:
    page.click("[data-testid=logout]")
    expect(page.locator("[data-testid=login-form]")).to_be_visible()


def _session(platform, username: str, password: str) -> dict[str, str]:
    r = httpx.post(
        f"{platform.url}/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_operator_creates_an_enterprise_and_the_invitee_becomes_its_admin(platform, page, shots):
    login(page, platform)
    page.goto(platform.url + "/lab")
    page.click("[data-testid=new-enterprise]")
    page.fill("[data-testid=enterprise-name]", "Orbit Foods")
    page.fill("[data-testid=enterprise-id]", "orbit")
    page.fill("[data-testid=enterprise-admin]", "boss")
    page.click("[data-testid=enterprise-create]")
    link = page.locator("[data-testid=invite-link]")
    expect(link).to_contain_text("/invite#inv_")
    expect(page.locator("[data-testid=new-invite]")).to_contain_text("orbit~boss")
    expect(page.locator("tr[data-enterprise=orbit]")).to_be_visible()
    shots(page, "onboarding-new-enterprise")
    url = link.inner_text().strip()
    _logout(page)

    page.goto(url)
    expect(page.locator("[data-testid=invite-welcome]")).to_contain_text("Orbit Foods")
    expect(page.locator("[data-testid=invite-welcome]")).to_contain_text("admin")
    page.fill("[data-testid=invite-password]", "short")
    page.fill("[data-testid=invite-password-again]", "short")
    page.click("[data-testid=invite-submit]")
    expect(page.locator("[data-testid=error]")).to_contain_text("at least 10 characters")
    shots(page, "onboarding-accept-invite")
    page.fill("[data-testid=invite-password]", "orbit-boss-password")
    page.fill("[data-testid=invite-password-again]", "orbit-boss-password")
    page.click("[data-testid=invite-submit]")
    expect(page.locator("[data-testid=user-menu]")).to_have_text("orbit~boss")
    assert page.evaluate("location.pathname + location.hash") == "/"
    # An enterprise admin: Access is drawn, and the new user's home is their own enterprise.
    expect(page.locator("[data-testid=nav-access]")).to_be_visible()
    me = page.evaluate(
        "fetch('/api/v1/auth/me', {headers: {Authorization: 'Bearer ' +"
        " JSON.parse(localStorage.getItem('atoll.session')).token}}).then(r => r.json())"
    )
    assert me["tenant"] == "orbit" and me["role"] == "admin" and not me["platform_admin"]
    _logout(page)

    # Single use: the same link now says it is dead, with what to do.
    page.goto(url)
    expect(page.locator("[data-testid=invite-invalid]")).to_contain_text("used, revoked or expired")
    expect(page.locator("[data-testid=invite-password]")).to_have_count(0)


def test_enterprise_admin_invites_and_revokes_in_access(platform, page):
    with api(platform) as http:
        r = http.post("/tenants", json={"name": "Delta", "id": "delta"})
        assert r.status_code == 201, r.text
        delta = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
        r = http.post(
            "/users",
            json={"username": "chief", "password": "delta-chief-pw", "role": "admin"},
            headers=delta,
        )
        assert r.status_code == 201, r.text
    _login_as(page, platform, "delta~chief", "delta-chief-pw")
    page.goto(platform.url + "/access")
    page.fill("[data-testid=invite-name]", "ann")
    page.select_option("[data-testid=invite-role]", "viewer")
    page.click("[data-testid=invite-create]")
    expect(page.locator("[data-testid=invite-link]")).to_contain_text("/invite#inv_")
    row = page.locator("tr[data-invite='delta~ann']")
    expect(row.locator("[data-testid=invite-state]")).to_have_text("pending")
    url = page.locator("[data-testid=invite-link]").inner_text().strip()
    page.on("dialog", lambda d: d.accept())
    row.locator("[data-testid=invite-revoke]").click()
    expect(row.locator("[data-testid=invite-state]")).to_have_text("revoked")
    r = httpx.post(
        f"{platform.url}/api/v1/auth/invite",
        json={"token": url.split("#", 1)[1]},
    )
    assert r.status_code == 404


def test_viewer_sees_no_invite_or_enterprise_controls(platform, page):
    with api(platform) as http:
        r = http.post(
            "/users", json={"username": "watcher", "password": "watcher-pass-1", "role": "viewer"}
        )
        assert r.status_code == 201, r.text
    _login_as(page, platform, "watcher", "watcher-pass-1")
    page.goto(platform.url + "/access")
    expect(page.locator("[data-testid=access-denied]")).to_be_visible()
    expect(page.locator("[data-testid=invite-form]")).to_have_count(0)
    page.goto(platform.url + "/lab/enterprises/default")
    expect(page.locator("[data-testid=lab-enterprise-title]")).to_be_visible()
    expect(page.locator("[data-testid=invites]")).to_have_count(0)
    expect(page.locator("[data-testid=new-enterprise]")).to_have_count(0)
    viewer = _session(platform, "watcher", "watcher-pass-1")
    r = httpx.post(f"{platform.url}/api/v1/invites", json={"username": "x"}, headers=viewer)
    assert r.status_code == 403 and "admin role" in r.json()["message"]


def test_every_user_changes_their_password_from_the_user_menu(platform, page, shots):
    with api(platform) as http:
        r = http.post(
            "/users", json={"username": "olga", "password": "olga-first-pw", "role": "operator"}
        )
        assert r.status_code == 201, r.text
    other = _session(platform, "olga", "olga-first-pw")  # e.g. a CLI login elsewhere
    _login_as(page, platform, "olga", "olga-first-pw")
    page.click("[data-testid=user-menu]")
    expect(page.locator("[data-testid=password-form]")).to_be_visible()

    def change(current: str, new: str, again: str | None = None) -> None:
        page.fill("[data-testid=password-current]", current)
        page.fill("[data-testid=password-new]", new)
        page.fill("[data-testid=password-again]", again if again is not None else new)
        page.click("[data-testid=password-submit]")

    change("wrong-password", "olga-second-pw")
    expect(page.locator("[data-testid=password-error]")).to_contain_text(
        "current password is wrong"
    )
    change("olga-first-pw", "short")
    expect(page.locator("[data-testid=password-error]")).to_contain_text("at least 10")
    change("olga-first-pw", "olga-second-pw", "olga-secnd-pw")
    expect(page.locator("[data-testid=password-error]")).to_contain_text("differ")
    change("olga-first-pw", "olga-second-pw")
    expect(page.locator("[data-testid=password-done]")).to_be_visible()
    shots(page, "account-password")
    # The other session ended; this one goes on after a reload.
    assert httpx.get(f"{platform.url}/api/v1/auth/me", headers=other).status_code == 401
    page.reload()
    expect(page.locator("[data-testid=user-menu]")).to_have_text("olga")
    expect(page.locator("[data-testid=password-form]")).to_be_visible()
    _logout(page)
    _login_as(page, platform, "olga", "olga-second-pw")


def test_operator_sets_quotas_shown_as_usage_bars_and_enforced(platform, page, shots):
    with api(platform) as http:
        r = http.post("/tenants", json={"name": "Kappa Mills", "id": "kappa"})
        assert r.status_code == 201, r.text
        kappa = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
        assert http.post("/projects", json={"name": "Mill", "id": "mill"}, headers=kappa).is_success
        secrets = {}
        for d in ("m1", "m2"):
            r = http.post("/projects/kappa~mill/devices", json={"id": d}, headers=kappa)
            assert r.status_code == 201, r.text
            secrets[r.json()["credentials"]["device"]] = r.json()["credentials"]["secret"]
        r = http.post(
            "/users",
            json={"username": "kview", "password": "kappa-view-pw", "role": "viewer"},
            headers=kappa,
        )
        assert r.status_code == 201, r.text
    login(page, platform)
    page.goto(platform.url + "/lab/enterprises/kappa")
    devices = page.locator("[data-quota=devices] [data-testid=quota-usage]")
    expect(devices).to_have_text("2 / no limit")
    page.click("[data-testid=quota-edit]")
    page.fill("[data-testid=quota-devices]", "2")
    page.fill("[data-testid=quota-api_keys]", "5")
    page.fill("[data-testid=quota-ingest_rate]", "5")
    page.click("[data-testid=quota-save]")
    expect(devices).to_have_text("2 / 2")
    expect(page.locator("[data-quota=api_keys] [data-testid=quota-usage]")).to_have_text("1 / 5")
    expect(page.locator("[data-quota=devices] .bar.full")).to_be_visible()
    shots(page, "lab-enterprise-quotas")
    r = httpx.post(
        f"{platform.url}/api/v1/projects/kappa~mill/devices", json={"id": "m3"}, headers=kappa
    )
    assert r.status_code == 403 and r.json()["error"] == "quota_exceeded"
    assert "2 of 2" in r.json()["message"] and "quota" in r.json()["hint"]
    expect(page.locator("[data-quota=ingest_rate] [data-testid=quota-usage]")).to_contain_text(
        "/ 5 points/s"
    )
    # The ingest rate applies at once: 5 points/s with a burst of 10 for the whole enterprise.
    reading = {"values": {f"v{i}": i for i in range(10)}}
    answers = [
        httpx.post(f"{platform.url}/api/v1/ingest/telemetry", auth=(dev, secret), json=reading)
        for _ in range(3)
        for dev, secret in secrets.items()
    ]
    assert answers[0].status_code == 200, answers[0].text
    refused = next(a for a in answers if a.status_code != 200)  # 60 points in well under 10 s
    assert refused.status_code == 429 and "tenant 5 points/s" in refused.json()["message"]
    assert "ingest_rate quota" in refused.json()["hint"] and refused.headers["retry-after"]
    _logout(page)

    # The enterprise's viewer sees the bars, not the button; the API refuses them too.
    _login_as(page, platform, "kappa~kview", "kappa-view-pw")
    page.goto(platform.url + "/lab/enterprises/kappa")
    expect(devices).to_have_text("2 / 2")
    expect(page.locator("[data-testid=quota-edit]")).to_have_count(0)
    viewer = _session(platform, "kappa~kview", "kappa-view-pw")
    r = httpx.put(
        f"{platform.url}/api/v1/tenants/kappa/quotas", json={"devices": 99}, headers=viewer
    )
    assert r.status_code == 403


def test_a_project_from_a_sector_template_is_previewed_then_created(platform, page, shots):
    """+ New project offers the sector templates; picking one shows what it will add (device
    types with their metrics and units, rules, dashboard) before anything is made; Create makes
    the project and applies the template in one step. Asked again for the same project, the
    preview says what is kept and what is replaced."""
    from tests.web.test_lab import enterprise

    enterprise(platform, "tpl", "Template Co", {"tpl-first": 1}, hot=False)
    login(page, platform)
    page.click("[data-testid=project-new]")
    page.select_option("[data-testid=project-tenant]", "tpl")
    page.fill("[data-testid=project-name]", "Cold room")
    page.select_option("[data-testid=project-template]", "retail")
    preview = page.locator("[data-testid=project-preview]")
    expect(page.locator("[data-testid=plan-summary]")).to_contain_text(
        "Creates the project and adds 3 device types and 14 rules"
    )
    freezer = preview.locator("[data-testid=plan-type][data-type=freezer]")
    expect(freezer.locator("[data-testid=plan-action]")).to_have_text("new")
    expect(freezer.locator("[data-testid=plan-metrics]")).to_contain_text("temperature °C")
    expect(preview.locator("[data-testid=plan-rule]")).to_have_count(14)
    expect(page.locator("[data-testid=plan-dashboard]")).to_contain_text("Freezer temperature")
    shots(page, "new-project-from-template")
    with api(platform) as http:  # a preview makes nothing
        ids = {p["id"] for p in http.get("/lab/projects").json()["projects"]}
    assert "tpl~cold-room" not in ids

    page.click("[data-testid=project-create]")
    expect(page.locator("[data-testid=project-dialog]")).to_have_count(0)
    expect(page.locator("[data-testid=project-select]")).to_have_value("tpl~cold-room")
    with api(platform) as http:
        h = {"X-Atoll-Tenant": "tpl"}
        types = http.get("/projects/tpl~cold-room/device-types", headers=h).json()
        rules = http.get("/projects/tpl~cold-room/rules", headers=h).json()
    assert {t["id"] for t in types} == {"freezer", "chiller", "store_meter"}
    assert len(rules) == 14

    # The same name again: the project is there, so its types are kept and its rules replaced.
    page.click("[data-testid=project-new]")
    page.select_option("[data-testid=project-tenant]", "tpl")
    page.fill("[data-testid=project-name]", "Cold room")
    page.select_option("[data-testid=project-template]", "retail")
    expect(page.locator("[data-testid=plan-summary]")).to_contain_text(
        "The project exists: adds 0 device types and 0 rules; keeps 3 device types it has; "
        "replaces 14 rules"
    )
    expect(freezer.locator("[data-testid=plan-action]")).to_have_text("kept")
    page.click("[data-testid=project-cancel]")
    expect(page.locator("[data-testid=project-dialog]")).to_have_count(0)
