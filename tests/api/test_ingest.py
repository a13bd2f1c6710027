"""Device-facing HTTP ingest: every bad input of issue 2
part 7 that HTTP can see gets a 4xx with the reason."""

import time

import pytest

from tests.api.conftest import MAX_BODY

V1 = "/api/v1"
URL = f"{V1}/ingest/telemetry"


@pytest.fixture
async def dev(api):
    await api.project()
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={
            "id": "thermo",
            "metrics": [
                {"name": "temperature", "min": -40, "max": 85},
                {"name": "count", "type": "int"},
                {"name": "on", "type": "bool"},
            ],
        },
    )
    assert r.status_code == 201
    return await api.device(device_type="thermo")


async def _raw(api, start="-30d", end="now+0s"):
    r = await api.http.get(
        f"{V1}/devices/s1/series/temperature",
        headers=api.admin,
        params={"mode": "raw", "start": start, "end": "2100-01-01T00:00:00Z"},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_accepts_one_reading_and_batches(api, dev):
    r = await api.http.post(
        URL, auth=dev, json={"ts": "2026-01-01T00:00:00Z", "values": {"temperature": 21.5}}
    )
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    now_ms = time.time() * 1000
    batch = [
        {"ts": int(now_ms) - 2000 + i, "values": {"temperature": 20 + i, "on": True, "count": 3}}
        for i in range(3)
    ]
    r = await api.http.post(URL, auth=dev, json=batch)
    assert r.status_code == 200 and r.json() == {"accepted": 9}
    r = await api.http.post(URL, auth=dev, json={"values": {"temperature": 30}})  # server time
    assert r.status_code == 200
    data = await _raw(api, start="2025-12-31T00:00:00Z")
    assert data["value"] == [21.5, 20, 21, 22, 30]
    assert data["ts"][0] == 1767225600000


BAD = [
    (b'{"values": {"temperature": 21.5}', 400, "malformed_json"),
    (b"not json at all", 400, "malformed_json"),
    (b'{"values": {"temperature": "hot"}}', 400, "wrong_type"),
    (b'{"values": {"count": 1.5}}', 400, "wrong_type"),
    (b'{"values": {"on": 3}}', 400, "wrong_type"),
    (b'{"values": 5}', 400, None),
    (b'{"values": {"temperature": NaN}}', 400, None),
    (b'{"values": {"temperature": Infinity}}', 400, None),
    (b'{"values": {"temperature": 1e999}}', 400, "not_finite"),
    (b'{"values": {"humidity": 50}}', 400, "unknown_series"),
    (b'{"ts": "2999-01-01T00:00:00Z", "values": {"temperature": 1}}', 400, "future_timestamp"),
    (b'{"ts": "yesterday", "values": {"temperature": 1}}', 400, None),
    (b"[]", 400, None),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD)
async def test_bad_telemetry_is_refused_with_reason(api, dev, body, status, reason):
    r = await api.http.post(
        URL, auth=dev, content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error"] in ("invalid_input", "payload_too_large") and err["message"]
    await api.ctx.ingest.flush_counters()
    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert sum(x["count"] for x in rej if x["transport"] == "http") == 1
    if reason:
        assert [x["reason"] for x in rej] == [reason]
    # Nothing of a refused message is stored.
    assert (await _raw(api))["value"] == []


async def test_one_bad_reading_refuses_the_whole_batch(api, dev):
    body = [{"values": {"temperature": 1}}, {"values": {"temperature": "x"}}]
    r = await api.http.post(URL, auth=dev, json=body)
    assert r.status_code == 400 and "temperature" in r.json()["message"]
    assert (await _raw(api))["value"] == []


async def test_oversize_payload_is_413(api, dev):
    readings = [{"ts": 1767225600000 + i, "values": {"temperature": 1.0}} for i in range(3000)]
    r = await api.http.post(URL, auth=dev, json=readings)
    assert len(r.request.content) > MAX_BODY
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


async def test_unknown_device_bad_and_revoked_token(api, dev):
    device, secret = dev
    body = {"values": {"temperature": 1}}
    r = await api.http.post(URL, json=body)
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"] and r.json()["hint"]
    assert (await api.http.post(URL, auth=("ghost", secret), json=body)).status_code == 401
    assert (await api.http.post(URL, auth=(device, "wrong"), json=body)).status_code == 401
    r = await api.http.post(URL, json=body, headers={"Authorization": "Basic !!!notbase64"})
    assert r.status_code == 401
    r = await api.http.post(URL, json=body, headers={"Authorization": f"Bearer {api.admin_key}"})
    assert r.status_code == 401
    await api.http.delete(f"{V1}/devices/{device}/credentials", headers=api.admin)
    r = await api.http.post(URL, auth=dev, json=body)
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert (await _raw(api))["value"] == []


async def test_out_of_range_is_stored_and_flagged(api, dev):
    r = await api.http.post(URL, auth=dev, json={"values": {"temperature": 500}})
    assert r.status_code == 200
    await api.ctx.ingest.flush_counters()
    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert [x["reason"] for x in rej] == ["out_of_range_accepted"]
    assert (await _raw(api))["value"] == [500]


DIGITS_401 = b"1" * 401
# Issue 9 item 6 and 8: values that once answered 500 (or were stored though the contract
# refuses them). Each is refused with 400 and its reason, in the body and in the counters.
HOSTILE = [
    (b'{"ts": 1e308, "values": {"temperature": 1}}', "future_timestamp"),
    (b'{"ts": ' + DIGITS_401 + b', "values": {"temperature": 1}}', "future_timestamp"),
    (b'[{"ts": 1e308, "values": {"temperature": 1}}]', "future_timestamp"),
    (b'{"values": {"temperature": ' + DIGITS_401 + b"}}", "not_finite"),
    (b'{"values": {"count": ' + DIGITS_401 + b"}}", "integer_too_large"),
    (b'{"values": {"count": 9007199254740993}}', "integer_too_large"),
    (b'{"values": {"count": 1e300}}', "integer_too_large"),
    (b'{"values": {"temp\xffrature": 1}}', "malformed_json"),
    (b'{"values": {"temperature": ' + b"[" * 5000 + b"]" * 5000 + b"}}", "malformed_json"),
    (b'{"ts": "0001-01-01T00:00:00Z", "values": {"temperature": 1}}', "bad_timestamp"),
    (b'{"ts": "1973-03-03T09:46:39Z", "values": {"temperature": 1}}', "bad_timestamp"),
    (b'{"ts": "2026-01-01T00:00:00", "values": {"temperature": 1}}', "bad_timestamp"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE)
async def test_hostile_telemetry_is_refused_with_its_reason(api, dev, body, reason):
    r = await api.http.post(
        URL, auth=dev, content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_input" and r.json()["reason"] == reason
    await api.ctx.ingest.flush_counters()
    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert [(x["transport"], x["reason"], x["count"]) for x in rej] == [("http", reason, 1)]
    assert (await _raw(api))["value"] == []


async def test_integers_up_to_2_to_the_53_are_stored_exactly(api, dev):
    for i, n in enumerate((2**53, -(2**53), 2**53 - 1)):
        r = await api.http.post(
            URL, auth=dev, json={"ts": 1767225600000 + i, "values": {"count": n}}
        )
        assert r.status_code == 200, r.text
    r = await api.http.get(
        f"{V1}/devices/s1/series/count",
        headers=api.admin,
        params={"mode": "raw", "start": "2025-12-31T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
    )
    assert r.json()["value"] == [2**53, -(2**53), 2**53 - 1]


HOSTILE_OBJECTS = [
    (b'{"fw\xff": 1}', "malformed_json"),
    (b'{"n": ' + DIGITS_401 + b"}", "integer_too_large"),
    (b'{"n": 18446744073709551616}', "integer_too_large"),
    (b'{"n": 1e400}', "malformed_json"),
    (b'{"a": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, "wrong_type"),
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE_OBJECTS)
async def test_hostile_twin_reported_is_refused_with_its_reason(api, dev, body, reason):
    r = await api.http.put(
        f"{V1}/ingest/twin/reported",
        auth=dev,
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == reason
    await api.ctx.ingest.flush_counters()
    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert [(x["transport"], x["reason"], x["count"]) for x in rej] == [("http", reason, 1)]


@pytest.mark.parametrize(("body", "reason"), HOSTILE_OBJECTS)
async def test_hostile_command_ack_is_refused_with_its_reason(api, dev, body, reason):
    device, _ = dev
    r = await api.http.post(
        f"{V1}/devices/{device}/commands", headers=api.admin, json={"name": "reboot"}
    )
    assert r.status_code == 201, r.text
    body = body.replace(b"{", b'{"status": "ok", "result": {', 1) + b"}"
    r = await api.http.post(
        f"{V1}/ingest/commands/{r.json()['id']}/ack",
        auth=dev,
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == reason
