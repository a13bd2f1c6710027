"""The Models screen in a real Chromium against a real platform: the project's registry lists
RUL versions and the detector the platform fitted itself; an operator activates a version (the
one active before is retired, both shown in the history) and reads the model card."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_console import api, login

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]

CARD = {"model": "lightgbm-gbdt", "validation": {"rmse": 12.4, "mae": 8.9}}


def test_models_listed_activated_with_history_and_card(platform, page, shots):
    with api(platform) as http:
        assert http.post("/projects", json={"name": "Models", "id": "mdl"}).status_code == 201
        ids = []
        for rmse in (13.1, 12.4):
            r = http.post(
                "/projects/mdl/models",
                json={
                    "kind": "rul",
                    "device_type": "motor",
                    "algorithm": "lightgbm-gbdt",
                    "code_version": "0.test",
                    "metrics": {"rmse": rmse},
                    "rows": 20631,
                    "card": {**CARD, "validation": {"rmse": rmse}},
                },
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            assert http.post(f"/projects/mdl/models/{ids[-1]}/approve").status_code == 200
        assert http.post(f"/projects/mdl/models/{ids[0]}/activate").status_code == 200
        # A device's readings: the platform fits its detector and files it, already active.
        secret = http.post("/projects/mdl/devices", json={"id": "motor-1"}).json()["credentials"][
            "secret"
        ]
        now_ms = int(time.time() * 1000)
        readings = [
            {"ts": now_ms - (60 - i) * 1000, "values": {"vibration": 1.0 + (i % 5) * 0.01}}
            for i in range(60)
        ]
        r = httpx.post(
            f"{platform.url}/api/v1/ingest/telemetry",
            json=readings,
            auth=("motor-1", secret),
            timeout=60,
        )
        assert r.status_code in (200, 201, 202), r.text
        deadline = time.time() + 120
        while not http.get("/projects/mdl/models", params={"kind": "detector"}).json():
            assert time.time() < deadline, "the platform filed no detector model"
            time.sleep(0.2)

    login(page, platform)
    page.select_option("[data-testid=project-select]", "mdl")
    page.click("[data-testid=nav-models]")
    table = page.locator("[data-testid=models-table]")
    expect(table.locator(f"tr[data-model={ids[0]}]")).to_contain_text("active")
    expect(table.locator(f"tr[data-model={ids[1]}]")).to_contain_text("approved")
    expect(table.locator(f"tr[data-model={ids[1]}]")).to_contain_text("rmse 12.4")
    detector = table.locator("tr", has_text="series:motor-1/vibration")
    expect(detector).to_contain_text("active")
    expect(detector).to_contain_text("system")

    page.click(f"tr[data-model={ids[1]}]")
    detail = page.locator("[data-testid=model-detail]")
    expect(detail).to_contain_text("rul type:motor v2")
    page.once("dialog", lambda d: d.accept("better RMSE on the bench"))
    detail.locator("[data-testid=model-activate]").click()
    history = detail.locator("[data-testid=model-versions]")
    expect(history.locator("tr[data-version='2']")).to_contain_text("active")
    expect(history.locator("tr[data-version='1']")).to_contain_text("retired")
    expect(table.locator(f"tr[data-model={ids[0]}]")).to_contain_text("retired")
    expect(detail.locator("[data-testid=model-rollback]")).to_be_visible()
    detail.locator("[data-testid=model-card]").click()
    expect(detail.locator("[data-testid=model-card-text]")).to_contain_text(
        "# Model card: rul `type:motor` v2"
    )
    shots(page, "models")
    with api(platform) as http:
        log = http.get("/audit", params={"target": f"model:{ids[1]}"}).json()
        activate = next(e for e in log if e["action"] == "model.activate")
        assert activate["detail"]["comment"] == "better RMSE on the bench"
        assert activate["detail"]["retired"] == [ids[0]]
