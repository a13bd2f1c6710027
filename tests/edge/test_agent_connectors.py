"""The agent with the real connectors (after the merge of the agent and the connectors): an
OPC UA press and a Modbus meter read through one agent arrive at the platform's broker as the
gateway's children, with the values their servers hold; commands to them are routed to an OPC
UA method call and a Modbus register write, and acknowledged with the result."""

from __future__ import annotations

import asyncio
import time

import pytest

from atoll.edge.agent import EdgeAgent
from atoll.edge.config import parse_config
from tests.edge.conftest import GW, SECRET
from tests.edge.connectors.modbus_slave import HOLDING, INPUT, Slaves
from tests.edge.connectors.opcua_machine import Press
from tests.edge.test_agent import Ops

pytestmark = pytest.mark.timeout(120)


def test_opcua_and_modbus_children_through_the_agent(tmp_path, broker, receiver):
    ops = Ops(broker.port)

    async def main():
        async with Press() as press, Slaves(ids=(4,)) as meters:
            await press.set("Temperature", 71.5)
            await meters.write(4, INPUT, 0, [2304])  # 230.4 V
            cfg = parse_config(
                {
                    "platform": f"mqtt://127.0.0.1:{broker.port}",
                    "gateway": {"id": GW, "secret": SECRET},
                    "buffer": {"dir": str(tmp_path / "buffer")},
                    "status_interval_s": 0.5,
                    "connectors": [
                        {
                            "type": "opcua",
                            "name": "press-line",
                            "url": press.url,
                            "devices": [
                                {
                                    "id": "press-1",
                                    "commands": {
                                        "set_speed": {
                                            "object": f"ns={press.ns};s=Press1",
                                            "method": f"ns={press.ns};s=Press1.SetSpeed",
                                            "inputs": [{"name": "speed"}],
                                        }
                                    },
                                }
                            ],
                            "groups": [
                                {
                                    "sampling_interval_ms": 50,
                                    "publishing_interval_ms": 100,
                                    "nodes": [
                                        {
                                            "node": press.node("Temperature"),
                                            "device": "press-1",
                                            "metric": "temperature",
                                        }
                                    ],
                                }
                            ],
                        },
                        {
                            "type": "modbus",
                            "name": "meters",
                            "link": {"type": "tcp", "host": "127.0.0.1", "port": meters.port},
                            "devices": [
                                {
                                    "id": "meter-4",
                                    "slave": 4,
                                    "poll_interval_s": 0.2,
                                    "points": [
                                        {
                                            "name": "voltage",
                                            "table": "input",
                                            "address": 0,
                                            "scale": 0.1,
                                        },
                                        {"name": "limit", "address": 10, "scale": 0.1},
                                    ],
                                    "commands": {"set_limit": {"point": "limit", "max": 500}},
                                }
                            ],
                        },
                    ],
                }
            )
            agent = EdgeAgent(cfg)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            try:
                await asyncio.to_thread(body)
                assert await meters.read(4, HOLDING, 10, 1) == [2405]
            finally:
                stop.set()
                await asyncio.wait_for(task, 15)

    def body():
        def values(child):
            return [v for (c, _), v in receiver.unique().items() if c == child]

        assert ops.wait(lambda: {"temperature": 71.5} in values("press-1"))
        assert ops.wait(
            lambda: any(v.get("voltage") == pytest.approx(230.4) for v in values("meter-4"))
        )
        assert {c["device"] for c in receiver.connects} >= {"press-1", "meter-4"}
        ops.command("press-1", "c1", "set_speed", {"speed": 12.5})
        ops.command("meter-4", "c2", "set_limit", {"value": 240.5})
        ops.command("meter-4", "c3", "set_limit", {"value": 900})
        ops.command("press-1", "c4", "set_speed", {"speed": 1000})
        assert ops.wait(lambda: len(ops.acks) == 4)
        assert ops.acks["c1"] == {"status": "ok", "result": 25.0}
        assert ops.acks["c2"]["status"] == "ok"
        assert ops.acks["c2"]["result"] == {"point": "limit", "value": 240.5, "raw": 2405}
        assert ops.acks["c3"]["status"] == "error"
        assert "above the maximum 500" in ops.acks["c3"]["result"]
        assert ops.acks["c4"]["status"] == "error" and "BadOutOfRange" in ops.acks["c4"]["result"]
        assert ops.wait(lambda: any("edge" in r for r in ops.reported))
        status = ops.reported[-1]["edge"]["connectors"]
        assert status["press-line"]["connected"] is True
        assert status["meters"]["slaves"]["meter-4"]["writes"] == 1
        time.sleep(0.1)

    try:
        asyncio.run(main())
    finally:
        ops.close()
