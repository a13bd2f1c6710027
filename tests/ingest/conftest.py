import threading

import paho.mqtt.client as mqtt
import pytest
from argon2 import PasswordHasher

from atoll.config import Settings
from atoll.platform import Platform

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CLIMATE = [
    {"name": "temperature", "unit": "°C", "min": -40, "max": 85},
    {"name": "humidity", "unit": "%", "min": 0, "max": 100},
    {"name": "door", "type": "bool"},
]


class Fleet:
    """A started platform plus a project with devices and their secrets."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.secrets: dict[str, str] = {}
        reg = platform.registry
        reg.create_project("default", "Lab", project_id="lab")
        reg.create_device_type("lab", "climate", CLIMATE)
        for d in ("s1", "s2", "s3"):
            _, creds = reg.register_device("lab", device_id=d, device_type="climate")
            self.secrets[d] = creds.secret

    @property
    def port(self) -> int:
        return self.platform.mqtt.port

    def connect(self, device: str, secret: str | None = None, client_id: str | None = None):
        return connect(
            self.port,
            device,
            self.secrets.get(device, "x") if secret is None else secret,
            client_id=device if client_id is None else client_id,
        )

    def rejections(self, device: str) -> dict[str, int]:
        self.platform.registry.flush_rejections()
        return {r.reason: r.count for r in self.platform.registry.rejections(device)}


def connect(
    port: int,
    user: str,
    password: str,
    client_id: str = "",
    timeout: float = 5.0,
    transport: str = "tcp",
    ca=None,
):
    """A connected paho client (loop running) and the CONNACK reason code (None: no CONNACK).

    ``transport`` is one of the embedded broker's listeners: tcp, tls, ws or wss; over tls and
    wss the broker's certificate is verified against ``ca``.
    """
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        transport="websockets" if transport in ("ws", "wss") else "tcp",
    )
    c.username_pw_set(user, password)
    c.max_inflight_messages_set(1000)
    if transport in ("tls", "wss"):
        c.tls_set(ca_certs=str(ca) if ca else None)
    done = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, rc, props):
        result["rc"] = rc
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    done.wait(timeout)
    return c, result.get("rc")


def close(client) -> None:
    client.disconnect()
    client.loop_stop()


@pytest.fixture
async def fleet(tmp_path):
    settings = Settings(home=tmp_path / "home", http_port=0, mqtt_port=0, services=[])
    platform = Platform(settings, password_hasher=FAST_HASHER)
    await platform.start()
    try:
        yield Fleet(platform)
    finally:
        await platform.stop()
