"""Detection at the edge: local alarms while offline, actions, state across restarts."""

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from atoll.edge.detect import ConnectorOutput, LocalDetection, Webhook
from atoll.edge.port import BufferStopped, ChildDevice, CommandFailed, EdgeReading

S = 1_000_000
#: Quick episodes for tests: no warm-up hour, an episode ends 30 s after its last evidence.
QUICK = {"warmup": 0, "min_readings": 20, "clear": 30.0}


class Kept:
    """The buffer's side of the sink: what it was given, in order (the durable buffer is tested
    in tests/edge with its own suite)."""

    def __init__(self, full: bool = False) -> None:
        self.readings: list[EdgeReading] = []
        self.full = full

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        if self.full:
            raise BufferStopped("full")
        self.readings += readings

    def own(self, gateway: str = "gw-1") -> list[EdgeReading]:
        return [r for r in self.readings if r.device == gateway]


class Hook:
    """A real HTTP server on the gateway's network, recording the alarms posted to it."""

    def __init__(self, status: int = 200) -> None:
        got: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers["content-length"])
                got.append(json.loads(self.rfile.read(n)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.got = got
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alarm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def readings(start: int, n: int, level: float, device: str = "press-1") -> list[EdgeReading]:
    """A machine at ``level`` with sensor noise, one reading a second from ``start`` s."""
    noise = np.random.default_rng(start).normal(0.0, 0.3, n)
    return [
        EdgeReading(device, (start + i) * S, {"temp": round(level + float(e), 2)})
        for i, e in enumerate(noise)
    ]


def calm(start: int, n: int) -> list[EdgeReading]:
    return readings(start, n, 20.0)


def hot(start: int, n: int) -> list[EdgeReading]:
    return readings(start, n, 80.0)


async def test_an_offline_gateway_raises_and_clears_a_local_alarm_through_a_webhook(hook):
    buffer = Kept()  # nothing is forwarded: the uplink is down all along
    local = LocalDetection(buffer, gateway="gw-1", actions=[Webhook(hook.url)], decision=QUICK)
    await local.put(calm(0, 400))
    assert hook.got == []
    await local.put(hot(400, 10))
    assert [a["state"] for a in hook.got] == ["raised"]
    raised = hook.got[0]
    assert raised["device"] == "press-1" and raised["metric"] == "temp" and raised["value"] > 78
    await local.put(calm(410, 120))  # 2 min of normal readings: the episode ends after 30 s
    assert [a["state"] for a in hook.got] == ["raised", "cleared"]
    status = local.status()
    assert status["alarms_raised"] == 1 and status["alarms_cleared"] == 1
    assert status["active"] == [] and status["action_failures"] == 0
    # Every reading was buffered, and the gateway's own judgement of each is buffered too.
    child = [r for r in buffer.readings if r.device == "press-1"]
    assert len(child) == 530
    own = buffer.own()
    assert len([r for r in own if "press-1.temp.score" in r.values]) == 530
    flag = "press-1.temp.alarm"
    flips = [(r.ts_us, r.values[flag]) for r in own if flag in r.values]
    assert [v for _, v in flips] == [1.0, 0.0]
    assert flips[0][0] == int(raised["ts"] * S)


async def test_a_failing_action_is_counted_and_never_stops_the_readings():
    bad = Hook(status=500)
    try:
        buffer = Kept()
        unreachable = Webhook("http://127.0.0.1:9/alarm", timeout_s=1.0)  # discard port: refused
        local = LocalDetection(
            buffer, gateway="gw-1", actions=[Webhook(bad.url), unreachable], decision=QUICK
        )
        await local.put(calm(0, 400))
        await local.put(hot(400, 10))
        assert len(bad.got) == 1  # it was called, and answered 500
        assert local.status()["action_failures"] == 2
        assert len([r for r in buffer.readings if r.device == "press-1"]) == 410
    finally:
        bad.close()


class Outputs:
    """A connector whose only output is a lamp per device (the Modbus and OPC UA connectors
    carry out real writes; here the routing is what is under test)."""

    name = "plc"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def devices(self) -> Sequence[ChildDevice]:
        return [ChildDevice("lamp-1")]

    async def run(self, sink: Any) -> None:
        await asyncio.Event().wait()

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        if device != "lamp-1":
            raise CommandFailed(f"no device {device}")
        self.calls.append((device, name, dict(args)))
        return True

    def status(self) -> Mapping[str, Any]:
        return {}


async def test_a_connector_output_follows_the_alarm():
    plc = Outputs()
    lamp = ConnectorOutput(plc, "lamp-1", "write", {"point": "alarm_lamp"})
    wrong = ConnectorOutput(plc, "lamp-9", "write")
    local = LocalDetection(Kept(), gateway="gw-1", actions=[lamp, wrong], decision=QUICK)
    await local.put(calm(0, 400))
    await local.put(hot(400, 10))
    await local.put(calm(410, 120))
    assert plc.calls == [
        ("lamp-1", "write", {"point": "alarm_lamp", "on": True}),
        ("lamp-1", "write", {"point": "alarm_lamp", "on": False}),
    ]
    assert local.status()["action_failures"] == 2  # lamp-9, raised and cleared


async def test_state_survives_a_restart_and_an_active_alarm_is_not_raised_twice(tmp_path, hook):
    path = tmp_path / "detect.state"
    first = LocalDetection(
        Kept(), gateway="gw-1", actions=[Webhook(hook.url)], decision=QUICK, state_path=path
    )
    await first.put(calm(0, 400))
    await first.put(hot(400, 5))
    await first.close()
    assert [a["state"] for a in hook.got] == ["raised"]

    buffer = Kept()
    again = LocalDetection(
        buffer, gateway="gw-1", actions=[Webhook(hook.url)], decision=QUICK, state_path=path
    )
    assert again.status()["active"] == ["press-1.temp"] and again.status()["series"] == 1
    await again.put(hot(400, 5))  # a connector re-sends what it had sent before the restart
    assert again.status()["not_judged_late"] == 5
    await again.put(hot(405, 5))
    assert [a["state"] for a in hook.got] == ["raised"], "the episode goes on, no second raise"
    await again.put(calm(410, 120))
    assert [a["state"] for a in hook.got] == ["raised", "cleared"]
    assert len([r for r in buffer.readings if r.device == "press-1"]) == 130  # re-sends kept too


async def test_a_damaged_state_file_is_moved_aside_not_a_crash_loop(tmp_path):
    path = tmp_path / "detect.state"
    path.write_bytes(b"\x93not msgpack at all")
    local = LocalDetection(Kept(), gateway="gw-1", decision=QUICK, state_path=path)
    assert local.status()["series"] == 0
    assert not path.exists() and (tmp_path / "detect.state.bad").exists()
    await local.put(calm(0, 50))
    await local.close()
    assert (
        LocalDetection(Kept(), gateway="gw-1", decision=QUICK, state_path=path).status()["series"]
        == 1
    )


async def test_a_full_buffer_stops_the_connector_before_anything_is_judged():
    local = LocalDetection(Kept(full=True), gateway="gw-1", decision=QUICK)
    with pytest.raises(BufferStopped):
        await local.put(calm(0, 10))
    assert local.status()["judged"] == 0


def test_bad_configuration_fails_at_once():
    with pytest.raises(Exception, match="unknown|detector"):
        LocalDetection(Kept(), gateway="gw-1", detector="no-such-detector")
    with pytest.raises(Exception, match="episode"):
        LocalDetection(Kept(), gateway="gw-1", decision={"z": -1})
