"""The lab in a real Chromium against a real platform: the lab home across enterprises, the drill
down to an enterprise and a project, the alarm console across tenants (bulk acknowledge, CSV
export), and the defects of issue #13's user walk, each failing on the console before the fix."""

from __future__ import annotations

import csv
import io
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_access import login_as
from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def enterprise(platform, tid: str, name: str, projects: dict[str, int], hot: bool = True) -> dict:
    """A tenant with projects of ``n`` boilers each, a "Too hot" rule per project and, for each
    project, one boiler over the limit sent through HTTP ingest (a real alarm, raised by the
    rules service). Answers the admin key, and device secrets by id."""
    with api(platform) as http:
        r = http.post("/tenants", json={"name": name, "id": tid})
        assert r.status_code == 201, r.text
        key = r.json()["admin_key"]["token"]
        h = {"Authorization": f"Bearer {key}"}
        secrets: dict[str, str] = {}
        for pid, n in projects.items():
            r = http.post(
                "/projects", json={"name": pid.replace("-", " ").title(), "id": pid}, headers=h
            )
            assert r.status_code == 201, r.text
            project = r.json()["id"]
            r = http.post(
                f"/projects/{project}/device-types",
                json={"id": "boiler", "metrics": [{"name": "temperature"}]},
                headers=h,
            )
            assert r.status_code == 201, r.text
            r = http.post(
                f"/projects/{project}/devices/batch",
                json={
                    "devices": [{"id": f"{pid}-b{i}", "device_type": "boiler"} for i in range(n)]
                },
                headers=h,
            )
            assert r.status_code == 201, r.text
            for d in r.json():
                secrets[d["credentials"]["device"]] = d["credentials"]["secret"]
            rule = {
                "name": "Too hot",
                "severity": "critical" if pid.endswith("1") else "major",
                "target": {"device_type": "boiler"},
                "condition": {"type": "threshold", "metric": "temperature", "op": ">", "value": 90},
            }
            r = http.post(f"/projects/{project}/rules", json=rule, headers=h)
            assert r.status_code == 201, r.text
            if hot:
                send(platform, secrets, f"{tid}~{pid}-b0", 95.5)
        # The alarms are raised by the rules service, asynchronously.
        deadline = time.monotonic() + 30
        while hot and time.monotonic() < deadline:
            got = http.get("/lab/alarms", params={"enterprise": tid}).json()
            if len(got) == len(projects):
                break
            time.sleep(0.1)
        else:
            assert not hot, f"alarms of {tid} not raised: {got}"
    return {"key": key, "secrets": secrets}


def send(platform, secrets: dict[str, str], device: str, value: float) -> None:
    r = httpx.post(
        f"{platform.url}/api/v1/ingest/telemetry",
        json={"values": {"temperature": value}},
        auth=(device, secrets[device]),
        timeout=60,
    )
    assert r.status_code < 300, r.text


def test_lab_home_lists_enterprises_and_drills_down_to_a_project(platform, page, shots):
    enterprise(platform, "north", "North Foods", {"bakery-1": 3, "dairy": 2})
    enterprise(platform, "south", "South Metals", {"foundry-1": 4})
    for i in range(6):  # enough enterprises to search, sort and filter
        with api(platform) as http:
            assert (
                http.post("/tenants", json={"name": f"Idle {i}", "id": f"idle-{i}"}).status_code
                == 201
            )
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/v1/" in r.url else None)
    login(page, platform)
    page.click("[data-testid=nav-lab]")
    table = page.locator("[data-testid=lab-table]")
    north = table.locator("tr[data-enterprise=north]")
    expect(north).to_contain_text("North Foods")
    expect(north).to_contain_text("2/5")  # one boiler per project sent: online/total
    expect(north.locator("[data-testid=lab-alarm-chips]")).to_contain_text("1 critical")
    expect(north.locator("[data-testid=lab-alarm-chips]")).to_contain_text("1 major")
    # Worst alarms first: the two enterprises with a critical alarm lead.
    first = table.locator("tbody tr").first
    expect(first).to_have_attribute("data-enterprise", "north")
    # One aggregate request drew it, whatever the number of projects.
    assert sum("/lab/overview" in u for u in requests) == 1
    assert not any("/projects?" in u or u.endswith("/projects") for u in requests if "tenant" in u)
    shots(page, "lab")

    # Search and filter run over the answer; the view is in the URL (survives a reload).
    page.fill("[data-testid=lab-search]", "metal")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=lab-count]")).to_contain_text("1 of")
    page.fill("[data-testid=lab-search]", "")
    page.select_option("[data-testid=lab-filter]", "empty")
    expect(table.locator("tr[data-enterprise=north]")).to_have_count(0)
    expect(table.locator("tr[data-enterprise=idle-0]")).to_have_count(1)
    page.reload()
    expect(page.locator("[data-testid=lab-filter]")).to_have_value("empty")
    page.select_option("[data-testid=lab-filter]", "")
    # Let the filter's change reach the URL before the next one (a loaded run lost the sort).
    expect(page).not_to_have_url(re.compile(r"filter="))
    page.select_option("[data-testid=lab-sort]", "name")
    expect(page).to_have_url(re.compile(r"sort=name"))
    expect(table.locator("tbody tr").first).to_have_attribute("data-enterprise", "default")

    # Drill down: the enterprise, then a project's fleet (in that enterprise's tenant).
    table.locator("tr[data-enterprise=north]").click()
    expect(page.locator("[data-testid=lab-enterprise-title]")).to_have_text("North Foods")
    projects = page.locator("[data-testid=lab-project-table]")
    bakery = projects.locator("tr[data-project='north~bakery-1']")
    expect(bakery).to_contain_text("1/3")
    expect(bakery.locator("[data-testid=lab-alarm-chips]")).to_have_text("1 critical")
    shots(page, "lab-enterprise")
    bakery.click()
    expect(page.locator("[data-testid=device-count]")).to_have_text("3 devices")
    expect(page.locator("[data-testid=project-select]")).to_have_value("north~bakery-1")
    expect(page.locator("[role=alert]")).to_have_count(0)


def test_an_enterprise_admin_lands_on_its_own_enterprise(platform, page):
    seeded = enterprise(platform, "east", "East Water", {"pumps-1": 2})
    h = {"Authorization": f"Bearer {seeded['key']}"}
    with api(platform) as http:
        r = http.post(
            "/users",
            json={"username": "erin", "password": "a-long-password", "role": "admin"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        username = r.json()["username"]
    login_as(page, platform, username, "a-long-password")
    page.click("[data-testid=nav-lab]")
    expect(page.locator("[data-testid=lab-enterprise-title]")).to_have_text("East Water")
    expect(page).to_have_url(f"{platform.url}/lab/enterprises/east")
    expect(page.locator("[data-testid=lab-project-table] tbody tr")).to_have_count(1)
    # Other enterprises are not there, even by URL.
    page.goto(platform.url + "/lab/enterprises/north")
    expect(page.locator("[role=alert]")).to_contain_text("not found")


def test_alarm_console_across_enterprises_bulk_acknowledges_and_exports(platform, page, shots):
    enterprise(platform, "west", "West Grain", {"silo-1": 2, "mill": 2})
    enterprise(platform, "mid", "Mid Glass", {"kiln-1": 2})
    login(page, platform)
    page.goto(platform.url + "/lab/alarms")
    table = page.locator("[data-testid=la-table]")
    expect(table.locator("tbody tr", has_text="West Grain")).to_have_count(2)
    expect(table.locator("tbody tr", has_text="Mid Glass")).to_have_count(1)
    # Filters: enterprise, then one of its projects, then severity.
    page.select_option("[data-testid=la-enterprise]", "west")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.locator("[data-testid=la-count]")).to_have_text("2 alarms")
    page.select_option("[data-testid=la-project]", "west~mill")
    expect(table.locator("tbody tr")).to_have_count(1)
    page.select_option("[data-testid=la-project]", "")
    page.select_option("[data-testid=la-severity]", "critical")
    # 30 s: on a loaded CI machine this answer once took longer than the default 15 s (the page
    # then showed the right row; the failure screenshot has it).
    expect(table.locator("tbody tr", has_text="Silo 1")).to_have_count(1, timeout=30_000)
    expect(table.locator("tbody tr")).to_have_count(1)
    page.select_option("[data-testid=la-severity]", "")
    expect(table.locator("tbody tr")).to_have_count(2)
    page.select_option("[data-testid=la-order]", "severity")
    expect(table.locator("tbody tr").first).to_contain_text("Silo 1")  # the critical one
    expect(table.locator("tbody tr").first.locator(".sev")).to_have_text("critical")
    shots(page, "lab-alarms")

    # Export what the filters show, as CSV.
    with page.expect_download() as dl:
        page.click("[data-testid=lab-alarms-export]")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert {r["tenant"] for r in rows} == {"west"} and len(rows) == 2

    # Bulk acknowledge both, then clear them: the open list empties.
    page.check("[data-testid=la-pick-all]")
    page.click("[data-testid=la-ack]")
    expect(page.locator("[data-testid=la-note]")).to_have_text("2 acknowledged")
    expect(table.locator("tbody tr .state")).to_have_text(["acknowledged", "acknowledged"])
    with api(platform) as http:
        got = http.get("/lab/alarms", params={"enterprise": "west"}).json()
        assert {a["status"] for a in got} == {"acknowledged"}
        # The console user's name, not its session key's ("session:admin", #13's walk).
        assert all(a["acknowledged_by"] == platform.username for a in got), got
    page.check("[data-testid=la-pick-all]")
    page.click("[data-testid=la-clear]")
    expect(page.locator("[data-testid=la-note]")).to_have_text("2 cleared")
    expect(table.locator("tbody tr")).to_have_count(0)
    # Mid Glass was not touched.
    page.select_option("[data-testid=la-enterprise]", "mid")
    expect(table.locator("tbody tr .state")).to_have_text(["active"])


def test_after_an_enterprise_user_logs_out_the_next_login_is_not_stuck_on_project_not_found(
    platform, page
):
    """Issue #13: the enterprise user's project stayed selected; the platform operator who
    signed in next in the same browser got "project not found", even after a reload."""
    seeded = enterprise(platform, "solo", "Solo Farms", {"barn": 1})
    h = {"Authorization": f"Bearer {seeded['key']}"}
    with api(platform) as http:
        r = http.post(
            "/users",
            json={"username": "sam", "password": "a-long-password", "role": "operator"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        username = r.json()["username"]
        assert http.post("/projects", json={"name": "Home", "id": "home-a"}).status_code == 201
    login_as(page, platform, username, "a-long-password")
    expect(page.locator("[data-testid=project-select]")).to_have_value("solo~barn")
    expect(page.locator("[data-testid=device-count]")).to_have_text("1 devices")
    page.click("[data-testid=logout]")
    login(page, platform)
    expect(page.locator("[data-testid=device-count]")).to_contain_text("devices")
    expect(page.locator("[role=alert]")).to_have_count(0)
    page.reload()
    expect(page.locator("[data-testid=device-count]")).to_contain_text("devices")
    expect(page.locator("[role=alert]")).to_have_count(0)
    # And the platform admin opening the enterprise's project acts in its tenant.
    page.select_option("[data-testid=project-select]", "solo~barn")
    expect(page.locator("[data-testid=device-count]")).to_have_text("1 devices")
    page.reload()
    expect(page.locator("[data-testid=device-count]")).to_have_text("1 devices")
    expect(page.locator("[role=alert]")).to_have_count(0)


def test_a_viewer_sees_no_buttons_that_would_fail_forbidden(platform, page):
    """Issue #13: viewers saw Acknowledge, Clear, New rule, Register, Update desired, Rotate
    and Revoke, which then failed with "forbidden"."""
    seeded = enterprise(platform, "view", "View Co", {"plant": 1})
    h = {"Authorization": f"Bearer {seeded['key']}"}
    with api(platform) as http:
        r = http.post(
            "/users",
            json={"username": "vic", "password": "a-long-password", "role": "viewer"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        username = r.json()["username"]
    login_as(page, platform, username, "a-long-password")
    expect(page.locator("[data-testid=device-count]")).to_have_text("1 devices")
    expect(page.locator("[data-testid=nav-register]")).to_have_count(0)
    expect(page.locator("[data-testid=register-link]")).to_have_count(0)
    expect(page.locator("[data-testid=project-new]")).to_have_count(0)

    page.click("[data-testid=nav-alarms]")
    row = page.locator("[data-testid=alarm-table] tr[data-alarm]")
    expect(row).to_have_count(1)
    expect(row.locator("[data-testid=alarm-ack]")).to_have_count(0)
    expect(row.locator("[data-testid=alarm-clear]")).to_have_count(0)
    row.locator("text=Details").click()
    expect(page.locator("tr.details")).to_contain_text("Comments")
    expect(page.locator("[data-testid=alarm-comment-add]")).to_have_count(0)

    page.click("[data-testid=nav-rules]")
    expect(page.locator("[data-testid=rule-table] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=rule-new]")).to_have_count(0)
    page.locator("[data-testid=rule-table] tbody tr").first.click()
    expect(page.locator("[data-testid=rule-editor]")).to_be_visible()
    expect(page.locator("[data-testid=rule-save]")).to_have_count(0)
    expect(page.locator("[data-testid=channels] button", has_text="Save channel")).to_have_count(0)

    page.goto(platform.url + "/devices/view~plant-b0")
    expect(page.locator("[data-testid=device-title]")).to_contain_text("view~plant-b0")
    expect(page.locator("[data-testid=twin-desired]")).to_be_visible()
    expect(page.locator("button", has_text="Update desired")).to_have_count(0)
    page.click("[data-testid=tab-commands]")
    expect(page.locator("[data-testid=commands]")).to_be_visible()
    expect(page.locator("[data-testid=cmd-send]")).to_have_count(0)
    expect(page.locator("[data-testid=tab-credentials]")).to_have_count(0)
    expect(page.locator("button", has_text="Rotate secret")).to_have_count(0)

    page.goto(platform.url + "/register")
    expect(page.locator("[data-testid=register-form]")).to_have_count(0)
    expect(page.locator(".page.register")).to_contain_text("needs the operator role")

    page.goto(platform.url + "/lab/alarms")
    expect(page.locator("[data-testid=la-table] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=la-bulk]")).to_have_count(0)
    expect(page.locator("[data-testid=la-pick]")).to_have_count(0)


def test_rules_table_reads_anomaly_rules_and_durations_in_words(platform, page):
    """Issue #13: "anomaly(temperature) ≥ undefined" and durations without units."""
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Words", "id": "words"}).status_code == 201
        r = http.post(
            "/projects/words/device-types",
            json={"id": "oven", "metrics": [{"name": "temperature"}]},
        )
        assert r.status_code == 201, r.text
        for body in (
            {
                "name": "Odd",
                "condition": {"type": "anomaly", "metric": "temperature", "for": "90s"},
            },
            {"name": "Silent", "condition": {"type": "no_data", "timeout": "10m"}},
            {
                "name": "Jump",
                "condition": {
                    "type": "rate",
                    "metric": "temperature",
                    "op": ">",
                    "value": 2,
                    "per": "1m",
                },
            },
            {
                "name": "Thaw",
                "condition": {
                    "type": "forecast",
                    "metric": "temperature",
                    "above": -15,
                    "within": "40m",
                },
            },
        ):
            r = http.post("/projects/words/rules", json={**body, "target": {"device_type": "oven"}})
            assert r.status_code == 201, r.text
    login(page, platform)
    page.select_option("[data-testid=project-select]", "words")
    page.click("[data-testid=nav-rules]")
    rows = page.locator("[data-testid=rule-table] tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.filter(has_text="Odd")).to_contain_text(
        "anomaly(temperature) flagged by its detector for 90 s"
    )
    expect(rows.filter(has_text="Silent")).to_contain_text("no data for 10 min")
    expect(rows.filter(has_text="Jump")).to_contain_text("Δtemperature per 60 s > 2")
    expect(rows.filter(has_text="Thaw")).to_contain_text(
        "forecast(temperature) goes above -15 within 40 min"
    )
    assert "undefined" not in page.inner_text("[data-testid=rule-table]")
    # The editor offers forecast conditions and shows this one's fields.
    rows.filter(has_text="Thaw").click()
    expect(page.locator("[data-testid=rule-condition-type]")).to_have_value("forecast")
    expect(page.locator("[data-testid=rule-forecast-side]")).to_have_value("above")
    expect(page.locator("[data-testid=rule-forecast-line]")).to_have_value("-15")
    page.select_option("[data-testid=rule-forecast-side]", "below")
    expect(page.locator("[data-testid=rule-forecast-line]")).to_have_value("-15")


def test_the_fleet_tree_stays_short_with_many_projects(platform, page):
    """Issue #13: 400 projects drew a 13,398 px tree. Past 30 projects, only the current
    tenant's projects are listed; the others fold open on click or match the filter."""
    with api(platform) as http:
        r = http.post("/tenants", json={"name": "Many Plants", "id": "many"})
        assert r.status_code == 201, r.text
        h = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
        for i in range(32):
            r = http.post(
                "/projects", json={"name": f"Plant {i:02d}", "id": f"plant-{i:02d}"}, headers=h
            )
            assert r.status_code == 201, r.text
        assert (
            http.post("/projects", json={"name": "Head office", "id": "head-office"}).status_code
            == 201
        )
    login(page, platform)
    page.select_option("[data-testid=project-select]", "head-office")
    tree = page.locator("[data-testid=project-tree]")
    many = tree.locator(".tree-group[data-tenant=many]")
    expect(many.locator(".tree-head")).to_contain_text("32")
    expect(many.locator(".tree-item")).to_have_count(0)
    expect(tree.locator(".tree-item", has_text="Head office")).to_have_count(1)
    height = page.evaluate("document.querySelector('[data-testid=project-tree]').scrollHeight")
    assert height < 1500, height
    # Unfold one tenant; or filter across all of them.
    many.locator(".tree-head").click()
    expect(many.locator(".tree-item")).to_have_count(32)
    many.locator(".tree-head").click()
    page.fill("[data-testid=tree-filter]", "plant 07")
    expect(tree.locator(".tree-item")).to_have_count(1)
    tree.locator(".tree-item", has_text="Plant 07").click()
    expect(page.locator("[data-testid=project-select]")).to_have_value("many~plant-07")
    expect(page.locator("[data-testid=device-count]")).to_have_text("0 devices")
    page.fill("[data-testid=tree-filter]", "")
    # The current tenant's projects are listed.
    expect(many.locator(".tree-item")).to_have_count(32)


def test_alarm_console_shows_a_new_alarm_of_the_open_project_without_a_reload(platform, page):
    seeded = enterprise(platform, "fresh", "Fresh Dairy", {"tanks": 2}, hot=False)
    login(page, platform)
    page.select_option("[data-testid=project-select]", "fresh~tanks")
    page.click("[data-testid=nav-lab]")
    page.click("[data-testid=lab-alarms-link]")
    page.select_option("[data-testid=la-enterprise]", "fresh")
    expect(page.locator("[data-testid=la-count]")).to_have_text("0 alarms")
    expect(page.locator("[data-testid=live-state]")).to_have_text("live")
    send(platform, seeded["secrets"], "fresh~tanks-b1", 97.0)
    # The project's live socket says an alarm changed (well before the 15 s re-read).
    row = page.locator("[data-testid=la-table] tbody tr")
    expect(row).to_have_count(1, timeout=8_000)
    expect(row).to_contain_text("fresh~tanks-b1")


def test_usage_is_shown_per_project_and_downloads_as_csv(platform, page, shots):
    """Usage metering (issue #13 item 4): an enterprise's page shows its projects' messages,
    points and API calls over 30 days, with bars per day, and downloads the rows as CSV."""
    enterprise(platform, "mills", "West Mills", {"mill-1": 2, "silo": 1})
    with api(platform) as http:  # the ingest pipeline meters about once a second
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = http.get("/lab/usage", params={"enterprise": "mills"}).json()["days"]
            if sum(d["messages"] for d in got) >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"usage never metered: {got}")
    login(page, platform)
    page.goto(platform.url + "/lab/enterprises/mills")
    # The panel asks for its data only once opened (the page's first view stays at its requests).
    expect(page.locator("[data-testid=lab-usage]")).to_have_count(0)
    page.click("[data-testid=fold-ent-usage-toggle]")
    usage = page.locator("[data-testid=lab-usage]")
    mill = usage.locator("tr[data-usage='mills~mill-1']")
    expect(mill).to_contain_text("Mill 1")
    expect(mill.locator("td").nth(1)).to_have_text("1")  # one message, one point
    expect(usage.locator("tr[data-usage='']")).to_contain_text("API calls of the enterprise")
    expect(usage.locator("[data-testid=lab-usage-bars] .bar")).to_have_count(30)
    shots(page, "lab-usage")
    with page.expect_download() as dl:
        page.click("[data-testid=lab-usage-csv]")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert {r["project"] for r in rows} >= {"mills~mill-1", "mills~silo", ""}
    assert all(r["enterprise"] == "mills" for r in rows)


def test_portfolio_moves_a_project_along_and_downloads_the_quarterly_report(platform, page, shots):
    """The portfolio (issue #13 item 5): the funnel of projects per stage, a stage chosen on the
    enterprise's page (kept on reload, and on the lab home's funnel), the quarterly report."""
    enterprise(platform, "pf", "Port Foods", {"line-1": 1, "cold-store": 1})
    login(page, platform)
    page.goto(platform.url + "/lab/enterprises/pf")
    page.click("[data-testid=fold-ent-portfolio-toggle]")
    panel = page.locator("[data-testid=lab-portfolio]")
    expect(panel.locator("[data-stage=idea] .funnel-n")).to_have_text("2")
    row = panel.locator("tr[data-portfolio='pf~line-1']")
    expect(row.locator("td").nth(3)).to_have_text("1")  # its one alarm this quarter
    page.select_option("[data-testid='stage-pf~line-1']", "pilot")
    expect(panel.locator("[data-stage=pilot] .funnel-n")).to_have_text("1")
    expect(panel.locator("[data-stage=idea] .funnel-n")).to_have_text("1")
    page.reload()  # the fold stays open, and the stage is kept
    expect(page.locator("[data-testid='stage-pf~line-1']")).to_have_value("pilot")
    shots(page, "lab-portfolio")
    with page.expect_download() as dl:
        page.click("[data-testid=lab-report-pdf]")
    assert open(dl.value.path(), "rb").read(4) == b"%PDF"
    with page.expect_download() as dl:
        page.click("[data-testid=lab-report-csv]")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert {(r["project"], r["stage"]) for r in rows} == {
        ("pf~line-1", "pilot"),
        ("pf~cold-store", "idea"),
    }
    # The lab home's funnel counts it among every enterprise's projects.
    page.goto(platform.url + "/lab")
    page.click("[data-testid=fold-lab-portfolio-toggle]")
    home = page.locator("[data-testid=lab-portfolio]")
    expect(home.locator("[data-stage=pilot] .funnel-n")).not_to_have_text("0")


def test_trends_per_hour_and_per_day(platform, page, shots):
    """Trends over 24 h / 7 days (issue #13 item 1): an enterprise's messages and alarms per
    hour, then per day, from one request each."""
    enterprise(platform, "tr", "Trend Dairy", {"vat-1": 2, "chill": 1})  # 2 readings, 2 alarms
    with api(platform) as http:  # the ingest pipeline meters about once a second
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = http.get("/lab/trends", params={"enterprise": "tr"}).json()["total"]
            if sum(got["messages"]) >= 2:
                break
            time.sleep(0.2)
    login(page, platform)
    page.goto(platform.url + "/lab/enterprises/tr")
    page.click("[data-testid=fold-ent-trends-toggle]")
    trends = page.locator("[data-testid=lab-trends]")
    expect(trends.locator("[data-testid=trend-messages] .bar")).to_have_count(24)
    expect(trends.locator("[data-testid=trend-messages-sum]")).to_have_text("2")
    expect(trends.locator("[data-testid=trend-alarms-sum]")).to_have_text("2")
    shots(page, "lab-trends")
    page.click("[data-testid=trend-7d]")
    expect(trends.locator("[data-testid=trend-alarms] .bar")).to_have_count(7)
    expect(trends.locator("[data-testid=trend-alarms-sum]")).to_have_text("2")
