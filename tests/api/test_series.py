import numpy as np
import pytest

from atoll.core.points import PointBatch, SeriesKey

V1 = "/api/v1"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


@pytest.fixture
async def data(api):
    await api.project()
    await api.device(device_id="s1")
    await api.device(device_id="s2")
    ts = T0 + np.arange(3600, dtype=np.int64) * 1_000_000  # one hour at 1 Hz
    api.ctx.store.append(
        PointBatch.of_series(SeriesKey("lab", "s1", "temp"), ts, np.arange(3600) % 60)
    )
    api.ctx.store.append(
        PointBatch.of_series(SeriesKey("lab", "s2", "temp"), ts[:10], np.full(10, 7.0))
    )
    return api


def q(**params):
    return {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", **params}


async def test_raw(data):
    r = await data.http.get(
        f"{V1}/devices/s1/series/temp", params=q(mode="raw", limit=5), headers=data.admin
    )
    body = r.json()
    assert r.status_code == 200 and body["mode"] == "raw"
    assert body["ts"] == [1767225600000 + i * 1000 for i in range(5)] and body["value"] == [
        0,
        1,
        2,
        3,
        4,
    ]


async def test_buckets(data):
    r = await data.http.get(
        f"{V1}/devices/s1/series/temp",
        headers=data.admin,
        params=q(mode="buckets", bucket="10m", aggs="min,max,avg,count"),
    )
    body = r.json()
    assert r.status_code == 200, r.text
    assert len(body["ts"]) == 6 and body["bucket_ms"] == 600_000
    assert body["aggregates"]["count"] == [600] * 6
    assert body["aggregates"]["min"][0] == 0 and body["aggregates"]["max"][0] == 59
    assert body["aggregates"]["avg"][0] == pytest.approx(29.5)
    r = await data.http.get(
        f"{V1}/devices/s1/series/temp", headers=data.admin, params=q(mode="buckets", aggs="median")
    )
    assert r.status_code == 400 and "median" in r.json()["message"]
    r = await data.http.get(
        f"{V1}/devices/s1/series/temp", headers=data.admin, params=q(mode="buckets", bucket="1us")
    )
    assert r.status_code == 400 and "bucket" in r.json()["hint"]


async def test_chart_keeps_extremes(data):
    r = await data.http.get(
        f"{V1}/devices/s1/series/temp", params=q(mode="chart", width=20), headers=data.admin
    )
    body = r.json()
    assert r.status_code == 200
    assert 2 <= len(body["ts"]) <= 2 * 20 + 4
    assert min(body["value"]) == 0 and max(body["value"]) == 59
    assert body["ts"] == sorted(body["ts"])


async def test_latest_and_series_list(data):
    r = await data.http.get(f"{V1}/projects/lab/latest", headers=data.admin)
    rows = {(x["device"], x["metric"]): x for x in r.json()}
    assert rows[("s1", "temp")]["value"] == 3599 % 60 and rows[("s2", "temp")]["value"] == 7.0
    r = await data.http.get(
        f"{V1}/projects/lab/latest", params={"device": "s2"}, headers=data.admin
    )
    assert [x["device"] for x in r.json()] == ["s2"]
    r = await data.http.get(f"{V1}/devices/s1/series", headers=data.admin)
    assert [s["metric"] for s in r.json()] == ["temp"] and r.json()[0]["last_ts"] == (
        T0 // 1000
    ) + 3599_000


async def test_bad_query_parameters(data):
    for params, word in [
        ({"start": "yesterday"}, "time"),
        ({"start": "now", "end": "-1h"}, "before"),
        ({"mode": "pie"}, "mode"),
        ({"width": 0}, "width"),
    ]:
        r = await data.http.get(f"{V1}/devices/s1/series/temp", params=params, headers=data.admin)
        assert r.status_code in (400, 422), (params, r.text)
        assert word in r.json()["message"], (params, r.json())
    r = await data.http.get(
        f"{V1}/devices/s1/series/nothing", params=q(mode="raw"), headers=data.admin
    )
    assert r.status_code == 200 and r.json()["ts"] == []
