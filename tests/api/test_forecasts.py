"""``GET /devices/{d}/series/{m}/forecast`` over the real API: the forecast, its crossing,
roles and tenants, and 4xx for what cannot be forecast."""

from __future__ import annotations

import time

import numpy as np

from atoll.core.points import PointBatch, SeriesKey
from tests.api.conftest import Api

V1 = "/api/v1"
MIN = 60_000_000


async def _freezer(api: Api) -> int:
    """Two days of a freezer at -20 °C, warming 3 °C an hour for its last 40 minutes."""
    await api.project()
    await api.device(device_id="f1")
    now = time.time_ns() // 1000
    ts = np.arange(now - 2 * 86_400_000_000, now, MIN, dtype=np.int64)
    warm = np.clip((ts - (now - 40 * MIN)) / 3_600e6, 0.0, None) * 3.0
    rng = np.random.default_rng(1)
    api.ctx.store.append(
        PointBatch.of_series(
            SeriesKey("lab", "f1", "temperature"), ts, -20.0 + warm + rng.normal(0, 0.05, len(ts))
        )
    )
    return now


async def test_forecast_with_a_crossing(api: Api):
    now = await _freezer(api)
    viewer = await api.key("viewer")
    r = await api.http.get(
        f"{V1}/devices/f1/series/temperature/forecast",
        params={"horizon": "4h", "threshold": -15, "level": 0.9, "model": "autoets"},
        headers=api.auth(viewer),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "autoets" and body["level"] == 0.9 and body["step_ms"] == 120_000
    assert len(body["ts"]) == len(body["mean"]) == len(body["lo"]) == len(body["hi"]) == 120
    assert body["ts"][0] > body["history_end"] and body["history_end"] <= now / 1000
    assert all(
        lo <= m <= hi for lo, m, hi in zip(body["lo"], body["mean"], body["hi"], strict=True)
    )
    c = body["crossing"]
    assert c["direction"] == "above" and c["threshold"] == -15.0
    # -18 now, warming 3 °C an hour: about an hour to go.
    assert c["ts"] is not None and 20 * 60 <= c["in_s"] <= 3 * 3600, c
    assert c["earliest"] <= c["ts"]


async def test_forecast_errors_are_4xx_with_a_reason(api: Api):
    await _freezer(api)
    url = f"{V1}/devices/f1/series/temperature/forecast"
    for params, status, words in (
        ({"horizon": "soon"}, 400, ""),
        ({"horizon": "400d"}, 400, "at most a year"),
        ({"horizon": "1h", "step": "1s"}, 400, "at least 1 minute"),
        ({"direction": "above"}, 400, "needs a threshold"),
        ({"level": 2}, 422, ""),
        ({"model": "prophet"}, 422, ""),
    ):
        r = await api.http.get(url, params=params, headers=api.admin)
        assert r.status_code == status, (params, r.text)
        assert words in r.text
    r = await api.http.get(f"{V1}/devices/f1/series/pressure/forecast", headers=api.admin)
    assert r.status_code == 404 and "no data" in r.text
    r = await api.http.get(f"{V1}/devices/nope/series/temperature/forecast", headers=api.admin)
    assert r.status_code == 404


async def test_another_tenant_cannot_forecast_our_series(api: Api):
    await _freezer(api)
    r = await api.http.post(f"{V1}/tenants", json={"name": "Acme", "id": "acme"}, headers=api.admin)
    acme = r.json()["admin_key"]["token"]
    r = await api.http.get(f"{V1}/devices/f1/series/temperature/forecast", headers=api.auth(acme))
    assert r.status_code == 404
    r = await api.http.get(f"{V1}/devices/f1/series/temperature/forecast")
    assert r.status_code == 401
