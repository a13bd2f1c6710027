"""Several Atoll processes (nodes) on one external
Mosquitto, started by each test on a free port."""

import asyncio
import json
import os
import signal
import time

import httpx
import pytest

from atoll.core import topics
from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.points import SeriesKey
from atoll.ingest import external
from atoll.ingest.external import node_id
from atoll.platform import Platform
from tests.ingest.conftest import FAST_HASHER, close
from tests.ingest.test_durability import start
from tests.ingest.test_external import (
    END,
    Broker,
    connect_when_ready,
    login,
    publish_all,
    wait_for,
)
from tests.ingest.test_listeners import stop


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def telemetry(values) -> list[bytes]:
    return [b'{"values": {"v": %d}}' % i for i in values]


def test_node_id_is_kept_in_the_data_directory_and_differs_between_them(tmp_path):
    a = node_id(tmp_path / "a")
    assert node_id(tmp_path / "a") == a
    assert node_id(tmp_path / "b") != a
    assert json.loads((tmp_path / "a" / "mqtt-node.json").read_text())["node_id"] == a
    assert node_id(tmp_path / "c", "line-3.plc") == "line-3.plc"
    with pytest.raises(InvalidInput) as e:
        node_id(tmp_path / "c", "has space/and+wildcards")
    assert "ATOLL_MQTT_NODE_ID" in e.value.hint


async def test_a_second_process_with_the_same_node_id_is_refused_with_the_fix(broker, tmp_path):
    p1 = Platform(
        broker.settings(tmp_path / "a", mqtt_node_id="n1", services=[]), password_hasher=FAST_HASHER
    )
    await p1.start()
    try:
        p2 = Platform(
            broker.settings(tmp_path / "b", mqtt_node_id="n1", services=[]),
            password_hasher=FAST_HASHER,
        )
        with pytest.raises(Unavailable) as e:
            await p2.start()
        assert "as node 'n1'" in e.value.message
        assert "--home" in e.value.hint and "ATOLL_MQTT_NODE_ID" in e.value.hint
        assert p1.mqtt.client_ids == ["atoll-ingest-n1-0", "atoll-ingest-n1-1"]
        lock = p1.mqtt._claim.path
        assert lock.exists()
    finally:
        await p1.stop()
    assert not lock.exists()  # released, and no lock files pile up in the temp directory
    await p2.start()  # the name is free again
    await p2.stop()


async def test_a_node_name_used_on_two_machines_is_reported(broker, tmp_path, monkeypatch, caplog):
    p1 = Platform(
        broker.settings(tmp_path / "a", mqtt_node_id="n1", mqtt_workers=1, services=[]),
        password_hasher=FAST_HASHER,
    )
    await p1.start()
    try:
        # The lock file only sees this machine: pretend p2 runs on another one.
        monkeypatch.setattr(external, "claim_node", lambda url, node: None)
        p2 = Platform(
            broker.settings(
                tmp_path / "b",
                mqtt_node_id="n1",
                mqtt_workers=1,
                services=[],
                store_url="memory://",
            ),
            password_hasher=FAST_HASHER,
        )
        await p2.start()
        try:
            assert await wait_for(lambda: "uses the node name 'n1'" in caplog.text, timeout=30)
            assert "ATOLL_MQTT_NODE_ID" in caplog.text
        finally:
            await p2.stop()
    finally:
        await p1.stop()


async def test_a_node_restarted_with_fewer_or_no_workers_drains_then_deletes_their_sessions(
    broker, tmp_path
):
    home = tmp_path / "home"
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"  # shared with the other node below

    def node(h, workers: int) -> Platform:
        return Platform(
            broker.settings(h, mqtt_workers=workers, services=[], registry_url=registry),
            password_hasher=FAST_HASHER,
        )

    async def run(workers: int, until) -> None:
        p = node(home, workers)
        await p.start()
        try:
            assert await wait_for(lambda: until(p), timeout=30)
        finally:
            await p.stop()

    def count(p) -> int:
        return len(p.store.query_raw(SeriesKey("lab", "e1", "v"), 0, END).ts)

    def workers_on_record() -> int:
        record = json.loads((home / "mqtt-node.json").read_text())
        return record["workers"][record["node_id"]]

    p = node(home, 3)
    await p.start()
    p.registry.create_project("default", "Lab", project_id="lab")
    _, creds = p.registry.register_device("lab", device_id="e1")
    await p.stop()
    assert workers_on_record() == 3

    async def publish(values) -> None:
        c = await connect_when_ready(broker.port, "e1", creds.secret)
        await asyncio.to_thread(publish_all, c, topics.telemetry("e1"), telemetry(values))
        await asyncio.to_thread(close, c)

    # While the node is down, each of its 3 sessions queues a share.
    await publish(range(300))
    # One worker now: the sessions of workers 1 and 2 are drained, then deleted.
    await run(1, lambda p: count(p) == 300 and workers_on_record() == 1)
    # Deleted means they no longer take a share: everything sent now reaches worker 0.
    await publish(range(300, 600))
    await run(1, lambda p: count(p) == 600)
    # Decommissioned with 0 workers: it takes what was queued for it, then deletes the session.
    await publish(range(600, 700))
    await run(0, lambda p: count(p) == 700 and workers_on_record() == 0)
    # Another node now gets all the traffic: no share waits in the retired node's sessions.
    other = node(tmp_path / "other", 1)
    await other.start()
    try:
        await publish(range(700, 800))
        assert await wait_for(lambda: count(other) == 100, timeout=30)
    finally:
        await other.stop()
    p = node(home, 0)
    await p.start()
    try:
        values = p.store.query_raw(SeriesKey("lab", "e1", "v"), 0, END).value.tolist()
        assert sorted(values) == list(range(700))
    finally:
        await p.stop()


def test_two_atoll_processes_share_the_broker_and_store_each_message_once(broker, tmp_path):
    """Two ``atoll up`` nodes on one Mosquitto: the broker spreads the device traffic over both,
    nothing is stored twice, and a node killed with -9 gets its queued share after a restart."""
    registry = tmp_path / "registry.sqlite"  # shared, so both nodes know the devices
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
        "ATOLL_REGISTRY_URL": f"sqlite:///{registry}",
        "ATOLL_SERVICES": "[]",
        "ATOLL_MQTT_WORKERS": "2",
    }
    homes = {"a": tmp_path / "a", "b": tmp_path / "b"}
    procs: dict[str, object] = {}
    apis: dict[str, httpx.Client] = {}
    headers: dict[str, str] = {}

    def up(name: str) -> None:
        proc, info = start(homes[name], *args, env=env)
        procs[name] = proc
        if info["key"]:
            headers["Authorization"] = f"Bearer {info['key']}"
        apis[name] = httpx.Client(
            base_url=info["http_url"] + "/api/v1", headers=headers, timeout=30
        )

    def values(name: str) -> list[int]:
        r = apis[name].get("/devices/k1/series/v", params={"start": 0, "mode": "raw"})
        return [int(v) for v in r.json()["value"]] if r.status_code == 200 else []

    def both() -> list[int]:
        return values("a") + values("b")

    def wait_until(cond, timeout=60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.2)
        return False

    def client_ids(name: str) -> set[str]:
        record = json.loads((homes[name] / "mqtt-node.json").read_text())
        return {f"atoll-ingest-{record['node_id']}-{i}" for i in range(2)}

    def publish(device, values_) -> None:
        infos = [device.publish(topics.telemetry("k1"), p, qos=1) for p in telemetry(values_)]
        for i in infos:
            i.wait_for_publish(30)
        assert all(i.is_published() for i in infos)  # the broker acknowledged every one

    try:
        up("a")
        up("b")
        assert client_ids("a").isdisjoint(client_ids("b"))
        r = apis["a"].post("/projects", json={"name": "Lab", "id": "lab"})
        assert r.status_code == 201, r.text
        secret = (
            apis["b"]
            .post("/projects/lab/devices", json={"id": "k1"})
            .json()["credentials"]["secret"]
        )
        device = login(broker.port, "k1", secret)
        n = 2000
        publish(device, range(n))
        assert wait_until(lambda: len(both()) >= n), f"{len(both())} of {n} stored"
        time.sleep(0.5)
        a, b = values("a"), values("b")
        assert sorted(a + b) == list(range(n)), "each acknowledged message stored exactly once"
        assert len(a) > n // 10 and len(b) > n // 10, f"load not shared: a={len(a)} b={len(b)}"

        # Node b dies. Its two sessions stay subscribed and queue their share.
        ids_before = client_ids("b")
        os.kill(procs["b"].pid, signal.SIGKILL)
        procs["b"].wait(10)
        publish(device, range(n, 2 * n))
        time.sleep(1.0)
        a_only = [v for v in values("a") if v >= n]
        assert len(a_only) < n, "b's queued share must wait for b, not go to a"
        up("b")  # same data directory: same node id, same sessions
        assert client_ids("b") == ids_before
        assert wait_until(lambda: len(both()) >= 2 * n), f"{len(both())} of {2 * n} stored"
        time.sleep(0.5)
        assert sorted(both()) == list(range(2 * n))
        close(device)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop(proc)
    log = (broker.dir / "log").read_text()
    for cid in client_ids("a") | client_ids("b"):
        assert f" as {cid} " in log or f" as {cid}\n" in log, f"{cid} never connected"
