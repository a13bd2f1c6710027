"""``WS /api/v1/live``: auth, project scoping, and forwarding of bus events to the socket."""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest
import uvicorn
import websockets

from atoll.api.app import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.core import topics
from atoll.core.events import AnomalyEvent, DetectorRef, encode_anomalies
from atoll.ingest.events import encode_telemetry
from atoll.registry import Registry
from atoll.store.memory import MemoryStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def live_server(tmp_path):
    reg = Registry.open(tmp_path)
    boot = reg.bootstrap()
    reg.create_project(boot.tenant, "Plant", project_id="plant")
    reg.create_project(boot.tenant, "Other", project_id="other")
    bus = MemoryBus()
    app = create_app(AppContext(registry=reg, store=MemoryStore(), bus=bus))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    token = boot.api_key
    yield f"ws://127.0.0.1:{port}/api/v1/live", token, bus
    server.should_exit = True
    await task
    await bus.close()
    reg.close()


async def _recv(ws, want, timeout=3.0):
    """Messages until one satisfies ``want``."""
    async with asyncio.timeout(timeout):
        while True:
            for m in orjson.loads(await ws.recv()):
                if want(m):
                    return m


async def test_forwards_telemetry_alarms_and_points_of_watched_devices(live_server):
    url, token, bus = live_server
    async with websockets.connect(f"{url}?project=plant&token={token}") as ws:
        await _recv(ws, lambda m: m["type"] == "hello")
        await ws.send(orjson.dumps({"watch": ["boiler-1"]}).decode())
        await asyncio.sleep(0.05)
        await bus.publish(
            topics.bus_telemetry("plant", "boiler-1"),
            encode_telemetry(
                "plant",
                "boiler-1",
                ["temp", "rpm"],
                [0, 1, 0],
                [1_000_000, 1_000_000, 2_000_000],
                [20.0, 900.0, 21.5],
            ),
        )
        m = await _recv(ws, lambda m: m["type"] == "telemetry")
        assert m["device"] == "boiler-1"
        assert m["values"] == {"temp": 21.5, "rpm": 900.0}
        assert m["ts"] == 2000  # epoch ms
        assert m["points"]["temp"] == [[1000, 20.0], [2000, 21.5]]

        await bus.publish(
            topics.bus_alarm("plant"),
            orjson.dumps(
                {
                    "event": "raised",
                    "actor": "system",
                    "alarm": {"id": 7, "device": "boiler-1", "status": "active"},
                }
            ),
        )
        m = await _recv(ws, lambda m: m["type"] == "alarm")
        assert (m["event"], m["device"], m["alarm"]["id"]) == ("raised", "boiler-1", 7)

        # Other projects' traffic never reaches this socket.
        await bus.publish(
            topics.bus_telemetry("other", "x"),
            encode_telemetry("other", "x", ["t"], [0], [5], [1.0]),
        )
        await bus.publish(
            topics.bus_telemetry("plant", "pump-2"),
            encode_telemetry("plant", "pump-2", ["t"], [0], [5_000], [3.0]),
        )
        m = await _recv(ws, lambda m: m["type"] == "telemetry")
        assert m["device"] == "pump-2" and "points" not in m


@pytest.mark.parametrize(
    "query,code", [("project=plant&token=nope", 4401), ("project=nowhere", 4404), ("", 4400)]
)
async def test_refuses_bad_key_unknown_project_and_missing_project(live_server, query, code):
    url, token, _ = live_server
    if "token" not in query and query:
        query += f"&token={token}"
    async with websockets.connect(f"{url}?{query}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd.code == code


async def test_forwards_anomaly_events_with_epoch_ms(live_server):
    url, token, bus = live_server
    event = AnomalyEvent(
        "plant",
        "boiler-1",
        "temp",
        1_700_000_000_123_999,  # µs on the bus
        0.97,
        value=81.5,
        is_anomaly=True,
        detector=DetectorRef("ewma", 1),
    )
    async with websockets.connect(f"{url}?project=plant&token={token}") as ws:
        await _recv(ws, lambda m: m["type"] == "hello")
        await bus.publish(event.subject, b"not an anomaly event")  # dropped, socket stays
        await bus.publish(event.subject, encode_anomalies([event]))
        m = await _recv(ws, lambda m: m["type"] == "anomaly")
    assert m == {
        "type": "anomaly",
        "project": "plant",
        "device": "boiler-1",
        "metric": "temp",
        "ts": 1_700_000_000_123,  # epoch ms, like the series API
        "score": 0.97,
        "value": 81.5,
        "is_anomaly": True,
        "detector": {"name": "ewma", "version": 1},
    }
