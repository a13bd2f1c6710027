"""At-least-once delivery end to end: a device that re-sends (lost PUBACK, HTTP retry) is stored
once.

The store keeps one value per (series, ts), last write wins; these tests go through the real
embedded broker and the real HTTP API so the whole path (validation, group commit, store,
rollup tiers) is held to it.
"""

import asyncio
import json

import httpx

from atoll.core import topics
from atoll.core.points import SeriesKey
from tests.ingest.conftest import close
from tests.ingest.test_embedded_broker import publish_all

END = 2**62
T0_MS = 1_795_428_000_000  # 2026-11-23T10:00:00Z
HOUR_US = 3_600_000_000


def stamped(i: int, value: float) -> bytes:
    return json.dumps({"ts": T0_MS + i * 1000, "values": {"temperature": value}}).encode()


def raw(fleet, device):
    s = fleet.platform.store.query_raw(SeriesKey("lab", device, "temperature"), 0, END)
    return s.ts.tolist(), s.value.tolist()


def hourly(fleet, device):
    b = fleet.platform.store.query_buckets(
        SeriesKey("lab", device, "temperature"), 0, END, HOUR_US, ("count", "avg", "max")
    )
    return {k: v.tolist() for k, v in b.columns.items()}


async def test_mqtt_resend_after_lost_pubacks_is_stored_once(fleet):
    first = [stamped(i, i % 40) for i in range(120)]
    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert not rc.is_failure
    assert all(await asyncio.to_thread(publish_all, c, topics.telemetry("s1"), first))
    await asyncio.to_thread(close, c)
    # The device never saw the PUBACKs (say the link dropped) and re-sends everything on a new
    # connection, then carries on with new readings.
    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert not rc.is_failure
    again = [*first, *(stamped(i, 1) for i in range(120, 150))]
    assert all(await asyncio.to_thread(publish_all, c, topics.telemetry("s1"), again))
    await asyncio.to_thread(close, c)

    ts, values = raw(fleet, "s1")
    assert len(ts) == len(set(ts)) == 150
    assert values == [float(i % 40) for i in range(120)] + [1.0] * 30
    agg = hourly(fleet, "s1")
    assert agg["count"] == [150.0]
    assert agg["max"] == [39.0]


async def test_http_retry_is_stored_once_and_a_corrected_resend_replaces_the_value(fleet):
    body = [{"ts": T0_MS + i * 1000, "values": {"temperature": 20.0}} for i in range(60)]
    async with httpx.AsyncClient(
        base_url=fleet.platform.http_url, auth=("s2", fleet.secrets["s2"])
    ) as http:
        for _ in range(3):  # the client timed out twice and retried
            r = await http.post("/api/v1/ingest/telemetry", json=body)
            assert r.status_code in (200, 201, 202), r.text
        newer = [{"ts": T0_MS + 3_600_000, "values": {"temperature": 30.0}}]
        assert (await http.post("/api/v1/ingest/telemetry", json=newer)).status_code < 300
        # A late correction of one reading, after newer data was stored.
        fix = [{"ts": T0_MS + 5000, "values": {"temperature": 80.0}}]
        assert (await http.post("/api/v1/ingest/telemetry", json=fix)).status_code < 300

    ts, values = raw(fleet, "s2")
    assert len(ts) == 61
    assert values[5] == 80.0 and values.count(20.0) == 59 and values[-1] == 30.0
    agg = hourly(fleet, "s2")
    assert agg["count"] == [60.0, 1.0]
    assert agg["max"] == [80.0, 30.0]
    assert abs(agg["avg"][0] - (59 * 20.0 + 80.0) / 60) < 1e-9


async def test_readings_without_ts_are_never_merged(fleet):
    # Server time is unique per reading, so identical unstamped readings all count.
    c, rc = await asyncio.to_thread(fleet.connect, "s3")
    assert not rc.is_failure
    msgs = [b'{"values": {"temperature": 7}}'] * 100 + [
        b'[{"values": {"temperature": 7}}, {"values": {"temperature": 7}}]'
    ]
    assert all(await asyncio.to_thread(publish_all, c, topics.telemetry("s3"), msgs))
    await asyncio.to_thread(close, c)
    ts, values = raw(fleet, "s3")
    assert len(ts) == len(set(ts)) == 102
    assert set(values) == {7.0}
