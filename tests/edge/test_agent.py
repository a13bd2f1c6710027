"""The agent in-process against a real Mosquitto: sim readings delivered, managed through the
desired twin (accepted, refused, kept across a restart), commands routed and answered, status
in the reported twin."""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atoll.core import topics
from atoll.edge.agent import EdgeAgent
from atoll.edge.config import parse_config
from tests.edge.conftest import GW, SECRET, check_delivery, seen_by_connector


def _config(tmp_path, port: int, **over):
    doc = {
        "platform": f"mqtt://127.0.0.1:{port}",
        "gateway": {"id": GW, "secret": SECRET},
        "buffer": {"dir": str(tmp_path / "buffer"), "max_bytes": "64MiB"},
        "status_interval_s": 0.5,
        "connectors": [
            {
                "type": "sim",
                "name": "line-1",
                "children": 4,
                "metrics": 3,
                "rate_hz": 50,
                "record": str(tmp_path / "record.txt"),
            }
        ],
    }
    doc.update(over)
    return parse_config(doc)


class Ops:
    """Plays the platform's side of the twin and commands (as the gateway's user, another id)."""

    def __init__(self, port: int) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-1-ops")
        self.c.username_pw_set(GW, SECRET)
        self.acks: dict[str, dict] = {}
        self.reported: list[dict] = []
        ready = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_connect = lambda c, *a: c.subscribe(
            [
                (topics.gateway_command_ack(GW, "+", "+"), 1),
                (topics.twin_reported(GW), 1),
            ]
        )
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c, _u, m) -> None:
        if m.topic.endswith("/ack"):
            self.acks[m.topic.split("/")[-2]] = orjson.loads(m.payload)
        else:
            self.reported.append(orjson.loads(m.payload))

    def desired(self, doc: dict) -> None:
        self.c.publish(
            topics.twin_desired(GW), orjson.dumps(doc), qos=1, retain=True
        ).wait_for_publish(5)

    def command(self, child: str, cid: str, name: str, args: dict) -> None:
        body = {"id": cid, "name": name, "args": args, "device": child}
        self.c.publish(topics.gateway_command(GW, child, cid), orjson.dumps(body), qos=1)

    def wait(self, pred, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _run_agent(cfg, body) -> dict:
    async def main():
        agent = EdgeAgent(cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.to_thread(body, agent)
        finally:
            stop.set()
        t0 = time.monotonic()
        summary = await asyncio.wait_for(task, 15)
        summary["stop_s"] = time.monotonic() - t0
        return summary

    return asyncio.run(main())


def test_sim_readings_arrive_once_in_order(tmp_path, broker, receiver):
    cfg = _config(tmp_path, broker.port)
    summary = _run_agent(cfg, lambda agent: time.sleep(3))
    assert summary["stop_s"] < 5
    seen = seen_by_connector(tmp_path / "record.txt", 4)
    assert len(seen) >= 4 * 50 * 2
    receiver.wait_for(len(seen), timeout=20)
    check_delivery(receiver, seen, summary["buffer"]["dropped"], metrics=3)
    assert summary["buffer"]["depth"] == 0
    assert {c["device"] for c in receiver.connects} == {"sim-1", "sim-2", "sim-3", "sim-4"}


def test_managed_through_twin_and_commands(tmp_path, broker):
    ops = Ops(broker.port)
    cfg = _config(tmp_path, broker.port)

    def body(agent):
        # status arrives in the reported twin
        assert ops.wait(lambda: any("edge" in r for r in ops.reported))
        edge = ops.reported[-1]["edge"]
        assert set(edge["buffer"]) >= {"depth", "bytes", "oldest_unsent_age_s", "dropped"}
        assert edge["connectors"]["line-1"]["children"] == 4 and edge["version"]
        assert edge["last_contact"] and edge["config"]["source"] == "file"
        # a command to a child goes to its connector and is answered
        ops.command("sim-2", "c1", "ping", {"x": 1})
        ops.command("sim-2", "c2", "explode", {})
        ops.command("nobody", "c3", "ping", {})
        assert ops.wait(lambda: len(ops.acks) == 3)
        assert ops.acks["c1"] == {"status": "ok", "result": {"device": "sim-2", "args": {"x": 1}}}
        assert ops.acks["c2"]["status"] == "error" and "unknown command" in ops.acks["c2"]["result"]
        assert ops.acks["c3"]["status"] == "error" and "nobody" in ops.acks["c3"]["result"]
        # an invalid list is refused and reported; the old connector keeps running
        ops.desired({"connectors": [{"type": "sim", "name": "x", "children": -1}]})
        assert ops.wait(lambda: ops.reported[-1]["edge"]["config"]["status"] == "error")
        err = ops.reported[-1]["edge"]["config"]["error"]
        assert "children" in err
        assert list(agent.running) == ["line-1"]
        ops.desired({"connectors": [{"type": "opcua-nope", "name": "y"}]})
        assert ops.wait(
            lambda: "unknown type" in (ops.reported[-1]["edge"]["config"]["error"] or "")
        )
        # a valid list replaces it
        ops.desired(
            {"connectors": [{"type": "sim", "name": "line-2", "children": 2, "prefix": "m-"}]}
        )
        assert ops.wait(lambda: ops.reported[-1]["edge"]["config"]["status"] == "ok")
        assert ops.wait(lambda: list(agent.running) == ["line-2"])
        assert ops.reported[-1]["edge"]["config"]["source"] == "twin"

    _run_agent(cfg, body)
    # restart without uplink: the saved desired list runs, not the file's
    offline = _config(tmp_path, 1)  # nothing listens on port 1

    def offline_body(agent):
        assert ops.wait(lambda: list(agent.running) == ["line-2"], 5)
        assert agent.config_state.source == "saved twin"
        assert not agent.forwarder.connected
        time.sleep(2.5)  # line-2 reads once a second

    summary = _run_agent(offline, offline_body)
    assert summary["buffer"]["depth"] > 0  # buffered while offline
    ops.close()


def test_detection_at_the_edge_switched_on(tmp_path, broker, receiver):
    """With ``detection.enabled`` the connectors' readings are judged on the gateway; scores go
    out as the gateway's own telemetry, counters to the reported twin, state to the buffer dir."""
    cfg = _config(
        tmp_path,
        broker.port,
        detection={
            "enabled": True,
            "outputs": [{"connector": "line-1", "device": "sim-1", "command": "ping"}],
        },
    )
    ops = Ops(broker.port)

    def body(agent):
        assert ops.wait(
            lambda: any(
                r["edge"].get("detection", {}).get("judged", 0) > 0
                for r in ops.reported
                if "edge" in r
            ),
            30,
        )

    _run_agent(cfg, body)
    own = [orjson.loads(p) for t, p in receiver.other if t == topics.telemetry(GW)]
    metrics = {m for msg in own for item in msg for m in item["values"]}
    assert "sim-1.m0.score" in metrics
    assert (tmp_path / "buffer" / "detection.state").exists()
    ops.close()


def test_bad_detection_settings_stop_the_start_with_the_reason(tmp_path):
    cfg = _config(tmp_path, 1, detection={"enabled": True, "detector": "no-such-detector"})
    with pytest.raises(ValueError, match="detection"):
        _run_agent(cfg, lambda agent: None)
