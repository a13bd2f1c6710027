"""What a PUBACK from Mosquitto is worth when Mosquitto itself crashes (external mode).

In external mode the device's PUBACK comes from Mosquitto when it has the message in memory;
Atoll's workers acknowledge to Mosquitto only after the store and the bus have it. A message
Mosquitto acknowledged but no Atoll worker had yet (queued for a node that is down or behind)
lives only in Mosquitto: with ``persistence true`` Mosquitto 2.0 writes its queues to disk
every ``autosave_interval`` seconds and on a clean shutdown. These tests pin that down on the
real binary: a clean restart keeps the queue, a ``kill -9`` keeps what the last autosave
wrote (all of it after a 1 s autosave) and loses what came after (all of it with the default
30 min) — docs/DEVICES.md, "What a PUBACK means with an external broker".
"""

import asyncio
import signal
import subprocess

import pytest

from atoll.core import topics
from atoll.core.points import SeriesKey
from atoll.platform import Platform
from atoll.sim.mosquitto import find_mosquitto
from tests.ingest.conftest import FAST_HASHER, close
from tests.ingest.test_external import (
    END,
    Broker,
    connect_when_ready,
    publish_all,
    wait_for,
)

N = 200


class PersistentBroker(Broker):
    def __init__(self, tmp_path, autosave_s: int):
        self.autosave_s = autosave_s
        super().__init__(
            tmp_path,
            extra=f"persistence true\npersistence_location {tmp_path / 'mosquitto'}/\n"
            f"autosave_interval {autosave_s}\n",
        )

    def crash(self, how: signal.Signals) -> None:
        self.proc.send_signal(how)
        self.proc.wait(10)

    def start_again(self) -> None:
        self.proc = subprocess.Popen(
            [find_mosquitto()[0], "-c", str(self.dir / "mosquitto.conf")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        import socket
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)


async def stored_after_broker_crash(tmp_path, autosave_s: int, how, wait_s: float) -> int:
    """The node registers a device and stops (its sessions stay); the device sends ``N``
    messages, all PUBACKed by Mosquitto; ``wait_s`` later Mosquitto gets ``how``; it starts
    again, so does the node: how many of the ``N`` are stored."""
    broker = PersistentBroker(tmp_path, autosave_s)
    try:
        home = tmp_path / "home"
        p = Platform(broker.settings(home), password_hasher=FAST_HASHER)
        await p.start()
        p.registry.create_project("default", "Lab", project_id="lab")
        _, creds = p.registry.register_device("lab", device_id="q1")
        await p.stop()  # the node is down; Mosquitto queues its share in its sessions
        c = await connect_when_ready(broker.port, "q1", creds.secret)
        msgs = [b'{"values": {"v": %d}}' % i for i in range(N)]
        await asyncio.to_thread(publish_all, c, topics.telemetry("q1"), msgs)  # all PUBACKed
        await asyncio.to_thread(close, c)
        await asyncio.sleep(wait_s)
        broker.crash(how)
        broker.start_again()
        p = Platform(broker.settings(home), password_hasher=FAST_HASHER)
        await p.start()
        try:
            key = SeriesKey("lab", "q1", "v")
            await wait_for(lambda: len(p.store.query_raw(key, 0, END).ts) >= N, timeout=10)
            await asyncio.sleep(0.5)
            values = p.store.query_raw(key, 0, END).value.tolist()
            assert len(values) == len(set(values))
            return len(values)
        finally:
            await p.stop()
    finally:
        broker.stop()


async def test_a_clean_broker_restart_keeps_what_it_acknowledged(tmp_path):
    assert await stored_after_broker_crash(tmp_path, 1800, signal.SIGTERM, 0) == N


async def test_a_broker_crash_keeps_what_its_last_autosave_wrote(tmp_path):
    """``autosave_interval 1``: a kill -9 two seconds after the PUBACKs loses nothing."""
    assert await stored_after_broker_crash(tmp_path, 1, signal.SIGKILL, 2.5) == N


@pytest.mark.parametrize("autosave_s", [1800])
async def test_a_broker_crash_loses_what_it_acknowledged_after_its_last_autosave(
    tmp_path, autosave_s
):
    """The limit: with Mosquitto's default autosave (30 min) a kill -9 loses every message it
    acknowledged since, that no Atoll worker had taken yet."""
    assert await stored_after_broker_crash(tmp_path, autosave_s, signal.SIGKILL, 0.5) == 0
