"""The forwarder against a real Mosquitto: children declared first, batched gateway telemetry,
the acknowledged position moving only on PUBACK, reconnecting after the broker restarts."""

from __future__ import annotations

import asyncio
import time

import orjson

from atoll.edge.buffer import DurableBuffer, Row
from atoll.edge.config import PlatformLink
from atoll.edge.forwarder import Forwarder, encode
from atoll.edge.port import EdgeReading
from atoll.sim.mosquitto import Mosquitto
from tests.edge.conftest import GW, SECRET
from tests.edge.tcp_proxy import TcpProxy

T0 = 1_795_428_000_000_000


def test_encode_groups_children_in_order():
    rows = [
        Row(1, "a", T0, b'{"x":1.0}'),
        Row(2, "b", T0, b'{"x":2.0}'),
        Row(3, "a", T0 + 1500, b'{"x":3.0}'),
    ]
    doc = orjson.loads(encode(rows))
    assert doc == {
        "a": [
            {"ts": T0 // 1000, "values": {"x": 1.0}},
            {"ts": "2026-11-23T10:00:00.001500Z", "values": {"x": 3.0}},
        ],
        "b": [{"ts": T0 // 1000, "values": {"x": 2.0}}],
    }


def _link(port: int, secret: str = SECRET) -> PlatformLink:
    return PlatformLink("127.0.0.1", port, False, None, GW, secret)


def _fill(buf: DurableBuffer, n: int, devices: int = 50) -> None:
    for k in range(0, n, 5000):
        buf.append(
            [
                EdgeReading(f"c{i % devices}", T0 + i * 1000, {"v": float(i), "w": 1.0})
                for i in range(k, min(n, k + 5000))
            ]
        )


async def _forward_until(fwd: Forwarder, done, timeout: float = 60) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)


def test_backlog_forwarded_once_in_order_with_children_first(tmp_path, broker, receiver):
    buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
    _fill(buf, 40_000)
    fwd = Forwarder(
        buf, _link(broker.port), children=lambda: {"c0": "press"}, max_message_bytes=64 * 1024
    )
    asyncio.run(_forward_until(fwd, lambda: buf.acked == 40_000))
    assert buf.acked == 40_000
    receiver.wait_for(40_000)
    got = receiver.unique()
    assert len(got) == 40_000
    assert got[("c7", T0 + 7 * 1000)] == {"v": 7.0, "w": 1.0}
    assert receiver.messages > 40_000 * 40 // (64 * 1024)  # split to the size limit
    # every child declared before its first reading; the configured one with its type
    assert receiver.connects[0] == {"device": "c0", "device_type": "press"}
    assert {c["device"] for c in receiver.connects} == {f"c{i}" for i in range(50)}
    order = [ts for child, ts, _ in receiver.arrivals if child == "c3"]
    assert order == sorted(order)
    # the position is saved: a new forwarder starts after it
    buf.close()
    assert DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open().acked == 40_000


def test_acks_move_the_position_only_over_a_run_from_the_oldest(tmp_path):
    buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
    fwd = Forwarder(buf, _link(1), children=dict)
    fwd._gen = 7
    fwd._inflight.extend([(11, 100, 100), (12, 250, 150), (13, 300, 50)])
    fwd._on_puback(7, 12)  # the second message first: nothing moves
    assert buf.acked == 0 and fwd.readings_acked == 0
    fwd._on_puback(6, 11)  # a PUBACK of an earlier connection's client counts for nothing
    assert buf.acked == 0
    fwd._on_puback(7, 11)  # now the first two, in order
    assert buf.acked == 250 and fwd.readings_acked == 250 and len(fwd._inflight) == 1
    fwd._on_puback(7, 13)
    assert buf.acked == 300 and not fwd._inflight
    buf.close()


def test_position_moves_only_on_puback(tmp_path, broker):
    buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
    _fill(buf, 1000)
    fwd = Forwarder(buf, _link(broker.port, secret="wrong"), children=dict)
    asyncio.run(_forward_until(fwd, lambda: fwd.last_error is not None, timeout=10))
    assert "refused" in (fwd.last_error or "") and buf.acked == 0
    buf.close()


def test_uplink_cut_then_back_resends_from_acked_position(tmp_path, broker, receiver):
    proxy = TcpProxy(broker.port)
    buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
    _fill(buf, 20_000)

    async def main():
        fwd = Forwarder(buf, _link(proxy.port), children=dict, max_inflight=4)
        stop = asyncio.Event()
        task = asyncio.create_task(fwd.run(stop))
        while buf.acked < 2000:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(proxy.cut)
        await asyncio.sleep(0.5)
        acked_at_cut = buf.acked
        await asyncio.sleep(1.5)
        assert not fwd.connected and buf.acked == acked_at_cut < 20_000
        await asyncio.to_thread(proxy.restore)
        deadline = time.monotonic() + 60
        while buf.acked < 20_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return fwd

    fwd = asyncio.run(main())
    proxy.close()
    assert buf.acked == 20_000 and fwd.connections >= 2
    receiver.wait_for(20_000)
    assert len(receiver.unique()) == 20_000
    buf.close()


def test_tls_with_the_platforms_ca(tmp_path):
    with Mosquitto(tmp_path / "mosquitto", {GW: SECRET}, tls=True) as broker:
        assert broker.ca_file
        buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
        _fill(buf, 3000)
        # without the CA the certificate is not trusted: nothing is sent
        untrusted = Forwarder(
            buf, PlatformLink("127.0.0.1", broker.port, True, None, GW, SECRET), children=dict
        )
        asyncio.run(_forward_until(untrusted, lambda: untrusted.last_error is not None, 10))
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.last_error or "") and buf.acked == 0
        link = PlatformLink("127.0.0.1", broker.port, True, broker.ca_file, GW, SECRET)
        fwd = Forwarder(buf, link, children=dict)
        asyncio.run(_forward_until(fwd, lambda: buf.acked == 3000, 30))
        assert buf.acked == 3000 and fwd.connections == 1
        buf.close()


def test_gateways_own_readings_go_to_its_own_telemetry(tmp_path, broker, receiver):
    """Scores and local alarms of detection at the edge are the gateway's own readings: they go
    to its ``telemetry`` topic (the gateway is not its own child), the rest as before."""
    buf = DurableBuffer(tmp_path / "buf", max_bytes=100 << 20).open()
    buf.append(
        [
            EdgeReading(GW if i % 3 == 0 else "c1", T0 + i * 1000, {"v": float(i)})
            for i in range(300)
        ]
    )
    fwd = Forwarder(buf, _link(broker.port), children=dict)
    # positions: each message's ack covers only what no later message of the batch holds
    batch = fwd._batch(buf.read(0, 1 << 20))
    assert [t.rsplit("/", 1)[-1] for t, *_ in batch] == ["telemetry", "telemetry"]
    assert batch[0][1][0].device == "c1" and batch[0][3] == 0  # own readings from seq 1 on
    assert batch[-1][3] == 300
    buf.rewind()
    asyncio.run(_forward_until(fwd, lambda: buf.acked == 300))
    receiver.wait_for(200)
    assert len(receiver.unique()) == 200 and {c for c, _ in receiver.unique()} == {"c1"}
    own = [orjson.loads(p) for t, p in receiver.other if t == f"atoll/v1/devices/{GW}/telemetry"]
    assert sum(len(m) for m in own) == 100
    assert own[0][0] == {"ts": T0 // 1000, "values": {"v": 0.0}}
    assert GW not in {c["device"] for c in receiver.connects}
    buf.close()
