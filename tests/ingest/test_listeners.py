"""The embedded broker over TLS, WebSockets and secure WebSockets, with a CA made by the test."""

import asyncio
import signal
import socket
import ssl
import subprocess
import sys

import httpx
import pytest
import trustme

from atoll.config import Settings
from atoll.core import topics
from atoll.core.errors import AtollError, InvalidInput, Unavailable
from atoll.core.points import SeriesKey
from atoll.ingest.listeners import listeners
from atoll.platform import Platform
from tests.ingest.conftest import CLIMATE, FAST_HASHER, close, connect
from tests.ingest.test_durability import start

END = 2**62
TRANSPORTS = ("tls", "ws", "wss")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, and a certificate it signed for 127.0.0.1 with its key, as PEM files."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    (d / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return {"ca": d / "ca.pem", "cert": d / "cert.pem", "key": d / "key.pem", "dir": d}


def client(transport: str, port: int, user: str, password: str, ca=None, client_id=None):
    """A paho client over ``transport``, connected with its loop running, and the CONNACK code."""
    return connect(
        port, user, password, client_id=client_id or user, timeout=10, transport=transport, ca=ca
    )


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops ``atoll up``; killed if it has not stopped after 30 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
async def platform(tmp_path, pki):
    settings = Settings(
        home=tmp_path / "home",
        http_port=0,
        mqtt_port=0,
        services=[],
        mqtt_tls_port=0,
        mqtt_ws_port=0,
        mqtt_wss_port=0,
        tls_cert=pki["cert"],
        tls_key=pki["key"],
    )
    p = Platform(settings, password_hasher=FAST_HASHER)
    await p.start()
    p.registry.create_project("default", "Lab", project_id="lab")
    p.registry.create_device_type("lab", "climate", CLIMATE)
    try:
        yield p
    finally:
        await p.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_device_auth_acls_and_durable_pubacks_on_every_listener(platform, pki, transport):
    reg = platform.registry
    _, creds = reg.register_device("lab", device_id="d1", device_type="climate")
    reg.register_device("lab", device_id="d2", device_type="climate")
    port = platform.mqtt.ports[transport]

    c, rc = await asyncio.to_thread(client, transport, port, "d1", "wrong", pki["ca"])
    assert rc is not None and rc.is_failure
    await asyncio.to_thread(close, c)

    c, rc = await asyncio.to_thread(client, transport, port, "d1", creds.secret, pki["ca"])
    assert rc is not None and not rc.is_failure

    def publish(topic, payloads):
        infos = [c.publish(topic, p, qos=1) for p in payloads]
        for i in infos:
            i.wait_for_publish(10)
        return all(i.is_published() for i in infos)

    values = [i / 4 for i in range(200)]
    payloads = [b'{"values": {"temperature": %r}}' % v for v in values]
    assert await asyncio.to_thread(publish, topics.telemetry("d1"), payloads)
    # Every PUBACK came after the store append: all 200 are there, without waiting.
    key = SeriesKey("lab", "d1", "temperature")
    assert sorted(platform.store.query_raw(key, 0, END).value.tolist()) == values
    # Another device's topic: acknowledged (MQTT 3.1.1 cannot refuse), counted, not stored.
    assert await asyncio.to_thread(
        publish, topics.telemetry("d2"), [b'{"values": {"temperature": 5}}']
    )
    await platform.pipeline.flush_counters()
    reg.flush_rejections()
    assert {r.reason: r.count for r in reg.rejections("d1")} == {"auth_failed": 1, "acl_publish": 1}
    assert platform.store.query_raw(SeriesKey("lab", "d2", "temperature"), 0, END).ts.size == 0
    await asyncio.to_thread(close, c)


@pytest.mark.parametrize("transport", ["tls", "wss"])
async def test_tls_listeners_present_the_configured_certificate(platform, pki, transport):
    _, creds = platform.registry.register_device("lab", device_id="d1")
    port = platform.mqtt.ports[transport]
    # Not signed by a CA the client trusts: the handshake fails, nothing is sent in clear.
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(client, transport, port, "d1", creds.secret, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tls_misconfiguration_is_refused_with_the_fix(pki, tmp_path):
    def error(**kw) -> AtollError:
        with pytest.raises(AtollError) as e:
            listeners(Settings(home=tmp_path, mqtt_port=0, **kw))
        return e.value

    e = error(mqtt_tls_port=0)
    assert isinstance(e, InvalidInput) and "needs a certificate" in e.message
    assert "--tls-cert" in e.hint and "--tls-key" in e.hint
    e = error(mqtt_wss_port=0, tls_cert=tmp_path / "nope.pem", tls_key=pki["key"])
    assert e.message == f"TLS certificate file {tmp_path / 'nope.pem'} does not exist"
    assert "--tls-cert" in e.hint
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    e = error(mqtt_tls_port=0, tls_cert=pki["cert"], tls_key=tmp_path / "other-key.pem")
    assert "cannot use the TLS certificate" in e.message and "KEY_VALUES_MISMATCH" in e.message
    port = free_port()
    e = error(mqtt_ws_port=port, mqtt_wss_port=port, tls_cert=pki["cert"], tls_key=pki["key"])
    assert "--mqtt-ws-port and --mqtt-wss-port" in e.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        e = error(mqtt_tls_port=taken, tls_cert=pki["cert"], tls_key=pki["key"])
        assert isinstance(e, Unavailable)
        assert e.message == f"MQTT over TLS port {taken} on 127.0.0.1 is already in use"
        assert "--mqtt-tls-port" in e.hint
    assert listeners(Settings(home=tmp_path)) == {}


def test_atoll_up_with_a_missing_certificate_says_how_to_fix_it(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "atoll.cli.main",
            "up",
            "--home",
            str(tmp_path),
            "--http-port",
            "0",
            "--mqtt-port",
            "0",
            "--mqtt-tls-port",
            "0",
            "--tls-cert",
            str(tmp_path / "missing.pem"),
            "--tls-key",
            str(tmp_path / "missing.key"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"error: TLS certificate file {tmp_path / 'missing.pem'} does not exist" in r.stderr
    assert "hint: pass --tls-cert FILE" in r.stderr


def test_atoll_up_serves_mqtt_over_tls_and_websockets(tmp_path, pki):
    home = tmp_path / "home"
    proc, info = start(
        home,
        "--mqtt-tls-port",
        "0",
        "--mqtt-ws-port",
        "0",
        "--mqtt-wss-port",
        "0",
        "--tls-cert",
        str(pki["cert"]),
        "--tls-key",
        str(pki["key"]),
        env={"ATOLL_SERVICES": "[]"},
    )
    try:
        urls = info["mqtt_listeners"]
        assert set(urls) == set(TRANSPORTS)
        assert urls["tls"].startswith("mqtts://127.0.0.1:")
        assert urls["ws"].startswith("ws://127.0.0.1:") and urls["ws"].endswith("/mqtt")
        api = httpx.Client(
            base_url=info["http_url"] + "/api/v1",
            headers={"Authorization": f"Bearer {info['key']}"},
            timeout=30,
        )
        assert api.post("/projects", json={"name": "Lab", "id": "lab"}).status_code == 201
        for n, transport in enumerate(TRANSPORTS):
            device = f"k{n}"
            secret = api.post("/projects/lab/devices", json={"id": device}).json()["credentials"][
                "secret"
            ]
            port = int(urls[transport].split(":")[2].split("/")[0])
            c, rc = client(transport, port, device, secret, pki["ca"])
            assert rc is not None and not rc.is_failure, transport
            info_ = c.publish(topics.telemetry(device), b'{"values": {"v": %d}}' % n, qos=1)
            info_.wait_for_publish(10)
            assert info_.is_published(), transport
            close(c)
            r = api.get(f"/devices/{device}/series/v", params={"start": 0, "mode": "raw"})
            assert r.status_code == 200 and r.json()["value"] == [n], (transport, r.text)
    finally:
        stop(proc)
