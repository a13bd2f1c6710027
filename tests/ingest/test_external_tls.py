"""Atoll attaches to an external Mosquitto over TLS (mqtts://), verifying the broker's CA."""

import asyncio
import socket
import time

import pytest
import trustme

from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.points import SeriesKey
from atoll.platform import Platform
from tests.ingest.conftest import FAST_HASHER, close
from tests.ingest.test_external import (
    END,
    Broker,
    connect_when_ready,
    free_port,
    publish_all,
    wait_for,
)


@pytest.fixture
def tls_broker(tmp_path):
    """Mosquitto with a plain listener (devices) and a TLS one (Atoll), certificate by a test CA."""
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(pki / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(pki / "key.pem"))
    (pki / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    tls_port = free_port()
    b = Broker(
        tmp_path,
        extra=f"listener {tls_port} 127.0.0.1\ncertfile {pki / 'cert.pem'}\n"
        f"keyfile {pki / 'key.pem'}\n",
    )
    b.tls_port, b.ca = tls_port, pki / "ca.pem"
    b.tls_url = f"mqtts://atoll-ingest:{b.password}@127.0.0.1:{tls_port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # Broker waited for the plain listener only
        try:
            socket.create_connection(("127.0.0.1", tls_port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield b
    b.stop()


async def test_ingest_workers_reach_the_broker_over_tls(tls_broker, tmp_path):
    b = tls_broker
    settings = b.settings(tmp_path / "home", services=[]).model_copy(
        update={"mqtt_url": b.tls_url, "mqtt_ca_file": b.ca}
    )
    p = Platform(settings, password_hasher=FAST_HASHER)
    await p.start()
    try:
        assert p.mqtt.url == f"mqtts://127.0.0.1:{b.tls_port}"
        p.registry.create_project("default", "Lab", project_id="lab")
        _, creds = p.registry.register_device("lab", device_id="e1")
        c = await connect_when_ready(b.port, "e1", creds.secret)
        await asyncio.to_thread(
            publish_all,
            c,
            topics.telemetry("e1"),
            [b'{"values": {"v": %d}}' % i for i in range(100)],
        )
        await asyncio.to_thread(close, c)
        key = SeriesKey("lab", "e1", "v")
        assert await wait_for(lambda: len(p.store.query_raw(key, 0, END).ts) == 100)
    finally:
        await p.stop()


async def test_a_broker_certificate_atoll_cannot_verify_is_refused_with_the_fix(
    tls_broker, tmp_path
):
    b = tls_broker
    settings = b.settings(tmp_path / "home", services=[]).model_copy(update={"mqtt_url": b.tls_url})
    p = Platform(settings, password_hasher=FAST_HASHER)
    with pytest.raises(Unavailable) as e:
        await p.start()
    assert "no TLS connection to the MQTT broker" in e.value.message
    assert "ATOLL_MQTT_CA_FILE" in e.value.hint
    # The failed start let go of the node name: fixed, the same node starts.
    p = Platform(settings.model_copy(update={"mqtt_ca_file": b.ca}), password_hasher=FAST_HASHER)
    await p.start()
    await p.stop()


async def test_embedded_listener_flags_with_an_external_broker_say_where_tls_goes(
    tls_broker, tmp_path
):
    settings = tls_broker.settings(tmp_path / "home", services=[], mqtt_ws_port=0)
    with pytest.raises(InvalidInput) as e:
        await Platform(settings, password_hasher=FAST_HASHER).start()
    assert e.value.message.startswith("--mqtt-ws-port: listeners of the embedded broker")
    assert "mosquitto.conf" in e.value.hint
