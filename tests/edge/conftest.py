"""Edge tests: a real Mosquitto standing in for the platform's broker, a receiver that checks
what arrived against what the sim connector's buffer accepted."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atoll.core import topics
from atoll.edge.connectors.sim import child_index, value
from atoll.sim.mosquitto import OBSERVER, Mosquitto

GW = "gw-1"
SECRET = "gw-secret"


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path / "mosquitto", {GW: SECRET}) as b:
        yield b


def ts_us(ts) -> int:
    if isinstance(ts, int):
        return ts * 1000
    if isinstance(ts, float):
        return round(ts * 1000)
    return round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e6)


class Receiver:
    """Subscribes like the platform would listen; keeps every reading with its arrival order."""

    def __init__(self, port: int, gateway: str = GW) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, int, dict]] = []  # (child, ts_us, values) in order
        self.messages = 0
        self.connects: list[dict] = []
        self.other: list[tuple[str, bytes]] = []
        self.bad: list[str] = []
        self.gateway = gateway
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rx-{time.monotonic_ns()}")
        self.c.username_pw_set(*OBSERVER)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_connect = lambda c, *a: c.subscribe(f"atoll/v1/devices/{gateway}/#", qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert subscribed.wait(10), "receiver did not subscribe"

    def _on_message(self, _c, _u, m) -> None:
        with self.lock:
            if m.topic == topics.gateway_telemetry(self.gateway):
                self.messages += 1
                doc = orjson.loads(m.payload)
                for child, items in doc.items():
                    for it in items:
                        self.arrivals.append((child, ts_us(it["ts"]), it["values"]))
            elif m.topic == topics.gateway_connect(self.gateway):
                self.connects.append(orjson.loads(m.payload))
            else:
                self.other.append((m.topic, m.payload))

    def unique(self) -> dict[tuple[str, int], dict]:
        with self.lock:
            return {(c, t): v for c, t, v in self.arrivals}

    def wait_for(self, n_unique: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.unique()) < n_unique and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def receiver(broker):
    r = Receiver(broker.port)
    yield r
    r.close()


def seen_by_connector(record: Path, children: int, prefix: str = "sim-") -> set[tuple[str, int]]:
    """Every (child, ts) of every batch the buffer accepted, from the sim's record file (a
    torn last line, from a kill -9, is left out: its batch may or may not have been accepted)."""
    out = set()
    for line in record.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        first, last, period = map(int, parts)
        for ts in range(first, last + 1, period):
            for i in range(children):
                out.add((f"{prefix}{i + 1}", ts))
    return out


def check_delivery(rx: Receiver, seen: set[tuple[str, int]], dropped: int, metrics: int) -> None:
    """Exactly once per (series, ts) or counted as dropped; values right; order per series."""
    got = rx.unique()
    extra = set(got) - seen
    # A batch accepted just before a kill -9 may be missing from the record (torn line): it is
    # still a valid reading of the sim, so check its values like the others.
    for (child, ts), vals in got.items():
        i = child_index(child)
        assert vals == {f"m{j}": value(i, j, ts) for j in range(metrics)}, (child, ts)
    missing = seen - set(got)
    assert len(missing) == dropped, (
        f"{len(missing)} readings the connector saw never arrived, {dropped} counted dropped; "
        f"e.g. {sorted(missing)[:5]}"
    )
    assert len(extra) <= 5000, f"{len(extra)} readings arrived that the record does not know"
    # per series, a reading arrives for the first time only after every earlier one did
    first_seen: dict[str, list[int]] = defaultdict(list)
    done: set[tuple[str, int]] = set()
    with rx.lock:
        for child, ts, _ in rx.arrivals:
            if (child, ts) not in done:
                done.add((child, ts))
                first_seen[child].append(ts)
    for child, tss in first_seen.items():
        assert tss == sorted(tss), f"{child}: out of order"
