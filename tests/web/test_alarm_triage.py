"""Alarm triage and the audit page in a real Chromium against a real platform: operators mark
alarms as real faults, false alarms or unsure and give them to a user; the lab shows the
detection precision that comes from it; admins read the audit log. Viewers and operators get
only what their role may do."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.web.test_access import login_as
from tests.web.test_console import api, login
from tests.web.test_lab import enterprise

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def user(platform, key: str, name: str, role: str) -> str:
    with api(platform) as http:
        r = http.post(
            "/users",
            json={"username": name, "password": "a-long-password", "role": role},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        return r.json()["username"]


def test_operators_judge_and_assign_alarms_and_the_lab_shows_precision(platform, page, shots):
    seeded = enterprise(platform, "judge", "Judge Dairy", {"milk-1": 1, "cheese": 1})
    operator = user(platform, seeded["key"], "otto", "operator")
    viewer = user(platform, seeded["key"], "vera", "viewer")

    # The operator, in the lab's alarm console: one real fault, one false alarm.
    login_as(page, platform, operator, "a-long-password")
    page.goto(platform.url + "/lab/alarms")
    table = page.locator("[data-testid=la-table]")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    milk = table.locator("tr", has_text="Milk 1")
    cheese = table.locator("tr", has_text="Cheese")
    milk.locator("[data-testid=alarm-feedback-real]").click()
    expect(milk.locator("[data-testid=alarm-feedback]")).to_have_attribute("data-feedback", "real")
    cheese.locator("[data-testid=alarm-feedback-false]").click()
    expect(cheese.locator("[data-testid=alarm-feedback]")).to_have_attribute(
        "data-feedback", "false"
    )
    # And gives the milk alarm to themself; "Mine" then lists just that one.
    milk.locator("[data-testid=alarm-assign]").select_option(operator)
    expect(milk.locator("[data-testid=alarm-assign]")).to_have_value(operator)
    page.select_option("[data-testid=la-assignee]", "me")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Milk 1")
    page.select_option("[data-testid=la-assignee]", "")
    page.select_option("[data-testid=la-feedback]", "false")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Cheese")
    page.select_option("[data-testid=la-feedback]", "")
    shots(page, "lab-alarm-triage")
    with api(platform) as http:
        got = {
            a["project"]: a for a in http.get("/lab/alarms", params={"enterprise": "judge"}).json()
        }
    assert got["judge~milk-1"]["feedback"] == "real"
    assert got["judge~milk-1"]["assignee"] == operator
    assert got["judge~cheese"]["feedback"] == "false"
    # On the project's alarm page, clicking the active verdict again withdraws it.
    page.select_option("[data-testid=project-select]", "judge~cheese")
    page.click("[data-testid=nav-alarms]")
    row = page.locator("[data-testid=alarm-table] tr[data-alarm]")
    expect(row.locator("[data-testid=alarm-feedback]")).to_have_attribute("data-feedback", "false")
    row.locator("[data-testid=alarm-feedback-false]").click()
    expect(row.locator("[data-testid=alarm-feedback]")).to_have_attribute("data-feedback", "")
    row.locator("[data-testid=alarm-feedback-unsure]").click()
    expect(row.locator("[data-testid=alarm-feedback]")).to_have_attribute("data-feedback", "unsure")
    row.locator("[data-testid=alarm-feedback-false]").click()
    expect(row.locator("[data-testid=alarm-feedback]")).to_have_attribute("data-feedback", "false")
    page.click("[data-testid=logout]")

    # The viewer sees the verdicts and the assignee, and no button to change them.
    login_as(page, platform, viewer, "a-long-password")
    page.goto(platform.url + "/lab/alarms")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-testid=alarm-feedback]")).to_have_count(0)
    expect(page.locator("[data-testid=alarm-assign]")).to_have_count(0)
    expect(
        table.locator("tr", has_text="Milk 1").locator("[data-testid=alarm-verdict]")
    ).to_have_text("Real fault")
    expect(
        table.locator("tr", has_text="Milk 1").locator("[data-testid=alarm-assignee]")
    ).to_have_text("otto")
    page.click("[data-testid=logout]")

    # The platform operator's lab home: precision and the number judged, from the one
    # aggregate request; the enterprise page adds it per project and per rule.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/v1/" in r.url else None)
    login(page, platform)
    page.click("[data-testid=nav-lab]")
    judge = page.locator("[data-testid=lab-table] tr[data-enterprise=judge]")
    expect(judge.locator("[data-testid=lab-quality]")).to_have_text("50% of 2 judged")
    assert sum("/lab/overview" in u for u in requests) == 1, requests
    assert not any("/lab/quality" in u or "/feedback" in u for u in requests), requests
    page.goto(platform.url + "/lab/enterprises/judge")
    projects = page.locator("[data-testid=lab-project-table]")
    expect(
        projects.locator("tr[data-project='judge~milk-1'] [data-testid=lab-quality]")
    ).to_have_text("100% of 1 judged")
    expect(
        projects.locator("tr[data-project='judge~cheese'] [data-testid=lab-quality]")
    ).to_have_text("0% of 1 judged")
    per_rule = page.locator("[data-testid=lab-rule-quality] tbody tr")
    expect(per_rule).to_have_count(2)
    shots(page, "lab-quality")


def test_admins_read_the_audit_log_operators_and_viewers_do_not(platform, page, shots):
    seeded = enterprise(platform, "trail", "Trail Mills", {"mill-1": 1})
    admin = user(platform, seeded["key"], "ada", "admin")
    operator = user(platform, seeded["key"], "oleg", "operator")
    viewer = user(platform, seeded["key"], "vik", "viewer")
    with api(platform) as http:
        h = {"Authorization": f"Bearer {seeded['key']}"}
        for i in range(3):
            r = http.post("/keys", json={"name": f"k{i}", "role": "viewer"}, headers=h)
            assert r.status_code == 201

    for who in (operator, viewer):
        login_as(page, platform, who, "a-long-password")
        expect(page.locator("[data-testid=nav-audit]")).to_have_count(0)
        page.goto(platform.url + "/audit")
        expect(page.locator(".page")).to_contain_text("The audit log is for admins.")
        expect(page.locator("[data-testid=audit-table]")).to_have_count(0)
        page.click("[data-testid=logout]")

    login_as(page, platform, admin, "a-long-password")
    page.click("[data-testid=nav-audit]")
    table = page.locator("[data-testid=audit-table]")
    # Every login above is there, with the address it came from.
    logins = table.locator("tr[data-action='auth.login']")
    expect(logins).to_have_count(3)
    expect(logins.first.locator("[data-testid=audit-source]")).to_have_text("127.0.0.1")
    expect(logins.first).to_contain_text("ada")
    # Filters: by action, by user, by time.
    page.select_option("[data-testid=audit-action]", "key.create")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.locator("[data-testid=audit-count]")).to_have_text("3 entries")
    page.select_option("[data-testid=audit-action]", "")
    page.fill("[data-testid=audit-actor]", "oleg")
    expect(table.locator("tbody tr")).to_have_count(2)  # logged in, logged out
    page.fill("[data-testid=audit-actor]", "")
    page.select_option("[data-testid=audit-since]", "-1h")
    expect(table.locator("tr[data-action='key.create']")).to_have_count(3)
    shots(page, "audit")
    with page.expect_download() as dl:
        page.click("[data-testid=audit-export]")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert {"auth.login", "key.create"} <= {r["action"] for r in rows}
    assert all(r["source"] == "127.0.0.1" for r in rows if r["action"] == "auth.login")
