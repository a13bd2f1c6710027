"""A real browser (headless Chromium) publishes telemetry over MQTT over WebSockets.

The page uses the browser's own ``WebSocket`` with the ``mqtt`` subprotocol and writes MQTT
3.1.1 packets by hand, so no JavaScript MQTT library is needed on the test machine.
"""

import base64
import hashlib
import shutil
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.ingest.test_durability import start
from tests.ingest.test_listeners import pki, stop  # noqa: F401 - pki is a fixture
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

PUBLISH_FROM_PAGE = """
async ({url, device, secret, topic, payload}) => {
  const enc = new TextEncoder();
  const str = (s) => { const b = enc.encode(s); return [b.length >> 8, b.length & 255, ...b]; };
  const packet = (first, body) => {
    const out = [first];
    let n = body.length;
    do { let d = n % 128; n = Math.floor(n / 128); out.push(n > 0 ? d | 128 : d); } while (n > 0);
    return new Uint8Array([...out, ...body]);
  };
  // CONNECT: MQTT 3.1.1, clean session, user name + password, keep-alive 60 s.
  const connect = packet(0x10, [...str("MQTT"), 4, 0xC2, 0, 60, ...str(device), ...str(device),
                                ...str(secret)]);
  const publish = packet(0x32, [...str(topic), 0, 7, ...enc.encode(payload)]);  // QoS 1, id 7
  const ws = new WebSocket(url, "mqtt");
  ws.binaryType = "arraybuffer";
  const got = [];
  return await new Promise((resolve) => {
    ws.onerror = () => resolve({error: "websocket error", got});
    ws.onmessage = (ev) => {
      got.push(...new Uint8Array(ev.data));
      if (got.length === 4) {
        if (got[3] !== 0) { resolve({protocol: ws.protocol, got}); return; }
        ws.send(publish);
      }
      if (got.length >= 8) { ws.close(); resolve({protocol: ws.protocol, got}); }
    };
    ws.onopen = () => ws.send(connect);
    setTimeout(() => resolve({error: "timeout", got}), 10000);
  });
}
"""
CONNACK_OK, PUBACK_7 = [0x20, 2, 0, 0], [0x40, 2, 0, 7]


def spki_sha256(cert_pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_a_browser_publishes_over_websockets_and_secure_websockets(tmp_path, pki):  # noqa: F811
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: `make system-deps` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    proc, info = start(
        tmp_path / "home",
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
        api = httpx.Client(
            base_url=info["http_url"] + "/api/v1",
            headers={"Authorization": f"Bearer {info['key']}"},
            timeout=30,
        )
        assert api.post("/projects", json={"name": "Lab", "id": "lab"}).status_code == 201
        secret = api.post("/projects/lab/devices", json={"id": "b1"}).json()["credentials"][
            "secret"
        ]
        # The test CA is not in Chromium's trust store: trust exactly the broker's key instead.
        pin = f"--ignore-certificate-errors-spki-list={spki_sha256(pki['cert'])}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, pin])
            try:
                page = browser.new_page()
                for n, name in enumerate(("ws", "wss")):
                    args = {
                        "url": info["mqtt_listeners"][name],
                        "device": "b1",
                        "secret": secret,
                        "topic": "atoll/v1/devices/b1/telemetry",
                        "payload": f'{{"values": {{"v": {n}}}}}',
                    }
                    out = page.evaluate(PUBLISH_FROM_PAGE, args)
                    assert out.get("protocol") == "mqtt", (name, out)
                    assert out["got"] == CONNACK_OK + PUBACK_7, (name, out)
                    # The PUBACK came after the store: the reading is there already.
                    r = api.get("/devices/b1/series/v", params={"start": 0, "mode": "raw"})
                    assert r.json()["value"] == list(range(n + 1)), (name, r.text)
                wrong = page.evaluate(PUBLISH_FROM_PAGE, {**args, "secret": "wrong"})
                assert wrong["got"][:3] == [0x20, 2, 0] and wrong["got"][3] != 0, wrong
            finally:
                browser.close()
    finally:
        stop(proc)
