"""Series queries through the SDK: raw, chart, buckets, latest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import atoll

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_queries(server, client, plant):
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        dev.send_batch([(T0 + timedelta(seconds=i), {"temperature": 20 + i}) for i in range(5)])
    end = T0 + timedelta(hours=1)
    raw = client.raw("b1", "temperature", start=T0, end=end)
    assert raw.value == [20, 21, 22, 23, 24] and raw.times()[0] == T0 and len(raw) == 5
    ms = T0.timestamp() * 1000
    assert client.raw("b1", "temperature", start=ms + 1000, end=ms + 3000).value == [21, 22]
    assert client.raw(
        "b1", "temperature", start="2026-01-01T00:00:03Z", end=end, limit=1
    ).value == [23]
    assert len(client.chart("b1", "temperature", start=T0, end=end, width=10)) >= 2
    b = client.buckets(
        "b1",
        "temperature",
        start=T0,
        end=T0 + timedelta(minutes=1),
        bucket="1m",
        aggs=("count", "max"),
    )
    assert b["count"] == [5] and b["max"] == [24] and set(b.aggregates) == {"count", "max"}
    (latest,) = client.latest("plant")
    assert (latest.device, latest.metric, latest.value) == ("b1", "temperature", 24)
    assert client.latest("plant", "b1") == [latest]
    (info,) = client.series("b1")
    assert (info.metric, info.unit, info.last_value) == ("temperature", "°C", 24)
