"""The OPC UA connector against a real asyncua server with a simulated press."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

import pytest
from asyncua import ua

from atoll.core.time import datetime_to_us
from atoll.edge.connectors import opcua
from atoll.edge.connectors.opcua.connector import browse_url
from atoll.edge.port import CommandFailed
from atoll.testing.connector import MemorySink, check_connector
from tests.edge.connectors.opcua_machine import Press, certificates

pytestmark = pytest.mark.timeout(120)


def config(press: Press, **extra) -> dict:
    return {
        "name": "press-line",
        "url": press.url,
        "timeout_s": 2.0,
        "watchdog_s": 0.3,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "buffer_retry_s": 0.05,
        "devices": [
            {
                "id": "press-1",
                "device_type": "press",
                "commands": {
                    "set_speed": {
                        "object": f"ns={press.ns};s=Press1",
                        "method": f"ns={press.ns};s=Press1.SetSpeed",
                        "inputs": [{"name": "speed", "type": "Double"}],
                    },
                },
            },
        ],
        "groups": [
            {
                "sampling_interval_ms": 20,
                "publishing_interval_ms": 50,
                "nodes": [
                    {
                        "node": press.node("Temperature"),
                        "device": "press-1",
                        "metric": "temperature",
                    },
                    {"node": press.node("Count"), "device": "press-1", "metric": "count"},
                ],
            },
            {
                "sampling_interval_ms": 200,
                "publishing_interval_ms": 200,
                "nodes": [
                    {"node": press.node("Running"), "device": "press-1", "metric": "running"},
                    {"node": press.node("Label"), "device": "press-1", "metric": "label"},
                ],
            },
        ],
        **extra,
    }


async def running(connector, sink):
    task = asyncio.create_task(connector.run(sink))
    return task


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_conformance():
    async with Press() as press:
        counter = itertools.count(1)

        async def produce():
            await press.set("Temperature", 20.0 + next(counter))

        c = opcua.build(config(press))
        readings = await check_connector(c, produce=produce)
    temps = [r.values["temperature"] for r in readings if "temperature" in r.values]
    assert len(set(temps)) > 3  # the changes produce() made, as they were made
    assert c.status()["buffer_stopped_waits"] >= 1


async def test_values_timestamps_and_quality():
    async with Press() as press:
        c = opcua.build(config(press))
        sink = MemorySink()
        task = await running(c, sink)
        try:
            await sink.wait_for(lambda rs: len(rs) >= 3, 10)  # the initial values (not Label)
            sampled = datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=UTC)
            await press.set("Temperature", 88.25, source=sampled)
            await sink.wait_for(lambda rs: any(r.values.get("temperature") == 88.25 for r in rs), 5)
            received = datetime(2026, 12, 1, 8, 30, 1, tzinfo=UTC)
            await press.set("Temperature", 77.5, server=received)  # no source time
            await press.set("Count", 41, ua.VariantType.Int32)
            await press.set("Running", True, ua.VariantType.Boolean)
            await press.set("Temperature", 999.0, status=ua.StatusCodes.BadSensorFailure)
            await press.set("Label", "busy", ua.VariantType.String)
            await sink.wait_for(lambda rs: any(r.values.get("running") is True for r in rs), 10)
            await sink.wait_for(lambda rs: any(r.values.get("count") == 41.0 for r in rs), 10)
            await asyncio.sleep(0.3)
        finally:
            await stop(task)
    by_metric = {}
    for r in sink.readings:
        for k, v in r.values.items():
            by_metric.setdefault(k, []).append((r.ts_us, v))
    assert (datetime_to_us(sampled), 88.25) in by_metric["temperature"]
    assert (datetime_to_us(received), 77.5) in by_metric["temperature"]
    assert 999.0 not in [v for _, v in by_metric["temperature"]]  # bad quality skipped
    assert "label" not in by_metric  # a string is no Atoll value
    assert type(by_metric["count"][-1][1]) is float
    status = c.status()
    assert status["bad_quality"] == 1
    assert status["source_time_missing"] >= 1
    assert status["unsupported"] >= 1
    assert status["connected"] is False  # stopped
    json.dumps(status)


async def test_every_sample_between_two_publishes_arrives():
    async with Press() as press:
        cfg = config(press)
        cfg["groups"][0].update(sampling_interval_ms=20, publishing_interval_ms=1000)
        c = opcua.build(cfg)
        sink = MemorySink()
        task = await running(c, sink)
        try:
            await sink.wait_for(lambda rs: len(rs) >= 2, 10)
            for v in (1.0, 2.0, 3.0, 4.0, 5.0):  # within one publishing interval
                await press.set("Temperature", v)
                await asyncio.sleep(0.05)
            await sink.wait_for(lambda rs: any(r.values.get("temperature") == 5.0 for r in rs), 5)
        finally:
            await stop(task)
    temps = [r.values["temperature"] for r in sink.readings if "temperature" in r.values]
    assert temps[-5:] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_an_unknown_node_is_reported_and_the_rest_is_read():
    async with Press() as press:
        cfg = config(press)
        cfg["groups"][0]["nodes"].append(
            {"node": f"ns={press.ns};s=Press1.NoSuchThing", "device": "press-1", "metric": "x"}
        )
        c = opcua.build(cfg)
        sink = MemorySink()
        task = await running(c, sink)
        try:
            await press.set("Temperature", 66.0)
            await sink.wait_for(lambda rs: any(r.values.get("temperature") == 66.0 for r in rs), 10)
        finally:
            await stop(task)
    assert c.status()["bad_nodes"] == {f"ns={press.ns};s=Press1.NoSuchThing": "BadNodeIdUnknown"}


async def test_resubscribes_after_the_server_restarts():
    press = await Press().start()
    c = opcua.build(config(press))
    sink = MemorySink()
    task = await running(c, sink)
    try:
        await press.set("Temperature", 31.0)
        await sink.wait_for(lambda rs: any(r.values.get("temperature") == 31.0 for r in rs), 10)
        await press.stop()
        for _ in range(100):
            if not c.status()["connected"]:
                break
            await asyncio.sleep(0.1)
        assert c.status()["connected"] is False
        press = await Press(port=press.port).start()  # a fresh server: new session needed
        await asyncio.sleep(0.5)
        await press.set("Temperature", 32.0)
        await sink.wait_for(lambda rs: any(r.values.get("temperature") == 32.0 for r in rs), 20)
        status = c.status()
        assert status["connected"] is True
        assert status["reconnects"] >= 1 and status["errors"] >= 1
    finally:
        await stop(task)
        await press.stop()


async def test_basic256sha256_sign_and_encrypt(tmp_path):
    files = await certificates(tmp_path)
    security = {
        "certificate": str(files["client_cert"]),
        "private_key": str(files["client_key"]),
        "server_certificate": str(files["server_cert"]),
    }
    async with Press(certs=files) as press:
        # without security the server (SignAndEncrypt only) refuses: counted, no crash
        plain = opcua.build(config(press, reconnect_min_s=0.1))
        sink = MemorySink()
        task = await running(plain, sink)
        try:
            for _ in range(100):
                if plain.status()["errors"] >= 1:
                    break
                await asyncio.sleep(0.1)
        finally:
            await stop(task)
        assert plain.status()["errors"] >= 1 and not sink.readings

        secure = opcua.build(config(press, security=security))
        sink = MemorySink()
        task = await running(secure, sink)
        try:
            await press.set("Temperature", 55.5)
            await sink.wait_for(lambda rs: any(r.values.get("temperature") == 55.5 for r in rs), 20)
            assert secure.status()["security"] == "Basic256Sha256/SignAndEncrypt"
            assert await secure.command("press-1", "set_speed", {"speed": 5}) == 10.0
        finally:
            await stop(task)
        found = await browse_url(press.url, f"ns={press.ns};s=Press1", security=_security(security))
        assert {v["path"] for v in found} >= {"Temperature", "Count"}


async def test_a_server_certificate_other_than_the_trusted_one_is_refused(tmp_path):
    files = await certificates(tmp_path / "real")
    impostor = await certificates(tmp_path / "other")  # another key pair, same names
    async with Press(certs=files) as press:
        c = opcua.build(
            config(
                press,
                reconnect_min_s=0.1,
                security={
                    "certificate": str(files["client_cert"]),
                    "private_key": str(files["client_key"]),
                    "server_certificate": str(impostor["server_cert"]),
                },
            )
        )
        sink = MemorySink()
        task = await running(c, sink)
        try:
            for _ in range(100):
                if c.status()["errors"] >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await stop(task)
    status = c.status()
    assert status["errors"] >= 2 and status["connects"] == 0 and not sink.readings, status
    assert status["last_error"].startswith(f"cannot connect to {press.url}: TimeoutError")
    assert "server_certificate" in status["last_error"]


def _security(d):
    from atoll.edge.connectors.opcua.config import Security

    return Security.model_validate(d)


async def test_method_calls_as_commands():
    async with Press() as press:
        c = opcua.build(config(press))
        with pytest.raises(CommandFailed, match="not connected"):
            await c.command("press-1", "set_speed", {"speed": 5})
        sink = MemorySink()
        task = await running(c, sink)
        try:
            await sink.wait_for(lambda rs: len(rs) >= 1, 10)
            assert await c.command("press-1", "set_speed", {"speed": 21.5}) == 43.0
            assert await c.command("press-1", "set_speed", {"speed": 7}) == 14.0
            with pytest.raises(CommandFailed, match="refused the call.*BadOutOfRange"):
                await c.command("press-1", "set_speed", {"speed": 500})
            with pytest.raises(CommandFailed, match="missing arg 'speed'"):
                await c.command("press-1", "set_speed", {})
            with pytest.raises(CommandFailed, match="unexpected args"):
                await c.command("press-1", "set_speed", {"speed": 1, "torque": 2})
            with pytest.raises(CommandFailed, match="is not a Double"):
                await c.command("press-1", "set_speed", {"speed": "fast"})
            with pytest.raises(CommandFailed, match="no command 'stop'"):
                await c.command("press-1", "stop", {})
        finally:
            await stop(task)


async def test_browse_lists_variables_with_types_and_values():
    async with Press() as press:
        await press.set("Temperature", 42.0)
        found = await browse_url(press.url)
        mine = {v["path"]: v for v in found if v["path"].startswith("Press1/")}
        assert mine["Press1/Temperature"] == {
            "node": press.node("Temperature"),
            "path": "Press1/Temperature",
            "type": "Double",
            "value": 42.0,
        }
        assert mine["Press1/Running"]["type"] == "Boolean"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "http://press:4840"}, "url: String should match pattern"),
        ({"groups": []}, "groups: List should have at least 1 item"),
        (
            {
                "groups": [
                    {"nodes": [{"node": "Press1.Temperature", "device": "press-1", "metric": "t"}]}
                ]
            },
            "groups.0.nodes.0.node",
        ),
        (
            {"groups": [{"nodes": [{"node": "ns=2;i=5", "device": "press-9", "metric": "t"}]}]},
            "names unknown device 'press-9'",
        ),
        (
            {
                "groups": [
                    {
                        "nodes": [
                            {"node": "ns=2;i=5", "device": "press-1", "metric": "t"},
                            {"node": "ns=2;i=5", "device": "press-1", "metric": "u"},
                        ]
                    }
                ]
            },
            "nodes mapped twice: ['ns=2;i=5']",
        ),
        (
            {
                "security": {
                    "certificate": "/nonexistent/c.der",
                    "private_key": "/nonexistent/k",
                    "server_certificate": "/nonexistent/s.der",
                }
            },
            "security.certificate: no such file '/nonexistent/c.der'",
        ),
        ({"security": {"policy": "Basic128Rsa15"}}, "security.policy: Input should be"),
        ({"username": "op"}, "username and password go together"),
        (
            {
                "devices": [
                    {
                        "id": "press-1",
                        "commands": {
                            "x": {
                                "object": "ns=2;i=1",
                                "method": "ns=2;i=2",
                                "inputs": [{"name": "a", "type": "Decimal"}],
                            }
                        },
                    }
                ]
            },
            "devices.0.commands.x.inputs.0.type",
        ),
    ],
)
def test_bad_configuration_is_a_clear_value_error(change, message):
    good = {
        "url": "opc.tcp://127.0.0.1:4840",
        "devices": [{"id": "press-1"}],
        "groups": [{"nodes": [{"node": "ns=2;i=5", "device": "press-1", "metric": "t"}]}],
    }
    with pytest.raises(ValueError, match="opcua connector configuration is invalid") as e:
        opcua.build({**good, **change})
    assert message in str(e.value)
