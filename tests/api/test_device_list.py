"""``GET /projects/{p}/devices`` paging for big fleets: ``X-Total-Count``, search, online filter."""

from __future__ import annotations

import time


async def test_pages_search_and_online_filter_with_total(api):
    await api.project("plant")
    for i in range(25):
        await api.device("plant", f"boiler-{i:02d}", name=f"Boiler {i}")
    for i in range(5):
        await api.device("plant", f"pump-{i}", name=f"Feed_pump {i}")
    now = time.time_ns() // 1000
    api.ctx.registry.touch_devices(
        {"boiler-03": now, "pump-1": now, "boiler-04": now - 3_600_000_000}
    )

    r = await api.http.get(
        "/api/v1/projects/plant/devices", params={"limit": 10, "offset": 20}, headers=api.admin
    )
    assert r.status_code == 200
    assert r.headers["x-total-count"] == "30"
    assert [d["id"] for d in r.json()] == [f"boiler-{i:02d}" for i in range(20, 25)] + [
        f"pump-{i}" for i in range(5)
    ]

    r = await api.http.get(
        "/api/v1/projects/plant/devices", params={"q": "PUMP"}, headers=api.admin
    )
    assert r.headers["x-total-count"] == "5" and len(r.json()) == 5
    # LIKE wildcards in the search are literal characters.
    r = await api.http.get("/api/v1/projects/plant/devices", params={"q": "d_p"}, headers=api.admin)
    assert r.headers["x-total-count"] == "5"
    r = await api.http.get("/api/v1/projects/plant/devices", params={"q": "%"}, headers=api.admin)
    assert r.headers["x-total-count"] == "0" and r.json() == []

    r = await api.http.get(
        "/api/v1/projects/plant/devices", params={"status": "online"}, headers=api.admin
    )
    assert sorted(d["id"] for d in r.json()) == ["boiler-03", "pump-1"]
    assert r.headers["x-total-count"] == "2"
    r = await api.http.get(
        "/api/v1/projects/plant/devices",
        params={"status": "offline", "q": "boiler"},
        headers=api.admin,
    )
    assert r.headers["x-total-count"] == "24"
    assert "boiler-04" in [d["id"] for d in r.json()]


async def test_bad_status_and_unknown_project_are_clear_errors(api):
    await api.project("plant")
    r = await api.http.get(
        "/api/v1/projects/plant/devices", params={"status": "sleepy"}, headers=api.admin
    )
    assert r.status_code in (400, 422)
    r = await api.http.get("/api/v1/projects/nope/devices", headers=api.admin)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
