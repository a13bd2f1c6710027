"""PacketSplitter: amqtt's decoders over a byte stream that arrives in arbitrary pieces."""

import random

import pytest
from amqtt.mqtt.packet import PINGREQ, PUBLISH, SUBSCRIBE, MQTTFixedHeader
from amqtt.mqtt.pingreq import PingReqPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.subscribe import SubscribePacket

from atoll.ingest.mqtt_frames import (
    MALFORMED_PACKET,
    PACKET_TOO_LARGE,
    PacketError,
    PacketSplitter,
    _Chunk,
    _run,
    check_connect,
)


def publish(topic: str, payload: bytes, packet_id: int | None = 1, qos: int = 1) -> bytes:
    return PublishPacket.build(topic, payload, packet_id, False, qos, False).to_bytes()


def stream() -> bytes:
    return (
        publish("a/b", b'{"values": {"t": 1}}', 1)
        + PingReqPacket().to_bytes()
        + SubscribePacket.build([("a/#", 1)], 2).to_bytes()
        + publish("a/c", b"x" * 300, None, qos=0)  # remaining length takes 2 bytes
        + publish("a/d", b"", 3)
    )


def summary(packets):
    return [
        (
            p.fixed_header.packet_type,
            getattr(p.variable_header, "topic_name", None),
            getattr(p.variable_header, "packet_id", None),
            getattr(p.payload, "data", None),
        )
        for p in packets
    ]


def feed(splitter, data):
    packets, error = splitter.feed(data)
    if error is not None:
        raise error
    return packets


def test_a_chunk_of_several_packets_decodes_in_order():
    got = summary(feed(PacketSplitter(1024), stream()))
    assert [g[0] for g in got] == [PUBLISH, PINGREQ, SUBSCRIBE, PUBLISH, PUBLISH]
    assert got[0] == (PUBLISH, "a/b", 1, b'{"values": {"t": 1}}')
    assert got[3] == (PUBLISH, "a/c", None, b"x" * 300)
    assert got[4] == (PUBLISH, "a/d", 3, b"")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
def test_packets_split_anywhere_come_out_the_same(size):
    whole = stream()
    splitter = PacketSplitter(1024)
    got = []
    for i in range(0, len(whole), size):
        got += feed(splitter, whole[i : i + size])
    assert summary(got) == summary(feed(PacketSplitter(1024), whole))
    assert splitter.buffered == 0


def test_a_packet_over_the_limit_is_refused_from_its_header():
    splitter = PacketSplitter(100)
    wire = publish("a/b", b"x" * 200)
    with pytest.raises(PacketError) as e:
        feed(splitter, wire[:4])  # the length is known before the body arrived
    assert e.value.reason == PACKET_TOO_LARGE


def test_the_good_packets_before_a_bad_one_are_returned_with_the_error():
    packets, error = PacketSplitter(1024).feed(
        publish("a/b", b"1") + b"\xf0\x00" + publish("a/c", b"2")
    )
    assert [p.variable_header.topic_name for p in packets] == ["a/b"]
    assert error.reason == MALFORMED_PACKET


@pytest.mark.parametrize(
    "wire",
    [
        b"\xf0\x00",  # reserved packet type 15
        b"\x00\x00",  # reserved packet type 0
        b"\x30\xff\xff\xff\xff\x7f",  # remaining length of 5 bytes
        b"\x36" + publish("a/b", b"x")[1:],  # PUBLISH with QoS 3
        b"\x32\x03\x00\x05a",  # topic longer than the packet
        b"\x32\x07\x00\x03a/#\x00\x01",  # wildcard in a PUBLISH topic
        b"\xc0\x01\x00",  # PINGREQ with a body
    ],
)
def test_malformed_packets_are_refused(wire):
    with pytest.raises(PacketError) as e:
        feed(PacketSplitter(1024), wire)
    assert e.value.reason == MALFORMED_PACKET


def test_repeated_headers_decode_as_amqtt_decodes_them():
    """Fixed headers are decoded once per distinct bytes and replayed; the packets must not
    differ from amqtt's own decoding (a fresh splitter per packet), whatever mixes of topics,
    QoS and lengths follow."""
    pieces = [
        publish(t, p, i, q)
        for i, (t, p, q) in enumerate(
            [
                ("a/b", b"1", 1),
                ("a/bc", b"22", 1),
                ("a/b", b"1", 1),
                ("a/b", b"x" * 300, 0),
                ("a/bc", b"22", 1),
                ("a/b", b"1", 0),
                ("a/b", b"333", 1),
            ]
            * 3,
            start=1,
        )
    ] + [stream(), stream()]
    splitter = PacketSplitter(1024)
    got = feed(splitter, b"".join(pieces))
    want = [p for piece in pieces for p in feed(PacketSplitter(1024), piece)]
    assert summary(got) == summary(want)
    assert [(p.fixed_header.flags, p.fixed_header.remaining_length) for p in got] == [
        (p.fixed_header.flags, p.fixed_header.remaining_length) for p in want
    ]
    got[0].fixed_header.flags |= 0x08  # amqtt sets DUP on a packet it re-sends
    assert feed(splitter, publish("a/b", b"1", 9))[0].fixed_header.flags == 0x02


def amqtt_decoded(wire: bytes) -> PublishPacket:
    """amqtt's own decoding of one whole packet (its generic decoder, every field awaited)."""
    reader = _Chunk(wire)
    packet = _run(PublishPacket.from_stream(reader))
    assert reader.pos == len(wire)
    return packet


def test_publishes_split_without_amqtt_come_out_as_amqtt_decodes_them():
    """QoS 0/1 PUBLISHes are split by hand (no coroutine per field): the same topic, packet
    id, payload, flags and length as amqtt's decoders give, for all sizes of remaining
    length, non-ASCII topics and DUP/RETAIN flags, whole or split anywhere."""
    rng = random.Random(16)
    topics = ["a", "atoll/v1/devices/sim-00001/telemetry", "é/ü/✓", "x" * 300, "a/ b"]
    wires = []
    for k in range(200):
        qos = k % 2
        size = rng.choice([0, 1, 100, 127 - 9, 128, 2000, 16_383, 16_384, 70_000])
        packet = PublishPacket.build(
            rng.choice(topics),
            rng.randbytes(size),
            rng.randrange(65536) if qos else None,
            rng.random() < 0.3,  # DUP
            qos,
            rng.random() < 0.3,  # RETAIN
        )
        wires.append(packet.to_bytes())
    want = [amqtt_decoded(w) for w in wires]
    limit = 1 << 20
    got = feed(PacketSplitter(limit), b"".join(wires))
    splitter, pieces = PacketSplitter(limit), b"".join(wires)
    cut = []
    for i in range(0, len(pieces), 997):
        cut += feed(splitter, pieces[i : i + 997])
    for packets in (got, cut):
        assert summary(packets) == summary(want)
        assert [(p.fixed_header.flags, p.fixed_header.remaining_length) for p in packets] == [
            (p.fixed_header.flags, p.fixed_header.remaining_length) for p in want
        ]
        assert all(type(p.payload.data) is bytes for p in packets)


@pytest.mark.parametrize(
    "wire",
    [
        b"\x32\x09\x00\x03a\xffb\x00\x01xy",  # ill-formed UTF-8 in the topic
        b"\x30\x05\x00\x03a\x00b",  # U+0000 in the topic
        b"\x30\x05\x00\x03a/+",  # wildcard, QoS 0
        b"\x32\x05\x00\x03a/b",  # QoS 1 without room for its packet id
        b"\x32\x01\x00",  # shorter than a topic length
        b"\x30\x02\x00\x00",  # empty topic
    ],
)
def test_publishes_amqtt_would_refuse_are_still_refused(wire):
    with pytest.raises(PacketError) as e:
        feed(PacketSplitter(1024), wire)
    assert e.value.reason == MALFORMED_PACKET


def test_a_short_packet_alone_at_the_end_of_a_chunk_is_not_held_back():
    """A device whose PUBLISH headers take 3 bytes, idle but for its pings: its second PINGREQ
    (2 bytes, alone in its chunk) was looked up as a 3-byte header, matched the first PINGREQ's
    and waited for a third byte that never came, so the broker never answered it and the
    client's keep-alive closed the connection."""
    splitter = PacketSplitter(1024)
    assert len(feed(splitter, publish("a/b", b"x" * 200))) == 1  # remaining length: 2 bytes
    ping = PingReqPacket().to_bytes()
    for _ in range(3):
        assert summary(feed(splitter, ping)) == [(PINGREQ, None, None, None)]
        assert splitter.buffered == 0
    assert [p.fixed_header.packet_type for p in feed(splitter, ping + ping)] == [PINGREQ] * 2


def test_a_bad_header_is_refused_after_good_ones_were_replayed():
    splitter = PacketSplitter(1024)
    feed(splitter, publish("a/b", b"1") * 3)
    packets, error = splitter.feed(publish("a/b", b"1") + b"\x30\xff\xff\xff\xff\x7f")
    assert len(packets) == 1 and error.reason == MALFORMED_PACKET


def _paho_connect(**kw) -> bytes:
    """The CONNECT paho sends, as the broker would receive it."""
    import socket
    import threading

    import paho.mqtt.client as mqtt

    server = socket.create_server(("127.0.0.1", 0))
    got = []
    accepted = threading.Thread(target=lambda: got.append(server.accept()[0].recv(65536)))
    accepted.start()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=kw.pop("client_id", ""),
        clean_session=kw.pop("clean_session", True),
    )
    c.username_pw_set("d1", "sécret")
    if kw.get("will"):
        c.will_set("atoll/v1/devices/d1/twin/reported", b'{"online": false}', qos=1, retain=True)
    c.connect("127.0.0.1", server.getsockname()[1], 60)
    accepted.join(5)
    c.socket().close()
    server.close()
    return got[0]


@pytest.mark.parametrize(
    "kw", [{}, {"client_id": "d1", "clean_session": False}, {"client_id": "d1:x", "will": True}]
)
def test_check_connect_accepts_what_clients_send(kw):
    wire = _paho_connect(**kw)
    reader = _Chunk(wire)
    header = _run(MQTTFixedHeader.from_stream(reader))
    packet = check_connect(header, wire[reader.pos :])
    assert packet.payload.username == "d1" and packet.payload.password == "sécret"


@pytest.mark.parametrize(
    "body_change",
    [lambda b: b + b"\x00", lambda b: b[:-1], lambda b: b.replace(b"d1", b"\xc3\x28")],
)
def test_check_connect_refuses_a_connect_that_does_not_encode_back(body_change):
    wire = _paho_connect(client_id="d1")
    reader = _Chunk(wire)
    header = _run(MQTTFixedHeader.from_stream(reader))
    body = body_change(wire[reader.pos :])
    header.remaining_length = len(body)
    with pytest.raises(PacketError) as e:
        check_connect(header, body)
    assert e.value.reason == MALFORMED_PACKET
