"""External broker mode against a real Mosquitto started on an ephemeral port for each test."""

import asyncio
import contextlib
import socket
import subprocess
import time

import pytest

from atoll.config import Settings
from atoll.core import topics
from atoll.core.errors import Unavailable
from atoll.core.points import SeriesKey
from atoll.ingest.external import new_admin_password, write_mosquitto_conf
from atoll.ingest.mosquitto_auth import MosquittoAuth
from atoll.platform import Platform
from atoll.sim.mosquitto import find_mosquitto
from tests.ingest.conftest import CLIMATE, FAST_HASHER, close, connect

END = 2**62


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, extra: str = ""):
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir()
        self.port = free_port()
        self.password = new_admin_password()
        self.files = {
            "password_file": self.dir / "passwd",
            "acl_file": self.dir / "acl",
            "pid_file": self.dir / "mosquitto.pid",
        }
        MosquittoAuth(
            self.files["password_file"], self.files["acl_file"], None, admin_password=self.password
        ).apply()
        conf = write_mosquitto_conf(
            self.dir / "mosquitto.conf", port=self.port, extra=extra, **self.files
        )
        self.log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [find_mosquitto()[0], "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def settings(self, home, **kw) -> Settings:
        return Settings(
            home=home,
            http_port=0,
            mqtt_mode="external",
            mqtt_url=f"mqtt://atoll-ingest:{self.password}@127.0.0.1:{self.port}",
            mosquitto_password_file=self.files["password_file"],
            mosquitto_acl_file=self.files["acl_file"],
            mosquitto_pid_file=self.files["pid_file"],
            **kw,
        )

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


@pytest.fixture
async def atoll(broker, tmp_path):
    p = Platform(broker.settings(tmp_path / "home"), password_hasher=FAST_HASHER)
    await p.start()
    reg = p.registry
    reg.create_project("default", "Lab", project_id="lab")
    reg.create_device_type("lab", "climate", CLIMATE)
    try:
        yield p
    finally:
        await p.stop()


async def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        await asyncio.sleep(0.05)
    return False


def stored(platform, device, metric="temperature"):
    return platform.store.query_raw(SeriesKey("lab", device, metric), 0, END).value.tolist()


def login(port, device, secret, client_id=None):
    """A connected device. Mosquitto reloads its password file on SIGHUP; allow it a moment."""
    for _ in range(50):
        c, rc = connect(port, device, secret, client_id or device, 3)
        if rc is not None and not rc.is_failure:
            return c
        close(c)
        time.sleep(0.1)
    raise AssertionError(f"{device} could not connect")


async def connect_when_ready(port, device, secret, client_id=None):
    return await asyncio.to_thread(login, port, device, secret, client_id)


def publish_all(client, topic, payloads, qos=1):
    infos = [client.publish(topic, p, qos=qos) for p in payloads]
    for i in infos:
        i.wait_for_publish(10)


async def test_devices_registered_in_atoll_can_publish_through_mosquitto(atoll, broker):
    _, creds = atoll.registry.register_device("lab", device_id="e1", device_type="climate")
    c = await connect_when_ready(broker.port, "e1", creds.secret)
    await asyncio.to_thread(
        publish_all,
        c,
        topics.telemetry("e1"),
        [b'{"values": {"temperature": %d}}' % i for i in range(300)],
    )
    assert await wait_for(lambda: len(stored(atoll, "e1")) == 300)
    assert sorted(stored(atoll, "e1")) == list(range(300))
    await asyncio.to_thread(close, c)


async def test_broker_enforces_credentials_and_acls(atoll, broker):
    reg = atoll.registry
    _, a = reg.register_device("lab", device_id="e1", device_type="climate")
    _, b = reg.register_device("lab", device_id="e2", device_type="climate")
    c1 = await connect_when_ready(broker.port, "e1", a.secret)
    _, rc = await asyncio.to_thread(connect, broker.port, "e1", "wrong", "x1")
    assert rc is not None and rc.is_failure
    # e1 writes into e2's topic: the broker drops it; e2's own message gets through.
    await asyncio.to_thread(
        publish_all, c1, topics.telemetry("e2"), [b'{"values": {"temperature": 66}}']
    )
    c2 = await connect_when_ready(broker.port, "e2", b.secret)
    await asyncio.to_thread(
        publish_all, c2, topics.telemetry("e2"), [b'{"values": {"temperature": 1}}']
    )
    assert await wait_for(lambda: stored(atoll, "e2") == [1.0])
    await asyncio.sleep(0.3)
    assert stored(atoll, "e2") == [1.0]
    # Revoked and disabled devices cannot connect any more.
    reg.revoke_credentials("e1")
    reg.disable_device("e2")
    await asyncio.sleep(0.5)
    for dev, secret in (("e1", a.secret), ("e2", b.secret)):
        _, rc = await asyncio.to_thread(connect, broker.port, dev, secret, dev + ":again")
        assert rc is not None and rc.is_failure, dev
    # Enabled again: the parked hash comes back, no new secret needed.
    reg.disable_device("e2", disabled=False)
    c3 = await connect_when_ready(broker.port, "e2", b.secret, "e2:back")
    for c in (c1, c2, c3):
        await asyncio.to_thread(close, c)


async def test_bad_payloads_are_counted_per_device(atoll, broker):
    _, creds = atoll.registry.register_device("lab", device_id="e1", device_type="climate")
    c = await connect_when_ready(broker.port, "e1", creds.secret)
    await asyncio.to_thread(
        publish_all,
        c,
        topics.telemetry("e1"),
        [b"{oops", b'{"values": {"pressure": 1}}', b'{"values": {"temperature": 2}}'],
    )
    assert await wait_for(lambda: stored(atoll, "e1") == [2.0])
    await atoll.pipeline.flush_counters()
    atoll.registry.flush_rejections()
    got = {r.reason: r.count for r in atoll.registry.rejections("e1")}
    assert got == {"malformed_json": 1, "unknown_series": 1}
    await asyncio.to_thread(close, c)


async def test_messages_sent_while_atoll_is_down_arrive_after_restart(broker, tmp_path):
    home = tmp_path / "home"
    p = Platform(broker.settings(home, mqtt_workers=3), password_hasher=FAST_HASHER)
    await p.start()
    p.registry.create_project("default", "Lab", project_id="lab")
    _, creds = p.registry.register_device("lab", device_id="e1")
    await p.stop()  # the workers' persistent sessions stay subscribed in the broker
    c = await connect_when_ready(broker.port, "e1", creds.secret)
    await asyncio.to_thread(
        publish_all, c, topics.telemetry("e1"), [b'{"values": {"v": %d}}' % i for i in range(500)]
    )
    await asyncio.to_thread(close, c)
    p2 = Platform(broker.settings(home, mqtt_workers=3), password_hasher=FAST_HASHER)
    await p2.start()
    try:
        key = SeriesKey("lab", "e1", "v")
        assert await wait_for(lambda: len(p2.store.query_raw(key, 0, END).ts) >= 500)
        await asyncio.sleep(0.3)
        # Shared by three workers, each message is stored exactly once.
        assert sorted(p2.store.query_raw(key, 0, END).value.tolist()) == list(range(500))
    finally:
        await p2.stop()


def test_external_mode_loses_nothing_the_broker_accepted_across_kill_9(broker, tmp_path):
    """Atoll acks the broker only after storing, so killing it mid-backlog loses nothing."""
    import os
    import signal

    import httpx

    from tests.ingest.test_durability import start

    home = tmp_path / "home"
    args = [
        "--mqtt",
        "external",
        "--mqtt-url",
        f"mqtt://atoll-ingest:{broker.password}@127.0.0.1:{broker.port}",
    ]
    env = {
        "ATOLL_MOSQUITTO_PASSWORD_FILE": str(broker.files["password_file"]),
        "ATOLL_MOSQUITTO_ACL_FILE": str(broker.files["acl_file"]),
        "ATOLL_MOSQUITTO_PID_FILE": str(broker.files["pid_file"]),
        "ATOLL_MQTT_WORKERS": "2",
    }

    def values(api) -> list[float]:
        r = api.get("/devices/k1/series/v", params={"start": 0, "mode": "raw"})
        return r.json()["value"] if r.status_code == 200 else []

    # 1. First start: register the device; the workers' sessions subscribe. Then Atoll dies.
    proc, info = start(home, *args, env=env)
    headers = {"Authorization": f"Bearer {info['key']}"}
    try:
        api = httpx.Client(base_url=info["http_url"] + "/api/v1", headers=headers, timeout=30)
        assert api.post("/projects", json={"name": "Lab", "id": "lab"}).status_code == 201
        secret = api.post("/projects/lab/devices", json={"id": "k1"}).json()["credentials"][
            "secret"
        ]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # 2. While Atoll is down the broker queues a backlog for the workers' persistent sessions.
    c = login(broker.port, "k1", secret)
    n = 20_000
    infos = [
        c.publish(topics.telemetry("k1"), b'{"values": {"v": %d}}' % i, qos=1) for i in range(n)
    ]
    for i in infos:
        i.wait_for_publish(60)
    close(c)
    # 3. Atoll works through the backlog (1000 unacknowledged in flight) and is killed midway;
    #    small group commits make the backlog outlast the start-up.
    proc, info = start(home, *args, env={**env, "ATOLL_MAX_COMMIT_POINTS": "20"})
    try:
        api = httpx.Client(base_url=info["http_url"] + "/api/v1", headers=headers, timeout=30)
        while not (got := values(api)):
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert len(got) < n, "the kill should land mid-backlog"
    # 4. After a restart every message the broker accepted is stored.
    proc, info = start(home, *args, env=env)
    try:
        api = httpx.Client(base_url=info["http_url"] + "/api/v1", headers=headers, timeout=30)
        deadline = time.monotonic() + 90
        while len(stored := {int(v) for v in values(api)}) < n and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stored == set(range(n)), f"{n - len(stored)} of {n} messages lost"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_ingest_resumes_by_itself_after_a_store_outage(broker, tmp_path):
    """PostgreSQL (store and registry) stops while devices publish through Mosquitto: nothing
    is acknowledged to the broker, and what it accepted meanwhile is stored once the database
    is back, with no restart of Atoll (or the broker). That includes a device whose identity
    was not cached, so its lookup failed too."""
    from atoll.testing.postgres import PostgresServer

    with PostgresServer() as pg:
        p = Platform(
            broker.settings(tmp_path / "home", store_url=pg.url, registry_url=pg.url),
            password_hasher=FAST_HASHER,
        )
        await p.start()
        try:
            p.registry.create_project("default", "Lab", project_id="lab")
            _, creds = p.registry.register_device("lab", device_id="e1")
            _, creds2 = p.registry.register_device("lab", device_id="e2")
            key = SeriesKey("lab", "e1", "v")
            c = await connect_when_ready(broker.port, "e1", creds.secret)
            c2 = await connect_when_ready(broker.port, "e2", creds2.secret)
            msgs = [b'{"values": {"v": %d}}' % i for i in range(300)]
            await asyncio.to_thread(publish_all, c, topics.telemetry("e1"), msgs[:100])
            assert await wait_for(lambda: len(p.store.query_raw(key, 0, END).ts) == 100)
            await asyncio.to_thread(pg.stop)
            await asyncio.to_thread(publish_all, c, topics.telemetry("e1"), msgs[100:200])
            await asyncio.to_thread(publish_all, c2, topics.telemetry("e2"), msgs[:10])
            await asyncio.sleep(1)  # they reach ingest, which cannot store them
            await asyncio.to_thread(pg.start)
            await asyncio.to_thread(publish_all, c, topics.telemetry("e1"), msgs[200:])

            def count() -> int:
                try:
                    return len(p.store.query_raw(key, 0, END).ts)
                except Unavailable:
                    return -1

            assert await wait_for(lambda: count() >= 300, timeout=30)
            key2 = SeriesKey("lab", "e2", "v")
            assert await wait_for(lambda: len(p.store.query_raw(key2, 0, END).ts) >= 10)
            await asyncio.sleep(0.3)
            assert sorted(p.store.query_raw(key, 0, END).value.tolist()) == list(range(300))
            assert sorted(p.store.query_raw(key2, 0, END).value.tolist()) == list(range(10))
            await asyncio.to_thread(close, c)
            await asyncio.to_thread(close, c2)
        finally:
            await p.stop()


async def test_concurrent_messages_of_one_device_make_one_registry_lookup(tmp_path):
    """Messages of a device whose identity is not cached, arriving together (a burst after a
    restart), wait for one registry lookup instead of each making their own."""
    from atoll.ingest.external import ExternalIngest
    from atoll.ingest.pipeline import IngestPipeline
    from atoll.registry import Registry
    from atoll.store.memory import MemoryStore

    class CountingRegistry(Registry):
        lookups: dict[str, int]

        def device_identity(self, device_id):
            self.lookups[device_id] = self.lookups.get(device_id, 0) + 1
            return super().device_identity(device_id)

    reg = CountingRegistry.open(tmp_path, password_hasher=FAST_HASHER)
    reg.lookups = {}
    try:
        reg.bootstrap()
        reg.create_project("default", "Lab", project_id="lab")
        reg.register_device("lab", device_id="e1")
        ingest = ExternalIngest(IngestPipeline(MemoryStore()), reg, node_id="n1")
        asks = [ingest._identity(d) for _ in range(200) for d in ("e1", "ghost")]
        got = await asyncio.gather(*asks)
        assert {g.device for g in got[::2]} == {"e1"} and set(got[1::2]) == {None}
        assert reg.lookups == {"e1": 1, "ghost": 1}
        # Cached afterwards; forgetting the device (revoked, say) makes the next ask look again.
        await asyncio.gather(*(ingest._identity("e1") for _ in range(50)))
        assert reg.lookups["e1"] == 1
        ingest._identities.pop("e1")
        await asyncio.gather(*(ingest._identity("e1") for _ in range(50)))
        assert reg.lookups["e1"] == 2
    finally:
        reg.close()


async def test_devices_registered_in_a_batch_can_publish_through_mosquitto(atoll, broker):
    """``POST /projects/{p}/devices/batch`` (``register_devices``) gives every device its
    broker credentials, as single registration does."""
    done = atoll.registry.register_devices(
        "lab", [{"device_id": f"b{i}", "device_type": "climate"} for i in range(3)]
    )
    for dev, creds in done:
        c = await connect_when_ready(broker.port, dev.id, creds.secret)
        await asyncio.to_thread(
            publish_all, c, topics.telemetry(dev.id), [b'{"values": {"temperature": 5}}']
        )
        assert await wait_for(lambda d=dev.id: stored(atoll, d) == [5.0])
        await asyncio.to_thread(close, c)


async def test_paho_threads_wake_the_event_loop_once_per_burst_not_per_message(atoll, broker):
    """The workers' threads queue messages and wake the event loop once for what is queued
    (``hand_over``); before, every MQTT message cost its own ``call_soon_threadsafe``."""
    _, creds = atoll.registry.register_device("lab", device_id="w1", device_type="climate")
    c = await connect_when_ready(broker.port, "w1", creds.secret)
    n = 3000
    await asyncio.to_thread(
        publish_all,
        c,
        topics.telemetry("w1"),
        [b'{"values": {"temperature": %d}}' % (i % 50) for i in range(n)],
    )
    assert await wait_for(lambda: atoll.pipeline.stats.messages >= n, timeout=30)
    await asyncio.to_thread(close, c)
    received = sum(atoll.mqtt.received.values())
    assert received == n
    assert 0 < atoll.mqtt.wakeups < received / 2, (atoll.mqtt.wakeups, received)


async def test_an_unknown_device_is_looked_up_once_per_burst_and_not_remembered_for_long(tmp_path):
    """Negative caching: messages of a device the registry does not know make one lookup, and
    once the device exists (registered through another node, say) it is known here within
    ``UNKNOWN_TTL_S``, not after the 10 s a known identity is kept."""
    from atoll.ingest.external import UNKNOWN_TTL_S, ExternalIngest
    from atoll.ingest.pipeline import IngestPipeline
    from atoll.registry import Registry
    from atoll.store.memory import MemoryStore

    class CountingRegistry(Registry):
        lookups = 0

        def device_identity(self, device_id):
            self.lookups += 1
            return super().device_identity(device_id)

    reg = CountingRegistry.open(tmp_path, password_hasher=FAST_HASHER)
    try:
        reg.bootstrap()
        reg.create_project("default", "Lab", project_id="lab")
        ingest = ExternalIngest(IngestPipeline(MemoryStore()), reg, node_id="n1")
        assert set(await asyncio.gather(*(ingest._identity("late") for _ in range(100)))) == {None}
        assert await ingest._identity("late") is None
        assert reg.lookups == 1
        reg.register_device("lab", device_id="late")
        await asyncio.sleep(UNKNOWN_TTL_S + 0.1)
        got = await ingest._identity("late")
        assert got is not None and got.device == "late"
        assert reg.lookups == 2
    finally:
        reg.close()


async def test_a_nats_outage_costs_external_ingest_no_event_and_no_duplicate(broker, tmp_path):
    """NATS stops while devices publish through Mosquitto (readings without ``ts``, stamped by
    Atoll): nothing is acknowledged to the broker until its telemetry event is on the bus, and
    once NATS is back every message is stored once and on the bus, with no restart. A message
    stored before its event failed waits for the outbox instead of being handed in again,
    which would store its reading a second time under a new stamp."""
    import nats

    from atoll.ingest.events import decode_telemetry
    from atoll.testing.nats_server import NatsServer

    server = NatsServer(tmp_path / "nats").start()
    p = Platform(
        broker.settings(
            tmp_path / "home", bus_url=f"{server.url}?timeout=1&stream=EXT", services=[]
        ),
        password_hasher=FAST_HASHER,
    )
    await p.start()
    try:
        p.registry.create_project("default", "Lab", project_id="lab")
        _, creds = p.registry.register_device("lab", device_id="n1")
        key = SeriesKey("lab", "n1", "v")
        c = await connect_when_ready(broker.port, "n1", creds.secret)
        msgs = [b'{"values": {"v": %d}}' % i for i in range(300)]
        await asyncio.to_thread(publish_all, c, topics.telemetry("n1"), msgs[:100])
        assert await wait_for(lambda: len(p.store.query_raw(key, 0, END).ts) == 100)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(publish_all, c, topics.telemetry("n1"), msgs[100:200])
        await asyncio.sleep(2)  # they reach ingest; the bus refuses their events
        held = sum(w.inflight for w in p.mqtt._workers)
        assert held == 100, f"{100 - held} acknowledged to the broker while NATS was down"
        await asyncio.to_thread(server.restart)
        await asyncio.to_thread(publish_all, c, topics.telemetry("n1"), msgs[200:])
        assert await wait_for(lambda: len(p.store.query_raw(key, 0, END).ts) >= 300, 30)
        assert await wait_for(lambda: not any(w.inflight for w in p.mqtt._workers), 30)
        await asyncio.sleep(0.3)
        assert sorted(p.store.query_raw(key, 0, END).value.tolist()) == list(range(300))
        await asyncio.to_thread(close, c)
        nc = await nats.connect(server.url)
        try:
            sub = await nc.jetstream().subscribe("telemetry.>", stream="EXT", ordered_consumer=True)
            on_bus: set[float] = set()
            end = time.monotonic() + 10
            while time.monotonic() < end and len(on_bus) < 300:
                with contextlib.suppress(TimeoutError):
                    msg = await sub.next_msg(timeout=1)
                    on_bus.update(decode_telemetry(msg.data).value.tolist())
            assert on_bus == set(range(300)), f"{300 - len(on_bus)} readings not on the bus"
        finally:
            await nc.close()
    finally:
        await p.stop()
        server.stop()
