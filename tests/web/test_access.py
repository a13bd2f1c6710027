"""The Access screen in a real Chromium against a real platform: a tenant admin creates an API
key (shown once) and revokes it, adds, disables and deletes console users; a viewer gets no
admin buttons. Every effect is checked against the API itself."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def login_as(page, platform, username: str, password: str) -> None:
    page.goto(platform.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=project-tree]")).to_be_visible()


def as_key(platform, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=platform.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def test_admin_creates_a_key_shown_once_and_revokes_it(platform, page, shots):
    with api(platform) as http:
        http.post("/projects", json={"name": "Access", "id": "access"})
        assert (
            http.post(
                "/users",
                json={"username": "ines", "password": "a-long-password", "role": "operator"},
            ).status_code
            == 201
        )
    login(page, platform)
    page.click("[data-testid=nav-access]")
    keys = page.locator("[data-testid=api-keys]")
    expect(keys).to_be_visible()
    # The admin's own console session is a key too, but it is hidden until asked for.
    expect(keys.locator("tr[data-key^='session:']")).to_have_count(0)
    page.check("[data-testid=keys-all]")
    # The key this console is signed in with can't be revoked from here (that would lock you out).
    mine = keys.locator("tr", has_text="(this session)")
    expect(mine).to_have_attribute("data-key", f"session:{platform.username}")
    expect(mine.locator("[data-testid=key-revoke]")).to_have_count(0)
    page.uncheck("[data-testid=keys-all]")

    page.fill("[data-testid=key-name]", "grafana-reader")
    page.select_option("[data-testid=key-role]", "viewer")
    page.select_option("[data-testid=key-ttl]", label="30 days")
    page.click("[data-testid=key-create]")
    expect(page.locator("[data-testid=new-key]")).to_contain_text("you will not see it again")
    token = page.inner_text("[data-testid=new-key-token]").strip()
    row = keys.locator("tr[data-key=grafana-reader]")
    expect(row).to_contain_text("viewer")
    expect(row.locator("[data-testid=key-state]")).to_have_text("active")
    shots(page, "access")
    # The token shown is the real key, with the role chosen.
    with as_key(platform, token) as k:
        assert k.get("/projects").status_code == 200
        assert k.get("/keys").status_code == 403
        assert k.post("/projects", json={"name": "nope"}).status_code == 403
    page.click("[data-testid=new-key-done]")
    expect(page.locator("[data-testid=new-key]")).to_have_count(0)
    # Nowhere on the page any more.
    assert token not in page.content()

    # Revoking asks first; dismissing keeps the key.
    page.once("dialog", lambda d: d.dismiss())
    row.locator("[data-testid=key-revoke]").click()
    with as_key(platform, token) as k:
        assert k.get("/projects").status_code == 200
    page.once("dialog", lambda d: d.accept())
    row.locator("[data-testid=key-revoke]").click()
    expect(row).to_have_count(0)  # revoked keys are hidden by default...
    page.check("[data-testid=keys-all]")
    expect(row.locator("[data-testid=key-state]")).to_have_text(
        "revoked"
    )  # ...and listed on demand
    with as_key(platform, token) as k:
        assert k.get("/projects").status_code == 401

    # A bad name comes back with the server's reason.
    page.fill("[data-testid=key-name]", "x" * 201)
    page.eval_on_selector("[data-testid=key-name]", "el => el.removeAttribute('maxlength')")
    page.fill("[data-testid=key-name]", "x" * 201)
    page.click("[data-testid=key-create]")
    expect(page.locator("[data-testid=api-keys] [role=alert]")).to_contain_text("name")


def test_admin_adds_disables_and_deletes_a_user_and_a_viewer_sees_no_admin_buttons(platform, page):
    login(page, platform)
    page.click("[data-testid=nav-access]")
    users = page.locator("[data-testid=users]")
    # The admin cannot lock themselves out from here.
    expect(users.locator(f"tr[data-user={platform.username}]")).to_contain_text("(you)")
    expect(
        users.locator(f"tr[data-user={platform.username}] [data-testid=user-delete]")
    ).to_have_count(0)

    page.fill("[data-testid=user-name]", "olga")
    page.select_option("[data-testid=user-new-role]", "operator")
    page.click("[data-testid=user-generate]")
    password = page.input_value("[data-testid=user-password]")
    assert len(password) >= 10
    page.click("[data-testid=user-create]")
    expect(page.locator("[data-testid=new-user-password]")).to_have_text(password)
    row = users.locator("tr[data-user=olga]")
    expect(row.locator("[data-testid=user-state]")).to_have_text("active")
    expect(row.locator("[data-testid=user-role]")).to_have_value("operator")
    with httpx.Client(base_url=platform.url + "/api/v1", timeout=60) as anon:
        r = anon.post("/auth/login", json={"username": "olga", "password": password})
        assert r.status_code == 200 and r.json()["role"] == "operator"

        # Disable (after confirming): olga can no longer log in; enable again.
        page.once("dialog", lambda d: d.accept())
        row.locator("[data-testid=user-toggle]").click()
        expect(row.locator("[data-testid=user-state]")).to_have_text("disabled")
        assert (
            anon.post("/auth/login", json={"username": "olga", "password": password}).status_code
            == 401
        )
        row.locator("[data-testid=user-toggle]").click()
        expect(row.locator("[data-testid=user-state]")).to_have_text("active")
        assert (
            anon.post("/auth/login", json={"username": "olga", "password": password}).status_code
            == 200
        )

        # Change the role in place.
        page.once("dialog", lambda d: d.accept())

        # The select shows the new role at once; wait for the server to have it.
        def role_patch(r):
            return r.request.method == "PATCH" and "/users/" in r.url

        with page.expect_response(role_patch) as patch:
            row.locator("[data-testid=user-role]").select_option("viewer")
        assert patch.value.ok
        expect(row.locator("[data-testid=user-role]")).to_have_value("viewer")
        r = anon.post("/auth/login", json={"username": "olga", "password": password})
        assert r.json()["role"] == "viewer"

        # A short password is refused by the server, with its reason.
        page.fill("[data-testid=user-name]", "short")
        page.fill("[data-testid=user-password]", "abc")
        page.eval_on_selector(
            "[data-testid=user-password]", "el => el.removeAttribute('minlength')"
        )
        page.click("[data-testid=user-create]")
        expect(users.locator("[role=alert]")).to_contain_text("password")

        # olga, now a viewer, sees neither the Access tab nor admin screens nor report buttons.
        page.click("[data-testid=logout]")
        login_as(page, platform, "olga", password)
        expect(page.locator("[data-testid=nav-reports]")).to_be_visible()
        expect(page.locator("[data-testid=nav-access]")).to_have_count(0)
        page.goto(platform.url + "/access")
        expect(page.locator("[data-testid=access-denied]")).to_contain_text("you are viewer")
        expect(page.locator("[data-testid=key-create]")).to_have_count(0)

        # Back as admin: delete olga (after confirming); her login stops working.
        page.click("[data-testid=logout]")
        login(page, platform)
        page.click("[data-testid=nav-access]")
        page.once("dialog", lambda d: d.accept())
        users.locator("tr[data-user=olga] [data-testid=user-delete]").click()
        expect(users.locator("tr[data-user=olga]")).to_have_count(0)
        assert (
            anon.post("/auth/login", json={"username": "olga", "password": password}).status_code
            == 401
        )

    # Signed in with an API key instead: its role (from /auth/me at login) decides the same way.
    with api(platform) as http:
        token = http.post("/keys", json={"name": "wallboard", "role": "viewer"}).json()["token"]
    page.click("[data-testid=logout]")
    page.click("[data-testid=login-form] >> text=API key")
    page.fill("input[name=api_key]", token)
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=project-tree]")).to_be_visible()
    expect(page.locator("header")).to_contain_text("wallboard")
    expect(page.locator("[data-testid=nav-access]")).to_have_count(0)
    page.goto(platform.url + "/access")
    expect(page.locator("[data-testid=access-denied]")).to_contain_text("you are viewer")


def test_an_enterprise_user_signs_in_with_the_name_in_its_namespace(platform, page):
    """A username chosen in tenant globex is ``globex~wilma`` (so it never clashes with, or
    reveals, another tenant's wilma); that is the login the console accepts."""
    with api(platform) as http:
        r = http.post("/tenants", json={"name": "Globex", "id": "globex"})
        assert r.status_code == 201, r.text
    with as_key(platform, r.json()["admin_key"]["token"]) as globex:
        r = globex.post(
            "/users", json={"username": "wilma", "password": "a-long-password", "role": "viewer"}
        )
        assert r.status_code == 201 and r.json()["username"] == "globex~wilma", r.text
        assert globex.post("/projects", json={"name": "Works", "id": "works"}).status_code == 201
    page.goto(platform.url + "/")  # the short name is nobody's login
    page.fill("input[name=username]", "wilma")
    page.fill("input[name=password]", "a-long-password")
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=login-form]")).to_contain_text("wrong username or password")
    expect(page.locator("[data-testid=login-tenant-hint]")).to_contain_text("acme~alice")
    login_as(page, platform, "globex~wilma", "a-long-password")
    tree = page.locator("[data-testid=project-tree]")
    expect(tree).to_contain_text("Works")
    expect(page.locator("[data-testid=tree-tenant]")).to_have_text(["Globex"])  # its own only
