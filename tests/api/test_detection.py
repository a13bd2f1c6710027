"""A device's detection routes over the real API, registry, ingest pipeline and detection service:
what judges each series, refit on demand, accept as new normal; roles, 404, 422 and the audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest

from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.service import DetectionService
from tests.api.conftest import Api

V1 = "/api/v1"
S = 1_000_000
HISTORY = 3000


def _signal(start: int, n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(start, start + n)
    return 20 + 2 * np.sin(2 * np.pi * t / 60) + np.random.default_rng(seed).normal(0, 0.05, n)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def lab(api: Api):
    """Project ``lab``, device ``s1`` (type ``thermo``) with an hour of stored history, and the
    detection service on the same bus and store as ingest. Yields ``(api, svc, secret, t0)``."""
    ctx = api.ctx
    svc = DetectionService(ctx.bus, ctx.store, registry=ctx.registry, group=None, refit_interval=0)
    await svc.start()
    ctx.detection = svc
    await api.project()
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={"id": "thermo", "metrics": [{"name": "temperature"}, {"name": "load"}]},
    )
    assert r.status_code == 201, r.text
    device, secret = await api.device(device_type="thermo")
    now_s = int(datetime.now(UTC).timestamp())
    t0 = (now_s - 2 * 3600) * S
    ts = t0 + np.arange(HISTORY, dtype=np.int64) * S
    ctx.store.append(
        PointBatch.of_series(SeriesKey("lab", device, "temperature"), ts, _signal(0, HISTORY))
    )
    yield api, svc, (device, secret), t0
    await svc.stop()


async def _send(api: Api, dev, t0: int, start: int, values) -> None:
    """Readings through HTTP ingest (stored, then published to the detection service)."""
    for lo in range(0, len(values), 100):
        body = [
            {"ts": (t0 + (start + lo + i) * S) // 1000, "values": {"temperature": float(v)}}
            for i, v in enumerate(values[lo : lo + 100])
        ]
        r = await api.http.post(f"{V1}/ingest/telemetry", auth=dev, json=body)
        assert r.status_code == 200, r.text


async def _judged(svc: DetectionService, n: int) -> None:
    for _ in range(6000):
        if svc.stats["points"] >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the detection service judged {svc.stats['points']} of {n}")


async def test_a_device_detection_shows_the_fitted_model_and_its_condition(lab):
    api, svc, dev, t0 = lab
    live = _signal(HISTORY, 600, seed=1)
    live[400:] += 6.0  # a new level from reading 400 on
    await _send(api, dev, t0, HISTORY, live)
    await _judged(svc, 600)

    viewer = await api.key("viewer")
    r = await api.http.get(f"{V1}/projects/lab/devices/s1/detection", headers=api.auth(viewer))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["project"] == "lab" and doc["device"] == "s1"
    (s,) = doc["series"]
    assert (s["metric"], s["detector"], s["chosen"], s["fitting"]) == (
        "temperature",
        "fitted",
        "default",
        False,
    )
    model = s["model"]
    assert (model["version"], model["reason"], model["detector"], model["rows"]) == (
        1,
        "bound",
        "fitted",
        HISTORY,
    )
    assert model["id"] == "lab/s1/temperature@1" and model["metric"] == "temperature"
    assert model["history_from"] == _iso(t0) and model["fitted_at"].endswith("Z")
    assert set(model["thresholds"]["thresholds"]) == {"nn", "ar", "band"}
    assert s["condition"] == {"flagged": True, "since": _iso(t0 + (HISTORY + 400) * S)}


async def test_accept_as_new_normal_clears_the_flag_and_is_audited(lab):
    api, svc, dev, t0 = lab
    live = _signal(HISTORY, 600, seed=2)
    live[400:] += 6.0
    await _send(api, dev, t0, HISTORY, live)
    await _judged(svc, 600)
    url = f"{V1}/projects/lab/devices/s1/detection/accept"
    body = {
        "metric": "temperature",
        "from": _iso(t0 + (HISTORY + 400) * S),
        "to": (t0 + (HISTORY + 600) * S) // 1000,  # epoch ms, like every API time
        "comment": "pump re-set to the new set point",
    }

    viewer = await api.key("viewer")
    assert (await api.http.post(url, json=body, headers=api.auth(viewer))).status_code == 403
    operator = await api.key("operator")
    r = await api.http.post(url, json=body, headers=api.auth(operator))
    assert r.status_code == 200, r.text
    record = r.json()
    assert (record["reason"], record["version"], record["rows"]) == ("accept", 2, 200)
    assert record["accepted_from"] == body["from"] and "operator" in record["actor"]

    r = await api.http.get(f"{V1}/projects/lab/devices/s1/detection", headers=api.admin)
    (s,) = r.json()["series"]
    assert s["condition"] == {"flagged": False, "since": None} and s["model"]["version"] == 2

    (entry,) = (
        await api.http.get(f"{V1}/audit", params={"action": "detection.accept"}, headers=api.admin)
    ).json()
    assert entry["target"] == "device:s1" and "operator" in entry["actor"]
    assert entry["detail"] == {
        "project": "lab",
        "metric": "temperature",
        "from": body["from"],
        "to": _iso(t0 + (HISTORY + 600) * S),
        "model": "lab/s1/temperature@2",
        "version": 2,
        "rows": 200,
        "comment": "pump re-set to the new set point",
    }


async def test_unknown_device_or_metric_is_404_and_a_bad_range_422(lab):
    api, svc, dev, t0 = lab
    await _send(api, dev, t0, HISTORY, _signal(HISTORY, 50))
    await _judged(svc, 50)
    accept = f"{V1}/projects/lab/devices/s1/detection/accept"
    good = {"metric": "temperature", "from": _iso(t0), "to": "now"}
    cases = [
        ("GET", f"{V1}/projects/lab/devices/nope/detection", None, 404),
        ("GET", f"{V1}/projects/other/devices/s1/detection", None, 404),
        ("POST", f"{V1}/projects/lab/devices/nope/detection/refit", {}, 404),
        ("POST", accept, {**good, "metric": "humidity"}, 404),
        ("POST", f"{V1}/projects/lab/devices/s1/detection/refit", {"metric": "humidity"}, 404),
        ("POST", accept, {**good, "from": "now", "to": "-1h"}, 422),  # empty range
        ("POST", accept, {**good, "from": "yesterday"}, 422),  # not a time
        ("POST", accept, {**good, "from": "1970-01-01T00:00:00Z", "to": 1000}, 422),  # no readings
        ("POST", accept, {"metric": "temperature"}, 422),  # no range
        ("POST", accept, {**good, "to": "9999999999999999"}, 422),  # beyond any reading
    ]
    for method, url, body, status in cases:
        r = await api.http.request(method, url, json=body, headers=api.admin)
        assert r.status_code == status, (url, body, r.text)
        assert r.json()["error"] in ("not_found", "invalid_input")
    r = await api.http.post(accept, json={**good, "from": "now", "to": "-1h"}, headers=api.admin)
    assert "empty" in r.json()["message"]


async def test_refit_on_demand_makes_a_new_version_and_is_audited(lab):
    api, svc, dev, t0 = lab
    live = _signal(HISTORY, 600, seed=3)
    live[300:400] += 6.0  # a fault, over by reading 400
    await _send(api, dev, t0, HISTORY, live)
    await _judged(svc, 600)
    url = f"{V1}/projects/lab/devices/s1/detection/refit"
    viewer = await api.key("viewer")
    assert (await api.http.post(url, headers=api.auth(viewer))).status_code == 403

    r = await api.http.post(url, headers=api.admin)  # no body: every series of the device
    assert r.status_code == 200, r.text
    (model,) = r.json()["refitted"]
    assert r.json()["skipped"] == []
    assert (model["version"], model["reason"]) == (2, "manual")
    assert model["excluded"] >= 100 and model["rows"] + model["excluded"] == HISTORY + 600

    r = await api.http.post(url, json={"metric": "temperature"}, headers=api.admin)
    assert r.status_code == 200 and r.json()["refitted"][0]["version"] == 3
    entries = (
        await api.http.get(f"{V1}/audit", params={"action": "detection.refit"}, headers=api.admin)
    ).json()
    assert [e["detail"]["models"] for e in entries] == [
        ["lab/s1/temperature@3"],
        ["lab/s1/temperature@2"],
    ]


async def test_without_the_detection_service_the_routes_say_why(api):
    await api.project()
    await api.device()
    r = await api.http.get(f"{V1}/projects/lab/devices/s1/detection", headers=api.admin)
    assert r.status_code == 503 and "detection service" in r.json()["message"]


async def test_a_device_type_keeps_its_detector_bindings_and_its_series_follow_them(lab):
    """Bindings set through the API are kept by the registry and used by the detection service:
    a series already judged starts again with the newly bound detector and episode decision."""
    api, svc, dev, t0 = lab
    await _send(api, dev, t0, HISTORY, _signal(HISTORY, 50, seed=2))
    await _judged(svc, 50)
    key = SeriesKey("lab", dev[0], "temperature")
    assert svc.series[key].episodes is None  # the default, reading by reading

    url = f"{V1}/projects/lab/device-types/thermo"
    binding = {"detector": "ewma", "metrics": ["temperature"], "decision": {"z": 4}}
    r = await api.http.patch(url, headers=api.admin, json={"detectors": [binding]})
    assert r.status_code == 200, r.text
    got = r.json()["detectors"]
    assert got == [{**binding, "params": {}, "jointly": False, "threshold": None, "fleet": None}]
    assert (await api.http.get(url, headers=api.admin)).json()["detectors"] == got
    assert key not in svc.series  # started again with the new binding

    await _send(api, dev, t0, HISTORY + 50, _signal(HISTORY + 50, 20, seed=3))
    await _judged(svc, 70)
    t = svc.series[key]
    assert t.name == "ewma" and t.episodes is not None and t.episodes.z == 4

    r = await api.http.patch(url, headers=api.admin, json={"detectors": []})
    assert r.status_code == 200 and r.json()["detectors"] == []
    assert key not in svc.series


@pytest.mark.parametrize(
    ("binding", "reason"),
    [
        ({"detector": "no-such-detector"}, "no-such-detector"),
        ({"metrics": ["temperature"], "decision": {"zz": 1}}, "unknown episode decision"),
        ({"metrics": ["humidity"]}, "undeclared metric"),
        ({"metrics": ["temperature"], "jointly": True}, "at least two metrics"),
        ({"metrics": ["temperature"], "threshold": 2}, "threshold"),
        ({"metrics": ["temperature"], "colour": "red"}, "colour"),
        ({"metrics": ["temperature"], "fleet": {"limit": -1}}, "limit"),
        ({"metrics": ["temperature", "load"], "jointly": True, "fleet": {}}, "one by one"),
    ],
)
async def test_a_bad_detector_binding_is_refused_with_the_reason(lab, binding, reason):
    api, *_ = lab
    url = f"{V1}/projects/lab/device-types/thermo"
    r = await api.http.patch(url, headers=api.admin, json={"detectors": [binding]})
    assert r.status_code in (400, 422), r.text  # 400: the service's check; 422: the schema's
    assert reason in r.text
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={"id": "other", "metrics": [{"name": "temperature"}], "detectors": [binding]},
    )
    assert r.status_code in (400, 422) and reason in r.text
    assert (await api.http.get(url, headers=api.admin)).json()["detectors"] == []


async def test_only_operators_bind_detectors(lab):
    api, *_ = lab
    viewer = await api.key("viewer")
    r = await api.http.patch(
        f"{V1}/projects/lab/device-types/thermo",
        headers=api.auth(viewer),
        json={"detectors": [{"metrics": ["temperature"]}]},
    )
    assert r.status_code == 403
