"""Fault tests of the edge agent against a real ``atoll up`` (issue #15, "Tests and targets").

The agent runs as a process (``atoll edge run``) with the sim connector, whose record file says
which readings its buffer accepted ("what the connector side saw"). Its uplink goes through a
TCP proxy the test cuts and gives back. After each fault: every reading the connector side saw
is stored on the platform (one row per series and timestamp, so "once"), with the sim's values,
or is counted as dropped (buffer full, drop_oldest) or quarantined (a damaged segment), and the
counts match exactly. Order per series is the forwarder's (tests/edge/test_forwarder.py); here
the store keeps each series ordered by time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from atoll.edge.buffer import BufferStats, inspect
from atoll.edge.connectors.sim import value
from tests.edge.conftest import seen_by_connector
from tests.edge.tcp_proxy import TcpProxy
from tests.ingest.test_durability import start

pytestmark = [pytest.mark.timeout(400), pytest.mark.xdist_group("edge_faults")]

UNLIMITED = {"ATOLL_QUOTA_DEVICE_RATE": "0", "ATOLL_QUOTA_TENANT_RATE": "0"}


class Platform:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._start()
        r = self.api.post("/projects", json={"name": "Edge", "id": "edge"})
        assert r.status_code == 201, r.text

    def _start(self) -> None:
        self.proc, self.info = start(self.home, env=UNLIMITED)
        auth = {"Authorization": f"Bearer {self.info['key']}"}
        self.api = httpx.Client(
            base_url=self.info["http_url"] + "/api/v1", headers=auth, timeout=60
        )
        self.mqtt_port = int(self.info["mqtt_url"].rsplit(":", 1)[1])

    def gateway(self, gw: str) -> str:
        r = self.api.post("/projects/edge/devices", json={"id": gw, "kind": "gateway"})
        assert r.status_code == 201, r.text
        return r.json()["credentials"]["secret"]

    def stored(self, child: str, metric: str) -> dict[int, float]:
        r = self.api.get(
            f"/devices/{child}/series/{metric}",
            params={"start": 0, "end": "now", "mode": "raw", "limit": 1_000_000},
        )
        if r.status_code == 404:
            return {}
        assert r.status_code == 200, r.text
        doc = r.json()
        return {round(t * 1000): v for t, v in zip(doc["ts"], doc["value"], strict=True)}

    def kill_and_restart(self) -> None:
        """kill -9, then ``atoll up`` again on the same data (new ports, same admin key)."""
        key = self.info["key"]
        self.proc.kill()
        self.proc.wait(10)
        self._start()
        self.info["key"] = self.info["key"] or key
        self.api.headers["Authorization"] = f"Bearer {self.info['key']}"

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("edge-platform"))
    yield p
    p.close()


_AGENTS: list[Agent] = []


@pytest.fixture(autouse=True)
def _no_agent_left_behind():
    """A failing test still ends its agent processes and proxies."""
    yield
    while _AGENTS:
        a = _AGENTS.pop()
        if a.proc is not None and a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait(10)
        a.proxy.close()


class Agent:
    """One gateway's agent process, restartable, with its uplink through a proxy."""

    def __init__(
        self,
        platform: Platform,
        tmp: Path,
        gw: str,
        *,
        children: int,
        metrics: int,
        rate_hz: float,
        max_bytes: str = "256MiB",
        policy: str = "drop_oldest",
    ) -> None:
        self.platform = platform
        self.dir = tmp
        self.gw = gw
        self.prefix = f"{gw}-c"
        self.children, self.metrics = children, metrics
        self.proxy = TcpProxy(platform.mqtt_port)
        _AGENTS.append(self)
        self.record = tmp / "record.txt"
        self.proc: subprocess.Popen | None = None
        self.outputs: list[str] = []
        self.doc = {
            "platform": f"mqtt://127.0.0.1:{self.proxy.port}",
            "gateway": {"id": gw, "secret": platform.gateway(gw)},
            "buffer": {"dir": str(tmp / "buffer"), "max_bytes": max_bytes, "full_policy": policy},
            "status_interval_s": 1,
            "reconnect_max_s": 1,
            "connectors": [
                {
                    "type": "sim",
                    "name": "line",
                    "children": children,
                    "metrics": metrics,
                    "rate_hz": rate_hz,
                    "prefix": self.prefix,
                    "record": str(self.record),
                }
            ],
        }

    def start(self, *, reading: bool = True) -> None:
        doc = dict(self.doc)
        if not reading:
            doc["connectors"] = []  # forward what is buffered, read nothing new
        cfg = self.dir / "edge.yaml"
        cfg.write_text(yaml.safe_dump(doc))
        self.out = open(self.dir / f"agent-{len(self.outputs)}.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atoll.cli.main", "edge", "run", "--config", str(cfg)],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.outputs.append(str(self.out.name))
        log = Path(self.out.name)
        self.wait(lambda: "Ctrl-C stops" in log.read_text(), 60, "the agent to start")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(20)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        if sig == signal.SIGTERM:
            assert self.proc.returncode == 0, text
        self.proc = None
        return text

    def buffer(self) -> BufferStats:
        try:
            return inspect(self.dir / "buffer")
        except FileNotFoundError:  # the agent is still starting
            return BufferStats(0, 0, None, 0, 0, 0, 0, 0, 0)

    def wait(self, pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            assert self.proc is None or self.proc.poll() is None, self.log()
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; {self.buffer()}\n{self.log()}")

    def log(self) -> str:
        return "".join(Path(p).read_text()[-3000:] for p in self.outputs)

    def recorded(self) -> int:
        return len(self.record.read_text().splitlines()) if self.record.exists() else 0

    def drain_and_check(self) -> tuple[int, int]:
        """Restart without reading, wait for an empty buffer, compare platform and record."""
        if self.proc is not None:
            self.stop()
        self.proxy.restore()
        self.start(reading=False)
        self.wait(lambda: self.buffer().depth == 0, 180, "the backlog to drain")
        self.stop()
        self.proxy.close()
        st = self.buffer()
        seen = seen_by_connector(self.record, self.children, self.prefix)
        got: set[tuple[str, int]] = set()
        for i in range(self.children):
            child = f"{self.prefix}{i + 1}"
            series = [self.platform.stored(child, f"m{j}") for j in range(self.metrics)]
            for ts in series[0]:
                got.add((child, ts))
                for j in range(self.metrics):
                    assert series[j].get(ts) == value(i, j, ts), (child, j, ts)
        missing = seen - got
        lost = st.dropped + st.quarantined_readings
        assert len(missing) == lost, (
            f"{len(missing)} readings the connector saw are not on the platform; counted "
            f"{st.dropped} dropped + {st.quarantined_readings} quarantined"
        )
        assert len(got - seen) <= self.children * 5000  # a torn record line at a kill -9
        return len(seen), len(got)


def test_kill_9_mid_stream(platform, tmp_path):
    a = Agent(platform, tmp_path, "gw-kill", children=5, metrics=2, rate_hz=200)
    a.start()
    a.wait(lambda: a.buffer().acked > 2000, 120, "forwarding to start")
    time.sleep(1)
    a.stop(signal.SIGKILL)  # readings in flight and in the group commit
    a.start()
    a.wait(lambda: a.recorded() > 60, 30, "reading again")
    a.stop(signal.SIGKILL)
    a.start()
    time.sleep(2)
    seen, got = a.drain_and_check()
    assert seen > 5 * 200 * 3
    assert a.buffer().dropped == 0 and a.buffer().quarantined == 0


def test_long_outage_by_volume_with_restarts(platform, tmp_path):
    # 20 children x 5 metrics at 100 Hz: 10,000 points/s, about 120,000 points while cut
    a = Agent(platform, tmp_path, "gw-outage", children=20, metrics=5, rate_hz=100)
    a.start()
    a.wait(lambda: a.buffer().acked > 1000, 120, "forwarding to start")
    a.proxy.cut()
    time.sleep(5)
    a.stop(signal.SIGKILL)  # the gateway loses power during the outage
    a.start()
    time.sleep(4)
    a.stop()  # and is restarted cleanly
    a.start()
    time.sleep(3)
    backlog = a.buffer().depth
    assert backlog > 80_000 // 5, backlog  # readings, each of 5 points
    a.proxy.restore()  # back: the backlog drains while live data keeps flowing
    a.wait(lambda: a.buffer().depth < 2000, 180, "the backlog to drain with live data")
    seen, got = a.drain_and_check()
    assert seen > 100_000 // 5


@pytest.mark.parametrize("policy", ["drop_oldest", "stop_reading"])
def test_full_buffer(platform, tmp_path, policy):
    gw = f"gw-full-{policy.split('_')[0]}"
    a = Agent(
        platform, tmp_path, gw, children=10, metrics=5, rate_hz=200, max_bytes="1MiB", policy=policy
    )
    a.proxy.cut()  # never connected: everything stays in the buffer
    a.start()
    time.sleep(12)
    out = a.stop()
    st = a.buffer()
    assert st.bytes <= 1.2 * (1 << 20), st
    if policy == "drop_oldest":
        assert st.dropped > 0, st
    else:
        assert st.dropped == 0
        stopped = re.search(r"buffer stopped\D*(\d+)", out)
        assert stopped and int(stopped.group(1)) > 0, out
    a.drain_and_check()


def test_damaged_segment(platform, tmp_path):
    a = Agent(
        platform, tmp_path, "gw-damage", children=20, metrics=10, rate_hz=200, max_bytes="8MiB"
    )
    a.proxy.cut()
    a.start()
    a.wait(lambda: a.buffer().segments >= 4, 60, "four segments")
    a.stop()
    segs = sorted((tmp_path / "buffer").glob("seg-*.db"))
    with open(segs[1], "r+b") as f:  # a page in the middle of the second segment
        f.seek(4096 * 20)
        f.write(os.urandom(4096 * 4))
    a.start()  # must not crash (and not loop): it quarantines and goes on
    time.sleep(2)
    assert a.proc is not None and a.proc.poll() is None
    a.drain_and_check()
    st = a.buffer()
    assert st.quarantined == 1 and st.quarantined_readings > 0, st
    assert len(list((tmp_path / "buffer" / "quarantine").glob("*seg-*"))) >= 1


def test_platform_killed_mid_stream(tmp_path):
    """PUBACK means stored: kill -9 the platform while the agent forwards, restart it; what the
    agent had acknowledged is not sent again, and nothing is missing."""
    own = Platform(tmp_path / "platform")
    try:
        (tmp_path / "agent").mkdir()
        a = Agent(own, tmp_path / "agent", "gw-pkill", children=10, metrics=2, rate_hz=100)
        a.start()
        a.wait(lambda: a.buffer().acked > 3000, 120, "forwarding to start")
        time.sleep(1)
        own.kill_and_restart()
        a.proxy.target = own.mqtt_port  # the restarted platform listens elsewhere
        acked = a.buffer().acked
        a.wait(lambda: a.buffer().acked > acked + 2000, 120, "forwarding to the new platform")
        a.platform = own
        a.drain_and_check()
    finally:
        own.close()


def test_managed_from_the_platform(platform, tmp_path):
    """Desired twin and commands through the platform's REST API, status in the reported twin."""
    a = Agent(platform, tmp_path, "gw-managed", children=2, metrics=1, rate_hz=5)
    a.start()
    api = platform.api

    def edge() -> dict:
        r = api.get(f"/devices/{a.gw}/twin")
        assert r.status_code == 200, r.text
        return (r.json().get("reported") or {}).get("edge") or {}

    a.wait(
        lambda: edge().get("connectors", {}).get("line", {}).get("readings", 0) > 0,
        90,
        "the reported twin",
    )
    assert edge()["config"]["source"] == "file" and edge()["buffer"]["dropped"] == 0

    # a command to a child, answered by its connector through the gateway
    r = api.post(f"/devices/{a.prefix}1/commands", json={"name": "ping", "args": {"n": 1}})
    assert r.status_code in (200, 201), r.text
    cid = r.json()["id"]

    def command() -> dict:
        return api.get(f"/devices/{a.prefix}1/commands/{cid}").json()

    a.wait(lambda: command()["status"] in ("acked", "failed"), 30, "the command's ack")
    assert command()["status"] == "acked"
    assert command()["result"] == {"device": f"{a.prefix}1", "args": {"n": 1}}

    # an invalid connector list is refused and reported; a valid one replaces the running one
    bad = {"connectors": [{"type": "sim", "name": "x", "rate_hz": -1}]}
    assert api.patch(f"/devices/{a.gw}/twin/desired", json=bad).status_code == 200
    a.wait(lambda: edge()["config"]["status"] == "error", 30, "the refusal in the twin")
    assert "rate_hz" in edge()["config"]["error"] and list(edge()["connectors"]) == ["line"]
    good = {"connectors": [{"type": "sim", "name": "line-b", "children": 1, "prefix": "mb-"}]}
    assert api.patch(f"/devices/{a.gw}/twin/desired", json=good).status_code == 200
    a.wait(
        lambda: edge()["config"]["status"] == "ok" and "line-b" in edge()["connectors"],
        30,
        "the new connectors",
    )
    assert edge()["config"]["source"] == "twin"
    a.stop()
    assert (tmp_path / "buffer" / "desired.json").exists()
    a.proxy.close()
