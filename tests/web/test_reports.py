"""The Reports screen in a real Chromium against a real platform: the project's report
definitions are listed, run and downloaded (CSV and PDF, built from the stored readings), sent
through their channel to a local webhook receiver, and deleted."""

from __future__ import annotations

import base64
import csv
import io
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]


def test_reports_listed_run_downloaded_sent_and_deleted(platform, page, shots, webhook, tmp_path):
    url, received = webhook
    now_ms = int(time.time() * 1000)
    with api(platform) as http_:
        assert http_.post("/projects", json={"name": "Reports", "id": "rep"}).status_code == 201
        secret = http_.post("/projects/rep/devices", json={"id": "kiln-1"}).json()["credentials"][
            "secret"
        ]
        # Six hours of 5-minute readings: 20, 21, ... so every hourly bucket has a known min/max.
        readings = [
            {"ts": now_ms - (72 - i) * 300_000, "values": {"temperature": 20 + i % 12}}
            for i in range(72)
        ]
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry",
            json=readings,
            auth=("kiln-1", secret),
            timeout=60,
        )
        assert r.status_code in (200, 201, 202), r.text
        assert (
            http_.put(
                "/projects/rep/channels/ops", json={"type": "webhook", "config": {"url": url}}
            ).status_code
            == 200
        )
        base = {
            "cron": "0 7 * * *",
            "timezone": "Europe/Paris",
            "period": "6h",
            "bucket": "1h",
            "series": [{"device": "kiln-1", "metric": "temperature"}],
            "channels": ["ops"],
        }
        for rid, name, fmt in (
            ("daily-csv", "Kiln daily (CSV)", "csv"),
            ("daily-pdf", "Kiln daily (PDF)", "pdf"),
        ):
            r = http_.put(
                f"/projects/rep/reports/{rid}", json={**base, "name": name, "format": fmt}
            )
            assert r.status_code == 200, r.text
        # Wait until the readings are stored (ingest acknowledges before the flush is visible).
        deadline = time.time() + 30
        while not http_.get("/projects/rep/latest").json():
            assert time.time() < deadline
            time.sleep(0.1)

    login(page, platform)
    page.select_option("[data-testid=project-select]", "rep")
    page.click("[data-testid=nav-reports]")
    table = page.locator("[data-testid=report-table]")
    csv_row = table.locator("tr[data-report=daily-csv]")
    expect(csv_row).to_contain_text("Kiln daily (CSV)")
    expect(csv_row).to_contain_text("0 7 * * *")
    expect(csv_row).to_contain_text("Europe/Paris")
    expect(csv_row).to_contain_text("last 6 h, 60 min buckets")
    expect(csv_row).to_contain_text("1 series (min, avg, max)")
    expect(table.locator("tr[data-report=daily-pdf]")).to_contain_text("PDF")
    shots(page, "reports")

    # Run & download: the file the browser saves is the report built from the stored readings.
    with page.expect_download() as got:
        csv_row.locator("[data-testid=report-download]").click()
    dl = got.value
    assert dl.suggested_filename.startswith("rep-daily-csv-") and dl.suggested_filename.endswith(
        "-series.csv"
    )
    dl.save_as(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert (
        rows
        and {r["device"] for r in rows} == {"kiln-1"}
        and {r["metric"] for r in rows} == {"temperature"}
    )
    assert min(float(r["min"]) for r in rows) == 20 and max(float(r["max"]) for r in rows) == 31
    expect(page.locator("[data-testid=report-result]")).to_contain_text(dl.suggested_filename)

    with page.expect_download() as got:
        table.locator("tr[data-report=daily-pdf] [data-testid=report-download]").click()
    pdf = got.value
    assert pdf.suggested_filename.endswith(".pdf")
    pdf.save_as(tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")

    # Send now: through the report's channel, as the schedule would.
    csv_row.locator("[data-testid=report-send]").click()
    expect(page.locator("[data-testid=report-result]")).to_contain_text("to ops")
    deadline = time.time() + 30
    while not any(n.get("event") == "report" for n in received):
        assert time.time() < deadline, received
        time.sleep(0.05)
    note = next(n for n in received if n["event"] == "report")
    files = {a["filename"]: base64.b64decode(a["content_base64"]) for a in note["attachments"]}
    assert any(
        name.endswith("-series.csv") and b"kiln-1,temperature" in body
        for name, body in files.items()
    )

    # A new report through the form; the server's reason for a bad schedule is shown as is.
    page.click("[data-testid=report-new]")
    form = page.locator("[data-testid=report-form]")
    page.fill("[data-testid=rf-name]", "Kiln hourly")
    page.fill("[data-testid=rf-cron]", "every hour")
    page.fill("[data-testid=rf-period]", "2h")
    page.fill("[data-testid=rf-bucket]", "15m")
    form.locator("[data-series='kiln-1/temperature']").check()
    form.locator("[data-channel=ops]").check()
    page.click("[data-testid=rf-save]")
    expect(page.locator("[data-testid=rf-error]")).to_contain_text("not a cron expression")
    page.fill("[data-testid=rf-cron]", "0 * * * *")
    page.click("[data-testid=rf-save]")
    hourly = table.locator("tr[data-report=kiln-hourly]")
    expect(hourly).to_contain_text("last 2 h, 15 min buckets")
    # The schedule in words, the cron as written beside it (#13's walk: raw cron text).
    expect(hourly.locator("[data-testid=report-schedule]")).to_have_text("every hour")
    expect(hourly).to_contain_text("0 * * * *")
    with api(platform) as http_:
        spec = http_.get("/projects/rep/reports").json()
        spec = next(r for r in spec if r["id"] == "kiln-hourly")
        assert spec["series"] == [{"device": "kiln-1", "metric": "temperature"}] and spec[
            "channels"
        ] == ["ops"]
        assert spec["cron"] == "0 * * * *" and spec["period"] == 7200 and spec["bucket"] == 900
    # Editing keeps the id and replaces the definition.
    hourly.locator("[data-testid=report-edit]").click()
    expect(page.locator("[data-testid=rf-period]")).to_have_value("2h")
    page.select_option("[data-testid=rf-format]", "pdf")
    page.click("[data-testid=rf-save]")
    expect(hourly.locator(".tag")).to_have_text("PDF")

    # Delete asks first.
    page.once("dialog", lambda d: d.accept())
    table.locator("tr[data-report=daily-pdf] [data-testid=report-delete]").click()
    expect(table.locator("tr[data-report=daily-pdf]")).to_have_count(0)
    with api(platform) as http_:
        assert sorted(r["id"] for r in http_.get("/projects/rep/reports").json()) == [
            "daily-csv",
            "kiln-hourly",
        ]


def test_a_viewer_sees_reports_without_run_buttons(platform, page):
    from tests.web.test_access import login_as

    with api(platform) as http_:
        http_.post("/projects", json={"name": "Reports", "id": "rep"})
        http_.put(
            "/projects/rep/channels/ops",
            json={"type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
        )
        r = http_.put(
            "/projects/rep/reports/alarms-only",
            json={"name": "Alarms only", "cron": "0 * * * *", "channels": ["ops"]},
        )
        assert r.status_code == 200, r.text
        r = http_.post(
            "/users", json={"username": "vera", "password": "viewer-password", "role": "viewer"}
        )
        assert r.status_code == 201, r.text
    login_as(page, platform, "vera", "viewer-password")
    page.select_option("[data-testid=project-select]", "rep")
    page.click("[data-testid=nav-reports]")
    row = page.locator("tr[data-report=alarms-only]")
    expect(row).to_contain_text("alarms of the period")
    expect(page.locator("text=Running reports needs the operator role")).to_be_visible()
    expect(row.locator("button")).to_have_count(0)
    expect(page.locator("[data-testid=report-new]")).to_have_count(0)


def test_a_report_without_a_channel_and_a_series_picker_that_filters(platform, page):
    """#13's walk: a report could not be made without a notification channel, and the series
    picker was 122 unsearchable checkboxes. A report without channels is kept for downloading;
    the picker filters (every word) and picks all that match."""
    with api(platform) as http_:
        assert http_.post("/projects", json={"name": "Many", "id": "many"}).status_code == 201
        for i in range(40):
            r = http_.post("/projects/many/devices", json={"id": f"oven-{i:02d}"})
            secret = r.json()["credentials"]["secret"]
            r = httpx.post(
                f"{platform.url}/api/v1/ingest/telemetry",
                auth=(f"oven-{i:02d}", secret),
                json={"values": {"temperature": 20.0 + i, "power": 1.0, "door": 0}},
            )
            assert r.status_code == 200, r.text
        # Their series, anomaly scores included (the detection service scores them as they come:
        # read until two reads a second apart agree).
        every: list[str] = []
        for _ in range(30):
            got = [
                f"{x['device']}/{x['metric']}" for x in http_.get("/projects/many/latest").json()
            ]
            if got == every:
                break
            every = got
            time.sleep(1)
    assert len(every) >= 120
    matching = sorted(x for x in every if x.startswith("oven-1") and "temp" in x)
    assert len(matching) >= 10  # oven-10 … oven-19's temperature (and scores)
    login(page, platform)
    page.select_option("[data-testid=project-select]", "many")
    page.click("[data-testid=nav-reports]")
    page.click("[data-testid=report-new]")
    form = page.locator("[data-testid=report-form]")
    count = page.locator("[data-testid=rf-series-count]")
    expect(count).to_contain_text(f"0 of {len(every)} picked")
    page.fill("[data-testid=rf-series-filter]", "oven-1 temp")
    expect(form.locator("[data-series]")).to_have_count(len(matching))
    shown = form.locator("[data-series]").evaluate_all("es => es.map(e => e.dataset.series)")
    assert sorted(shown) == matching
    page.click("[data-testid=rf-series-all]")
    expect(count).to_contain_text(f"{len(matching)} of {len(every)} picked")
    page.fill("[data-testid=rf-name]", "Oven temperatures")
    page.click("[data-testid=rf-save]")
    row = page.locator("tr[data-report=oven-temperatures]")
    expect(row).to_contain_text("download only")
    expect(row.locator("[data-testid=report-send]")).to_have_count(0)
    with page.expect_download() as got:
        row.locator("[data-testid=report-download]").click()
    assert got.value.suggested_filename.endswith(".csv")
    with api(platform) as http_:
        (spec,) = http_.get("/projects/many/reports").json()
        assert spec["id"] == "oven-temperatures" and spec["channels"] == []
        assert sorted(f"{x['device']}/{x['metric']}" for x in spec["series"]) == matching
        r = http_.post("/projects/many/reports/oven-temperatures/run")
        assert r.status_code == 400 and "no channel" in r.json()["message"]
