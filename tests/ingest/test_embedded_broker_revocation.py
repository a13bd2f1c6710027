"""Disable, revoke, rotate and delete over the REST API cut a device's live MQTT connection
before the call answers, and nothing published after it is acknowledged (embedded broker,
real paho client, real HTTP)."""

import asyncio
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest

from atoll.core import topics
from atoll.core.points import SeriesKey

END = 2**62

CHANGES = {
    "disable": ("PATCH", "/api/v1/devices/s1", {"disabled": True}),
    "revoke": ("DELETE", "/api/v1/devices/s1/credentials", None),
    "rotate": ("POST", "/api/v1/devices/s1/credentials/rotate", None),
    "delete": ("DELETE", "/api/v1/devices/s1", None),
}


class Publisher:
    """Publishes QoS 1 readings 0, 1, 2… as fast as PUBACKs allow (up to 20 in flight) and
    notes when each was sent and acknowledged, and when the connection was lost."""

    def __init__(self, port: int, secret: str, device: str = "s1") -> None:
        self.device = device
        self.sent: dict[int, float] = {}  # value -> time.monotonic() just before publish
        self.acked: dict[int, float] = {}
        self.disconnected_at: float | None = None
        self._mids: dict[int, int] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._room = threading.Semaphore(20)
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        c.username_pw_set(device, secret)
        c.reconnect_delay_set(60, 60)  # no reconnect during the test
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        assert connected.wait(10)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set() and self.disconnected_at is None:
            if not self._room.acquire(timeout=0.05):
                continue
            self.sent[i] = time.monotonic()
            # Not under our lock: paho calls on_publish holding its own.
            info = self.client.publish(
                topics.telemetry(self.device), b'{"values": {"temperature": %d}}' % i, qos=1
            )
            with self._lock:
                if info.mid in self._early:  # acknowledged before we got here
                    self._early.discard(info.mid)
                    self.acked[i] = time.monotonic()
                else:
                    self._mids[info.mid] = i
            i += 1

    def _on_publish(self, client, userdata, mid, rc, props) -> None:
        with self._lock:
            value = self._mids.pop(mid, None)
            if value is None:
                self._early.add(mid)
            else:
                self.acked[value] = time.monotonic()
        self._room.release()

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        self.disconnected_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


async def api(fleet, method: str, path: str, body):
    return await call(fleet.platform, method, path, body)


async def call(platform, method: str, path: str, body):
    key = platform.bootstrap.api_key
    async with httpx.AsyncClient(base_url=platform.http_url, timeout=30) as http:
        return await http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {key}"}
        )


@pytest.mark.parametrize("change", list(CHANGES))
async def test_registry_change_cuts_the_connection_and_nothing_later_is_acknowledged(fleet, change):
    pub = await asyncio.to_thread(Publisher, fleet.port, fleet.secrets["s1"])
    try:
        while len(pub.acked) < 200:  # the device is publishing and being acknowledged
            await asyncio.sleep(0.01)
        method, path, body = CHANGES[change]
        r = await api(fleet, method, path, body)
        returned = time.monotonic()
        assert r.status_code in (200, 204), r.text
        for _ in range(100):
            if pub.disconnected_at is not None:
                break
            await asyncio.sleep(0.02)
        assert pub.disconnected_at is not None, "still connected 2 s after the API call returned"
        assert pub.disconnected_at - returned < 1.0
        await asyncio.sleep(0.5)  # anything still on its way arrives
    finally:
        await asyncio.to_thread(pub.stop)
    late = [v for v, t in pub.sent.items() if t > returned and v in pub.acked]
    assert late == [], f"{len(late)} messages published after the {change} were acknowledged"
    await fleet.platform.pipeline.flush_counters()
    stored = set(
        fleet.platform.store.query_raw(SeriesKey("lab", "s1", "temperature"), 0, END)
        .value.astype(int)
        .tolist()
    )
    assert set(pub.acked) <= stored, "acknowledged but not stored"
    assert "s1" not in fleet.platform.mqtt.connected_devices()


async def test_a_cut_device_cannot_connect_again_with_its_old_secret(fleet):
    from tests.ingest.conftest import close

    c, rc = await asyncio.to_thread(fleet.connect, "s1")
    assert not rc.is_failure
    r = await api(fleet, *CHANGES["revoke"])
    assert r.status_code == 204
    await asyncio.to_thread(c.loop_stop)
    c2, rc2 = await asyncio.to_thread(fleet.connect, "s1")
    assert rc2 is not None and rc2.is_failure
    await asyncio.to_thread(close, c2)


async def test_deleting_a_project_cuts_its_devices_connections(fleet):
    pub = await asyncio.to_thread(Publisher, fleet.port, fleet.secrets["s1"])
    try:
        while len(pub.acked) < 200:
            await asyncio.sleep(0.01)
        r = await api(fleet, "DELETE", "/api/v1/projects/lab", None)
        returned = time.monotonic()
        assert r.status_code == 204, r.text
        for _ in range(100):
            if pub.disconnected_at is not None:
                break
            await asyncio.sleep(0.02)
        assert pub.disconnected_at is not None, "still connected 2 s after the project went"
        assert pub.disconnected_at - returned < 1.0
        await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(pub.stop)
    late = [v for v, t in pub.sent.items() if t > returned and v in pub.acked]
    assert late == [], f"{len(late)} messages published after the delete were acknowledged"
    assert "s1" not in fleet.platform.mqtt.connected_devices()
