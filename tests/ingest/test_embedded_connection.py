"""Atoll's reader loop for device connections, driven over raw sockets so the tests decide how
bytes are pipelined, fragmented and interleaved. The packets are encoded here by hand (not
with amqtt, which the broker decodes with)."""

import asyncio
import socket
import struct
import time

from atoll.core import topics
from atoll.core.points import SeriesKey

END = 2**62
CONNACK, PUBACK, PUBREC, SUBACK, PINGRESP = 2, 4, 5, 9, 13


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    return struct.pack("!H", len(s.encode())) + s.encode()


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, user: str, password: str, keep_alive: int = 60) -> bytes:
    return packet(
        0x10,
        _str("MQTT")
        + bytes([4, 0xC2])
        + struct.pack("!H", keep_alive)
        + _str(client_id)
        + _str(user)
        + _str(password),
    )


def publish(topic: str, payload: bytes, packet_id: int | None, qos: int = 1) -> bytes:
    pid = struct.pack("!H", packet_id) if qos else b""
    return packet(0x30 | qos << 1, _str(topic) + pid + payload)


def subscribe(packet_id: int, topic_filter: str, qos: int = 1) -> bytes:
    return packet(0x82, struct.pack("!H", packet_id) + _str(topic_filter) + bytes([qos]))


PINGREQ = packet(0xC0, b"")


class Raw:
    """A blocking MQTT 3.1.1 client over a plain socket (use it from a worker thread)."""

    def __init__(self, port: int, device: str, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(connect_packet(device, device, secret))
        kind, body = self.recv()
        assert kind == CONNACK and body[1] == 0, body

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                return False
            self.buf += data
        return True

    def recv(self) -> tuple[int, bytes] | None:
        """The next packet as ``(type, body)``; ``None`` once the broker closed the connection."""
        if not self._fill(2):
            return None
        length, mult, i = 0, 1, 1
        while True:
            if not self._fill(i + 1):
                return None
            byte = self.buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if not self._fill(i + length):
            return None
        kind, body = self.buf[0] >> 4, self.buf[i : i + length]
        self.buf = self.buf[i + length :]
        return kind, body

    def recv_until_closed(self) -> list[tuple[int, bytes]]:
        got = []
        while (p := self.recv()) is not None:
            got.append(p)
        return got

    def close(self) -> None:
        self.sock.close()


def pubacks(packets) -> list[int]:
    return [struct.unpack("!H", body)[0] for kind, body in packets if kind == PUBACK]


def reading(i: int) -> bytes:
    return b'{"ts": %d, "values": {"temperature": %d}}' % (1_767_225_600_000 + i, i % 80)


def stored(fleet, device: str) -> int:
    return len(fleet.platform.store.query_raw(SeriesKey("lab", device, "temperature"), 0, END).ts)


async def test_pipelined_qos1_publishes_are_all_acked_in_order_after_they_are_stored(fleet):
    n = 3000

    def run():
        c = Raw(fleet.port, "s1", fleet.secrets["s1"])
        c.sock.sendall(
            b"".join(publish(topics.telemetry("s1"), reading(i), i % 65535 + 1) for i in range(n))
        )
        got = [c.recv() for _ in range(n)]
        at_last_ack = stored(fleet, "s1")  # read in this thread, right after the last PUBACK
        c.close()
        return got, at_last_ack

    got, at_last_ack = await asyncio.to_thread(run)
    assert pubacks(got) == [i % 65535 + 1 for i in range(n)]
    assert at_last_ack == n
    assert fleet.platform.pipeline.stats.commits < n / 10, "one commit per chunk, not per message"


async def test_a_packet_split_across_tcp_reads_is_reassembled(fleet):
    wire = b"".join(publish(topics.telemetry("s1"), reading(i), i + 1) for i in range(3))

    def run():
        c = Raw(fleet.port, "s1", fleet.secrets["s1"])
        for i in range(len(wire)):  # one byte per TCP segment, headers and lengths included
            c.sock.sendall(wire[i : i + 1])
            time.sleep(0.001)
        got = [c.recv() for _ in range(3)]
        c.close()
        return got

    assert pubacks(await asyncio.to_thread(run)) == [1, 2, 3]
    assert stored(fleet, "s1") == 3


async def test_other_packets_interleaved_with_telemetry_go_through_amqtt(fleet):
    telemetry = topics.telemetry("s1")

    def run():
        c = Raw(fleet.port, "s1", fleet.secrets["s1"])
        c.sock.sendall(
            publish(telemetry, reading(1), 1)
            + PINGREQ
            + publish(telemetry, reading(2), 2)
            + subscribe(3, topics.twin_desired("s1"))
            + publish(topics.twin_reported("s1"), b'{"fw": "2.0"}', 4)  # through dispatch
            + publish(telemetry, reading(3), 5)
            + publish(telemetry, reading(4), 6, qos=2)  # amqtt's QoS 2 flow
            + publish(telemetry, reading(5), None, qos=0)
            + publish(topics.telemetry("s2"), reading(6), 7)
        )  # refused, still acked
        got = [c.recv() for _ in range(8)]
        c.close()
        return got

    got = await asyncio.to_thread(run)
    kinds = [k for k, _ in got]
    assert sorted(kinds) == sorted([PINGRESP, SUBACK, PUBREC] + [PUBACK] * 5)
    assert pubacks(got) == [1, 2, 4, 5, 7], "PUBACKs leave in the order the PUBLISHes came"
    suback = next(body for kind, body in got if kind == SUBACK)
    assert suback == b"\x00\x03\x01"
    assert fleet.platform.registry.get_twin("s1").reported == {"fw": "2.0"}
    for _ in range(100):  # QoS 2 and QoS 0 are not acknowledged after the commit
        if stored(fleet, "s1") == 4:
            break
        await asyncio.sleep(0.05)
    assert stored(fleet, "s1") == 4
    await fleet.platform.pipeline.flush_counters()
    assert fleet.rejections("s1") == {"acl_publish": 1}


class FailingStore:
    def __init__(self, store) -> None:
        self.store = store

    def append(self, batch) -> None:
        raise OSError("disk full")

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_store_failure_means_no_puback_and_a_closed_connection(fleet):
    pipeline = fleet.platform.pipeline
    real = pipeline.store
    pipeline.store = FailingStore(real)
    try:

        def run():
            c = Raw(fleet.port, "s1", fleet.secrets["s1"])
            c.sock.sendall(
                b"".join(publish(topics.telemetry("s1"), reading(i), i + 1) for i in range(50))
            )
            got = c.recv_until_closed()
            c.close()
            return got

        got = await asyncio.to_thread(run)
    finally:
        pipeline.store = real
    assert pubacks(got) == []

    # The client re-sends after reconnecting, and now it is stored and acknowledged.
    def again():
        c = Raw(fleet.port, "s1", fleet.secrets["s1"])
        c.sock.sendall(
            b"".join(publish(topics.telemetry("s1"), reading(i), i + 1) for i in range(50))
        )
        got = [c.recv() for _ in range(50)]
        c.close()
        return got

    assert pubacks(await asyncio.to_thread(again)) == list(range(1, 51))
    assert stored(fleet, "s1") == 50


async def test_oversize_and_malformed_packets_close_only_that_connection_and_are_counted(fleet):
    fleet.platform.mqtt.max_packet_bytes = 2000
    telemetry = topics.telemetry("s1")

    def run():
        other = Raw(fleet.port, "s2", fleet.secrets["s2"])
        other.sock.sendall(publish(topics.telemetry("s2"), reading(0), 1))
        first = other.recv()
        big = Raw(fleet.port, "s1", fleet.secrets["s1"])
        big.sock.sendall(publish(telemetry, reading(1), 1) + publish(telemetry, b"x" * 5000, 2))
        from_big = big.recv_until_closed()
        bad = Raw(fleet.port, "s1", fleet.secrets["s1"])
        bad.sock.sendall(b"\xf0\x00")  # reserved packet type
        from_bad = bad.recv_until_closed()
        other.sock.sendall(publish(topics.telemetry("s2"), reading(1), 2))
        second = other.recv()
        other.close()
        return first, from_big, from_bad, second

    first, from_big, from_bad, second = await asyncio.to_thread(run)
    assert pubacks([first, second]) == [1, 2], "the other device is not affected"
    assert pubacks(from_big) == [1] and from_bad == []
    await fleet.platform.pipeline.flush_counters()
    assert fleet.rejections("s1") == {"packet_too_large": 1, "malformed_packet": 1}
    assert stored(fleet, "s1") == 1 and stored(fleet, "s2") == 2


async def test_payload_over_the_ingest_limit_but_under_the_packet_limit_is_refused_and_acked(fleet):
    fleet.platform.pipeline.limits = fleet.platform.pipeline.limits.__class__(max_bytes=100)

    def run():
        c = Raw(fleet.port, "s1", fleet.secrets["s1"])
        c.sock.sendall(
            publish(topics.telemetry("s1"), b" " * 200 + reading(1), 1)
            + publish(topics.telemetry("s1"), reading(2), 2)
        )
        got = [c.recv() for _ in range(2)]
        c.close()
        return got

    assert pubacks(await asyncio.to_thread(run)) == [1, 2]
    await fleet.platform.pipeline.flush_counters()
    assert fleet.rejections("s1") == {"too_large": 1}
    assert stored(fleet, "s1") == 1
