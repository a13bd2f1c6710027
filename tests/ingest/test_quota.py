"""Rate limits (``atoll.ingest.quota``) on every ingest path: a real platform, the embedded
broker over TCP and WebSockets, a real Mosquitto in external mode, and real HTTP.

Limits are small (100 points/s) so that a few hundred messages take seconds when limited and
a fraction of a second when not; the assertions are lower bounds on the limited sender's time
(load only makes it slower) and loose upper bounds on everyone else's.
"""

import asyncio
import time

import httpx
import pytest

from atoll.config import Settings
from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.platform import Platform
from tests.ingest.conftest import CLIMATE, FAST_HASHER, close, connect
from tests.ingest.test_external import Broker

END = 2**62
RATE = 100  # points per second, and the burst


B1 = "other~b1"


class Tenants:
    """A started platform with devices s1, s2 in tenant "default" and b1 in tenant "other"
    (stored in its namespace: ``B1`` is its id)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        reg = platform.registry
        reg.create_tenant("Other", "other")
        self.secrets = {}
        self.projects = {}
        for tenant, project, devices in (
            ("default", "lab", ("s1", "s2")),
            ("other", "lab-b", ("b1",)),
        ):
            pid = reg.create_project(tenant, project, project_id=project).id
            reg.create_device_type(pid, "climate", CLIMATE)
            for d in devices:
                device, creds = reg.register_device(pid, device_id=d, device_type="climate")
                assert device.id in (d, B1)
                self.secrets[device.id] = creds.secret
                self.projects[device.id] = pid

    def stored(self, device: str) -> list[float]:
        key = SeriesKey(self.projects[device], device, "temperature")
        return sorted(self.platform.store.query_raw(key, 0, END).value.tolist())

    async def rejections(self, device: str) -> dict[tuple[str, str], int]:
        await self.platform.pipeline.flush_counters()
        self.platform.registry.flush_rejections()
        return {(r.transport, r.reason): r.count for r in self.platform.registry.rejections(device)}


def limits(**kw) -> dict:
    return {
        "quota_device_rate": RATE,
        "quota_device_burst": RATE,
        "quota_tenant_rate": 0,
        "quota_tenant_burst": 0,
        **kw,
    }


@pytest.fixture
async def start(tmp_path):
    started = []

    async def _start(**settings) -> Tenants:
        s = Settings(home=tmp_path / "home", http_port=0, mqtt_port=0, services=[], **settings)
        p = Platform(s, password_hasher=FAST_HASHER)
        await p.start()
        started.append(p)
        return Tenants(p)

    yield _start
    for p in started:
        await p.stop()


def flood(port: int, device: str, secret: str, n: int, transport: str = "tcp") -> float:
    """Publish ``n`` QoS 1 readings as fast as paho can; seconds until the last PUBACK."""
    c, rc = connect(port, device, secret, client_id=device, transport=transport)
    assert rc is not None and not rc.is_failure
    t0 = time.monotonic()
    infos = [
        c.publish(topics.telemetry(device), b'{"values": {"temperature": %d}}' % i, qos=1)
        for i in range(n)
    ]
    for i in infos:
        i.wait_for_publish(60)
    elapsed = time.monotonic() - t0
    assert all(i.is_published() for i in infos)
    close(c)
    return elapsed


def trickle(port: int, device: str, secret: str, n: int) -> list[float]:
    """``n`` QoS 1 readings, one at a time; each one's PUBACK latency in seconds."""
    c, rc = connect(port, device, secret, client_id=device)
    assert rc is not None and not rc.is_failure
    latencies = []
    for i in range(n):
        t0 = time.monotonic()
        c.publish(
            topics.telemetry(device), b'{"values": {"temperature": %d}}' % i, qos=1
        ).wait_for_publish(30)
        latencies.append(time.monotonic() - t0)
        time.sleep(0.02)
    close(c)
    return latencies


async def test_embedded_mqtt_slows_a_device_over_its_rate_and_loses_nothing(start):
    t = await start(**limits())
    port = t.platform.mqtt.port
    flooding = asyncio.create_task(asyncio.to_thread(flood, port, "s1", t.secrets["s1"], 400))
    await asyncio.sleep(0.3)
    victim = await asyncio.to_thread(trickle, port, B1, t.secrets[B1], 20)
    elapsed = await flooding
    # 100 at once, then 100/s: at least 3 s for 400 (unlimited: well under a second).
    assert elapsed > 2.0, f"400 messages took only {elapsed:.2f} s"
    assert t.stored("s1") == list(range(400))  # nothing lost: TCP pushed back
    stats = t.platform.pipeline.stats
    assert stats.throttled >= 1 and stats.throttled_seconds > 1.5
    assert (await t.rejections("s1")).get(("mqtt", "throttled"), 0) >= 1
    # Another device, busy at the same time, is not slowed down.
    assert max(victim) < 1.5, victim
    assert t.stored(B1) == list(range(20))
    assert ("mqtt", "throttled") not in await t.rejections(B1)


async def test_a_tenant_limit_is_shared_by_its_devices_and_not_by_other_tenants(start):
    t = await start(**limits(quota_device_rate=0, quota_tenant_rate=RATE, quota_tenant_burst=RATE))
    port = t.platform.mqtt.port
    # Each device alone would be within... nothing: only the tenant is limited, 100 points/s.
    floods = [
        asyncio.create_task(asyncio.to_thread(flood, port, d, t.secrets[d], 200))
        for d in ("s1", "s2")
    ]
    await asyncio.sleep(0.3)
    victim = await asyncio.to_thread(trickle, port, B1, t.secrets[B1], 20)
    elapsed = await asyncio.gather(*floods)
    assert max(elapsed) > 2.0, elapsed  # 400 points of one tenant: at least 3 s
    assert t.stored("s1") == list(range(200)) and t.stored("s2") == list(range(200))
    # Tenant "other" has a bucket of its own.
    assert max(victim) < 1.5, victim
    assert ("mqtt", "throttled") not in await t.rejections(B1)


async def test_idle_connections_do_not_use_up_their_tenants_limit(start):
    t = await start(**limits(quota_device_rate=0, quota_tenant_rate=RATE, quota_tenant_burst=RATE))
    port = t.platform.mqtt.port
    reg = t.platform.registry
    idle = []
    for i in range(10):
        _, creds = reg.register_device("lab", device_id=f"idle-{i}", device_type="climate")
        idle.append(
            await asyncio.to_thread(connect, port, creds.device, creds.secret, creds.device)
        )
    try:
        # 80 points are within the tenant's burst of 100, however many devices are connected.
        assert await asyncio.to_thread(flood, port, "s1", t.secrets["s1"], 80) < 1.0
        assert ("mqtt", "throttled") not in await t.rejections("s1")
    finally:
        for c, _ in idle:
            await asyncio.to_thread(close, c)


async def test_a_tenant_override_replaces_the_default_limits(start):
    t = await start(**limits(quota_tenants={"other": {"device_rate": 0}}))
    port = t.platform.mqtt.port
    assert await asyncio.to_thread(flood, port, B1, t.secrets[B1], 400) < 2.0
    assert await asyncio.to_thread(flood, port, "s1", t.secrets["s1"], 300) > 1.0


async def test_websocket_connections_are_paused_too(start):
    t = await start(**limits(), mqtt_ws_port=0)
    port = t.platform.mqtt.ports["ws"]
    elapsed = await asyncio.to_thread(flood, port, "s1", t.secrets["s1"], 300, "ws")
    assert elapsed > 1.0, f"300 messages took only {elapsed:.2f} s"  # at least 2 s
    assert t.stored("s1") == list(range(300))
    assert (await t.rejections("s1")).get(("mqtt", "throttled"), 0) >= 1


async def test_http_answers_429_with_retry_after_and_a_reason(start):
    # 5 at once, then one every 2 s.
    t = await start(**limits(quota_device_rate=0.5, quota_device_burst=5))
    url = t.platform.http_url + "/api/v1/ingest/telemetry"
    async with httpx.AsyncClient(timeout=30) as http:

        async def post(device: str, value: int) -> httpx.Response:
            return await http.post(
                url, json={"values": {"temperature": value}}, auth=(device, t.secrets[device])
            )

        answers = [await post("s1", i) for i in range(8)]
        codes = [r.status_code for r in answers]
        assert codes[:5] == [200] * 5 and codes.count(200) <= 6 and 429 in codes, codes
        r = answers[codes.index(429)]
        assert 1 <= int(r.headers["retry-after"]) <= 2
        body = r.json()
        assert body["error"] == "rate_limited" and "rate limit" in body["message"], body
        # Other devices are not affected; after Retry-After the device may send again.
        assert (await post("s2", 1)).status_code == 200
        await asyncio.sleep(int(answers[-1].headers["retry-after"]) + 0.1)
        assert (await post("s1", 100)).status_code == 200
    accepted = [i for i, c in enumerate(codes) if c == 200]
    assert t.stored("s1") == [*accepted, 100]  # a 429 stores nothing
    assert (await t.rejections("s1")).get(("http", "rate_limited"), 0) == codes.count(429)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


async def test_external_mode_holds_a_device_over_its_rate_and_loses_nothing(broker, tmp_path):
    p = Platform(
        broker.settings(tmp_path / "home", services=[], **limits()), password_hasher=FAST_HASHER
    )
    await p.start()
    try:
        t = Tenants(p)
        secret = t.secrets["s1"]
        # Mosquitto reloads its password file on SIGHUP: wait until the device may log in.
        for _ in range(100):
            c, rc = await asyncio.to_thread(connect, broker.port, "s1", secret, "s1")
            await asyncio.to_thread(close, c)
            if rc is not None and not rc.is_failure:
                break
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await asyncio.to_thread(flood, broker.port, "s1", secret, 300)
        while len(t.stored("s1")) < 300 and time.monotonic() - t0 < 60:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        assert t.stored("s1") == list(range(300))  # held, not refused: nothing lost
        assert elapsed > 1.0, f"300 messages stored after only {elapsed:.2f} s"  # at least 2 s
        assert (await t.rejections("s1")).get(("mqtt", "throttled"), 0) >= 1
    finally:
        await p.stop()
