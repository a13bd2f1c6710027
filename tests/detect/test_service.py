"""The detection service on the memory bus and memory store (and a real registry for bindings)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
import orjson
import pytest
from argon2 import PasswordHasher

from atoll.bus.memory import MemoryBus
from atoll.core.errors import InvalidInput
from atoll.core.events import decode_anomalies, score_metric
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.registry import DEFAULT
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry
from atoll.store.memory import MemoryStore

T0 = 1_764_000_000_000_000
MIN = 60_000_000
FAR = 2**62
# Polling budget (x 10-20 ms): a fresh clone compiles the detectors' kernels on the first message,
# which can take many seconds on a loaded 2-core CI box.
WAIT_STEPS = 6000


def _readings(n, seed=0, spike_at=None):
    rng = np.random.default_rng(seed)
    temp = 20 + rng.normal(0, 0.2, n)
    hum = 40 + rng.normal(0, 0.5, n)
    if spike_at is not None:
        temp[spike_at] += 15
    return temp, hum


async def _feed(bus, temp, hum, start=0, chunk=50, device="d1"):
    """Publish like ingest does: one device per message, two metrics, ``chunk`` readings each."""
    n = len(temp)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        rows = [
            (k, T0 + (start + i) * MIN, float(series[i]))
            for k, series in enumerate((temp, hum))
            for i in range(lo, hi)
            if not np.isnan(series[i])
        ]  # NaN: the device did not send that metric
        await bus.publish(
            f"telemetry.p.{device}",
            encode_telemetry(
                "p",
                device,
                ["temp", "hum"],
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
            ),
        )


async def _settle(svc, points):
    for _ in range(WAIT_STEPS):
        if svc.stats["points"] >= points and (svc.store is None or svc.stats["stored"] >= points):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"service saw {svc.stats['points']} of {points} points")


class _Collector:
    def __init__(self):
        self.events = []

    async def __call__(self, msg):
        assert msg.subject.startswith("anomaly.p.")
        self.events += decode_anomalies(msg.data)  # what the rules and the live feed read


async def test_scores_are_stored_and_published():
    bus, store = MemoryBus(), MemoryStore()
    got = _Collector()
    await bus.subscribe("anomaly.>", got)
    svc = DetectionService(bus, store)
    await svc.start()
    temp, hum = _readings(400, spike_at=300)
    await _feed(bus, temp, hum)
    await _settle(svc, 800)
    for _ in range(WAIT_STEPS):
        if len(got.events) >= 800:
            break
        await asyncio.sleep(0.01)
    await svc.stop()
    await bus.close()

    stored = store.query_raw(SeriesKey("p", "d1", score_metric("temp")), 0, FAR)
    assert len(stored.ts) == 400 and np.all((stored.value >= 0) & (stored.value <= 1))
    assert len(store.query_raw(SeriesKey("p", "d1", "hum.anomaly_score"), 0, FAR).ts) == 400
    temp_events = [e for e in got.events if e.metric == "temp"]
    assert len(temp_events) == 400
    spike = temp_events[300]
    assert (
        spike.is_anomaly and spike.ts == T0 + 300 * MIN and spike.value == pytest.approx(temp[300])
    )
    assert spike.detector is not None
    assert spike.detector.name == DEFAULT and spike.detector.version >= 1
    assert sum(e.is_anomaly for e in got.events) <= 0.02 * len(got.events)  # not everything


async def test_learning_survives_a_restart(tmp_path):
    temp, hum = _readings(600, seed=3, spike_at=450)

    async def run(svc_path, parts):
        bus, store = MemoryBus(), MemoryStore()
        got = _Collector()
        await bus.subscribe("anomaly.>", got)
        svc = DetectionService(bus, store, state_path=svc_path, snapshot_interval=0)
        await svc.start()
        for lo, hi in parts:
            await _feed(bus, temp[lo:hi], hum[lo:hi], start=lo)
            await _settle(svc, 2 * (hi - lo))
        for _ in range(WAIT_STEPS):
            if len(got.events) >= svc.stats["points"]:
                break
            await asyncio.sleep(0.01)
        await svc.stop()
        await bus.close()
        return [e.score for e in got.events if e.metric == "temp"]

    straight = await run(None, [(0, 600)])
    first = await run(tmp_path / "state.msgpack", [(0, 300)])
    assert (tmp_path / "state.msgpack").is_file()
    second = await run(tmp_path / "state.msgpack", [(300, 600)])
    assert first + second == pytest.approx(straight, abs=1e-12)
    # Without the saved state the second half would have started from scratch.
    fresh = await run(tmp_path / "other.msgpack", [(300, 600)])
    assert fresh != pytest.approx(second, abs=1e-12)


async def test_periodic_snapshots_and_unreadable_state(tmp_path):
    path = tmp_path / "s.msgpack"
    path.write_bytes(b"garbage")
    bus = MemoryBus()
    svc = DetectionService(bus, None, state_path=path, snapshot_interval=0.05)
    await svc.start()  # a broken file does not stop the platform; it is kept aside
    assert (tmp_path / "s.unreadable").is_file()
    temp, hum = _readings(60)
    await _feed(bus, temp, hum)
    await _settle(svc, 120)
    for _ in range(WAIT_STEPS):
        if svc.stats["snapshots"]:
            break
        await asyncio.sleep(0.02)
    assert svc.stats["snapshots"] >= 1 and path.stat().st_size > 0
    assert 0 < svc.memory_bytes() < 200_000
    await svc.stop()
    await bus.close()


async def test_late_and_duplicate_readings_are_not_rescored():
    bus, store = MemoryBus(), MemoryStore()
    svc = DetectionService(bus, store)
    await svc.start()
    temp, hum = _readings(100)
    await _feed(bus, temp, hum)
    await _settle(svc, 200)
    await _feed(bus, temp[:10], hum[:10])  # redelivered
    await bus.publish("telemetry.p.d1", b"{not json")
    await _feed(bus, temp[:5], hum[:5], start=200)
    await _settle(svc, 210)
    await svc.stop()
    await bus.close()
    assert svc.stats["skipped_late"] == 20 and svc.stats["bad_messages"] == 1
    assert len(store.query_raw(SeriesKey("p", "d1", "temp.anomaly_score"), 0, FAR).ts) == 105


async def test_device_type_binding_and_label(tmp_path):
    from atoll.registry import Registry

    reg = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    try:
        boot = reg.bootstrap()
        reg.create_project(boot.tenant, "Plant", project_id="p")
        reg.create_device_type("p", "pump", [{"name": "temp"}, {"name": "hum"}])
        reg.register_device("p", device_id="d1", device_type="pump")
        reg.register_device("p", device_id="d2", labels={"detector": "windowed_gaussian"})
        reg.register_device("p", device_id="d3")
        bus = MemoryBus()
        svc = DetectionService(bus, MemoryStore(), registry=reg)
        svc.bind("p", "pump", "seasonal", metrics=["temp"])
        svc.bind("p", "pump", "ewma", metrics=["hum"], threshold=0.5)
        with pytest.raises(InvalidInput):
            svc.bind("p", "pump", "ewma", metrics=["hum"], threshold=1.5)
        with pytest.raises(InvalidInput, match="no detector named"):
            svc.bind("p", "pump", "no-such-detector")
        await svc.start()
        temp, hum = _readings(40)
        for d in ("d1", "d2", "d3", "ghost"):
            await _feed(bus, temp, hum, device=d)
        await _settle(svc, 320)
        await svc.stop()
        await bus.close()
        names = {(k.device, k.metric): t.name for k, t in svc.series.items()}
        if svc.state_path is None:  # bindings are saved with the detectors' state
            svc.state_path = tmp_path / "state.msgpack"
            await svc.snapshot()
            again = DetectionService(MemoryBus(), None, registry=reg, state_path=svc.state_path)
            again._load()
            again.device_cache_seconds = 0.0
            assert (
                again.choose(SeriesKey("p", "d9", "temp")).name == "default"
            )  # d9 is not registered yet
            reg.register_device("p", device_id="d9", device_type="pump")
            assert again.choose(SeriesKey("p", "d9", "temp")).name == "seasonal"
        assert names[("d1", "temp")] == "seasonal"
        assert names[("d1", "hum")] == "ewma"
        hum = svc.series[SeriesKey("p", "d1", "hum")].detector
        assert hum.default_threshold == 0.5  # the bound threshold decides is_anomaly
        assert names[("d2", "temp")] == "windowed_gaussian"
        assert names[("d3", "temp")] == DEFAULT and names[("ghost", "hum")] == DEFAULT
    finally:
        reg.close()


@pytest.mark.parametrize("store_url", ["memory://", None])  # None: the embedded DuckDB default
async def test_platform_runs_the_service(tmp_path, store_url):
    from atoll.config import Settings
    from atoll.platform import Platform

    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", store_url=store_url)
    async with Platform(settings) as platform:
        svc = next(s for s in platform.services if isinstance(s, DetectionService))
        temp, hum = _readings(50)
        await _feed(platform.bus, temp, hum)
        await _settle(svc, 100)
        assert (
            len(platform.store.query_raw(SeriesKey("p", "d1", "temp.anomaly_score"), 0, FAR).ts)
            == 50
        )
    assert (tmp_path / "detect" / "state.msgpack").is_file()


async def test_a_machine_judged_jointly(tmp_path):
    from atoll.registry import Registry

    reg = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    try:
        boot = reg.bootstrap()
        reg.create_project(boot.tenant, "Plant", project_id="p")
        reg.create_device_type("p", "pump", [{"name": "temp"}, {"name": "hum"}])
        reg.register_device("p", device_id="d1", device_type="pump")
        bus, store = MemoryBus(), MemoryStore()
        got = _Collector()
        await bus.subscribe("anomaly.>", got)
        svc = DetectionService(bus, store, registry=reg)
        with pytest.raises(InvalidInput):
            svc.bind("p", "pump", "default", metrics=["temp"], jointly=True)
        svc.bind("p", "pump", "default", metrics=["temp", "hum"], jointly=True)
        await svc.start()
        rng = np.random.default_rng(5)
        base = rng.normal(0, 1, 1200)
        temp, hum = 20 + base, 40 + 2 * base + rng.normal(0, 0.05, 1200)
        hum[1100] = 40 - 2 * base[1100] + 4  # in range, but against the usual relation
        hum[1150] = np.nan  # a reading without humidity
        await _feed(bus, temp, hum)
        for _ in range(WAIT_STEPS):
            if svc.stats["stored"] >= 1200:
                break
            await asyncio.sleep(0.01)
        await svc.stop()
        await bus.close()
        assert list(svc.series) == [SeriesKey("p", "d1", "temp+hum")]
        assert (
            len(store.query_raw(SeriesKey("p", "d1", "temp+hum.anomaly_score"), 0, FAR).ts) == 1200
        )
        events = {e.ts: e for e in got.events}
        assert len(events) == 1200
        odd = events[T0 + 1100 * MIN]
        assert odd.metric == "temp+hum" and odd.is_anomaly
        assert odd.values is not None and odd.values["hum"] == pytest.approx(hum[1100])
        assert events[T0 + 1150 * MIN].values == {"temp": pytest.approx(temp[1150]), "hum": None}
        assert sum(e.is_anomaly for e in got.events) <= 0.02 * len(got.events)
    finally:
        reg.close()


async def test_end_to_end_http_ingest_to_anomaly_alarm(tmp_path):
    """A device posts history over HTTP; its scores become a series and an anomaly rule raises."""
    import httpx

    from atoll.config import Settings
    from atoll.platform import Platform

    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", store_url="memory://")
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    async with Platform(settings, password_hasher=fast) as p:
        key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=p.http_url + "/api/v1", headers=key, limits=no_reuse, timeout=30
        ) as http:
            assert (
                await http.post("/projects", json={"name": "Lab", "id": "lab"})
            ).status_code == 201
            secret = (await http.post("/projects/lab/devices", json={"id": "s1"})).json()[
                "credentials"
            ]["secret"]
            r = await http.post(
                "/projects/lab/rules",
                json={
                    "name": "Odd",
                    "target": {"device": "s1"},
                    "condition": {"type": "anomaly", "metric": "t"},
                },
            )
            assert r.status_code == 201, r.text
            rng = np.random.default_rng(9)
            temp = 20 + 3 * np.sin(np.arange(600) * 2 * np.pi / 60) + rng.normal(0, 0.05, 600)
            temp[550] += 12
            now_ms = 1_764_000_000_000
            readings = [
                {"ts": now_ms - (600 - i) * 60_000, "values": {"t": float(v)}}
                for i, v in enumerate(temp)
            ]
            for lo in range(0, 600, 200):
                r = await http.post(
                    "/ingest/telemetry",
                    auth=("s1", secret),
                    headers={},
                    json=readings[lo : lo + 200],
                )
                assert r.status_code < 300, r.text
            svc = next(s for s in p.services if isinstance(s, DetectionService))
            await _settle(svc, 600)
            alarms = []
            for _ in range(WAIT_STEPS):
                alarms = (await http.get("/alarms", params={"project": "lab"})).json()
                if any(a["value"] >= 0.99 for a in alarms):
                    break
                await asyncio.sleep(0.02)
            # The spike raised an alarm through the rules engine (the default detector may flag a
            # reading or two more while it learns; that is its business, not the wiring's).
            assert {(a["rule_id"], a["device"]) for a in alarms} == {("odd", "s1")}
            assert any(a["value"] >= 0.99 for a in alarms) and len(alarms) <= 5
        stored = p.store.query_raw(SeriesKey("lab", "s1", "t.anomaly_score"), 0, FAR)
        assert len(stored.ts) == 600 and stored.value[550] >= 0.99


async def test_one_unrestorable_detector_does_not_cost_the_others(tmp_path):
    import msgspec

    from atoll.detect.ewma import EWMAZScore
    from atoll.detect.state import Snapshot, pack

    good = EWMAZScore()
    good.score_many(np.arange(100.0))
    stale = pack(Snapshot("ewma", 99, {}))  # a layout from some other release
    path = tmp_path / "state.msgpack"
    path.write_bytes(
        msgspec.msgpack.encode(
            {
                "format": 1,
                "series": [
                    ["p", "d1", "a", "ewma", 5, good.state()],
                    ["p", "d1", "b", "ewma", 5, stale],
                ],
            }
        )
    )
    svc = DetectionService(MemoryBus(), None, state_path=path)
    svc._load()
    assert list(svc.series) == [SeriesKey("p", "d1", "a")] and svc.stats["state_dropped"] == 1
    assert svc.series[SeriesKey("p", "d1", "a")].detector.score_one(3.0) == good.score_one(3.0)


class _HeldWarmUp:
    """A warm-up that waits for ``release`` (a test's stand-in for a slow first compile)."""

    def __init__(self):
        import threading

        from atoll.detect.warmup import warm_up

        self.started, self.release = threading.Event(), threading.Event()
        self.units = []
        self._real = warm_up

    def __call__(self, units):
        self.units = [(type(d).__name__, w) for d, w in units]
        self.started.set()
        assert self.release.wait(120), "the test never released the warm-up"
        return self._real(units)

    async def wait_started(self):
        assert await asyncio.to_thread(self.started.wait, 120)


@contextlib.asynccontextmanager
async def _held(svc):
    """``svc`` started with its warm-up held until the test sets ``held.release``; stopped after."""
    held = _HeldWarmUp()
    svc.warm_up = held
    await svc.start()
    try:
        await held.wait_started()
        yield held
    finally:
        held.release.set()
        await svc.stop()
        await svc.bus.close()


async def _until(condition):
    for _ in range(WAIT_STEPS):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


def _mqtt_publish_qos1(port, device, secret, payload):
    """Publish one QoS 1 message with paho; True once its PUBACK came back."""
    import threading

    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
    c.username_pw_set(device, secret)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        assert connected.wait(30)
        info = c.publish(f"atoll/v1/devices/{device}/telemetry", payload, qos=1)
        info.wait_for_publish(60)
        return info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


async def test_ingest_answers_while_kernels_warm_up(tmp_path, monkeypatch):
    """Telemetry acknowledged (HTTP 200, MQTT PUBACK) during the warm-up is queued, then scored
    once the kernels are ready."""
    import httpx

    from atoll.config import Settings
    from atoll.detect import service as service_module
    from atoll.platform import Platform

    held = _HeldWarmUp()
    monkeypatch.setattr(service_module, "warm_up", held)
    settings = Settings(home=tmp_path, http_port=0, mqtt_port=0, store_url="memory://")
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        async with Platform(settings, password_hasher=fast) as p:
            await held.wait_started()
            svc = next(s for s in p.services if isinstance(s, DetectionService))
            key = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
            async with httpx.AsyncClient(
                base_url=p.http_url + "/api/v1", headers=key, timeout=30
            ) as http:
                assert (
                    await http.post("/projects", json={"name": "Lab", "id": "lab"})
                ).status_code == 201
                secret = (await http.post("/projects/lab/devices", json={"id": "s1"})).json()[
                    "credentials"
                ]["secret"]
                now_ms = 1_764_000_000_000
                for lo in range(0, 30, 10):
                    readings = [
                        {"ts": now_ms + i * 1000, "values": {"t": 20.0 + i % 3}}
                        for i in range(lo, lo + 10)
                    ]
                    r = await http.post(
                        "/ingest/telemetry", auth=("s1", secret), headers={}, json=readings
                    )
                    assert r.status_code == 200, r.text
            late = orjson.dumps([{"ts": now_ms + 30_000, "values": {"t": 21.0}}])
            assert await asyncio.to_thread(_mqtt_publish_qos1, p.mqtt.port, "s1", secret, late)
            # Acknowledged and stored while the warm-up still holds the worker: queued, not scored.
            assert not svc.ready.is_set() and svc.stats["points"] == 0
            assert len(p.store.query_raw(SeriesKey("lab", "s1", "t"), 0, FAR).ts) == 31
            await _until(lambda: svc.stats["queued_messages"] >= 4)
            assert svc.stats["queued_messages"] == 4
            held.release.set()
            await _settle(svc, 31)
            assert svc.ready.is_set() and svc.stats["dropped_messages"] == 0
            assert (
                len(p.store.query_raw(SeriesKey("lab", "s1", "t.anomaly_score"), 0, FAR).ts) == 31
            )
    finally:
        held.release.set()
    assert held.units == [("EnsembleDetector", 0)]  # the default, warmed before any reading


async def test_queued_messages_keep_each_series_in_order():
    """Many small messages queued behind the warm-up give exactly the scores of one offline pass."""
    from atoll.detect.registry import get_detector

    bus, store = MemoryBus(), MemoryStore()
    got = _Collector()
    await bus.subscribe("anomaly.>", got)
    svc = DetectionService(bus, store)
    temp, hum = _readings(700, seed=4, spike_at=500)
    async with _held(svc) as held:
        await _feed(bus, temp, hum, chunk=1)  # 700 messages: several chunks for the worker
        await _feed(bus, temp[:3], hum[:3], chunk=1)  # redelivered while queued
        held.release.set()
        await _settle(svc, 1400)
    assert svc.stats["messages"] == 703 and svc.stats["skipped_late"] == 6
    for metric, series in (("temp", temp), ("hum", hum)):
        events = [e for e in got.events if e.metric == metric]
        assert [e.ts for e in events] == [T0 + i * MIN for i in range(700)]
        offline = get_detector("default").score_many(series, T0 + np.arange(700) * MIN)
        assert [e.score for e in events] == pytest.approx(np.clip(offline, 0, 1), abs=1e-12)
        stored = store.query_raw(SeriesKey("p", "d1", score_metric(metric)), 0, FAR)
        assert stored.value == pytest.approx(np.clip(offline, 0, 1), abs=1e-12)


async def test_stopping_does_not_wait_for_a_compile_when_nothing_is_queued():
    """A cold numba cache compiles for tens of seconds on a busy machine; Ctrl-C during it used to
    wait for the compile (the warm-up held the worker, and the process's exit joins it)."""
    svc = DetectionService(MemoryBus(), MemoryStore())
    held = _HeldWarmUp()
    svc.warm_up = held
    await svc.start()
    try:
        await held.wait_started()
        t0 = time.perf_counter()
        await asyncio.wait_for(svc.stop(), 10)  # the warm-up is still held: not released
        assert time.perf_counter() - t0 < 5
        assert not svc.ready.is_set() and svc.stats["points"] == 0
    finally:
        held.release.set()
        await svc.bus.close()


async def test_stopping_with_readings_queued_scores_them_once_compiled():
    bus, store = MemoryBus(), MemoryStore()
    svc = DetectionService(bus, store)
    temp, hum = _readings(20)
    held = _HeldWarmUp()
    svc.warm_up = held
    await svc.start()
    try:
        await held.wait_started()
        await _feed(bus, temp, hum)
        await _until(lambda: svc.stats["queued_messages"])
        stopping = asyncio.ensure_future(svc.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # it waits: there is something to score
        held.release.set()
        await asyncio.wait_for(stopping, 120)
    finally:
        held.release.set()
        await bus.close()
    assert svc.stats["points"] == 40 and svc.stats["queued_messages"] == 0, svc.stats
    assert len(store.query_raw(SeriesKey("p", "d1", score_metric("temp")), 0, FAR).ts) == 20, (
        svc.stats,
        store.series("p", "d1"),
    )


async def test_a_full_queue_drops_from_detection_and_counts(caplog):
    bus = MemoryBus()
    svc = DetectionService(bus, None)
    temp, hum = _readings(40)
    async with _held(svc) as held:
        await _feed(bus, temp[:1], hum[:1])
        await _until(lambda: svc.stats["queued_messages"])
        svc.max_queued_bytes = 3 * svc.stats["queued_bytes"]  # room for three such messages
        with caplog.at_level("WARNING", logger="atoll.detect.service"):
            await _feed(bus, temp[1:], hum[1:], start=1, chunk=1)
            await _until(lambda: svc.stats["queued_messages"] + svc.stats["dropped_messages"] >= 40)
        assert svc.stats["queued_messages"] == 3 and svc.stats["dropped_messages"] == 37
        assert svc.stats["queued_bytes"] <= svc.max_queued_bytes and svc.stats["dropped_bytes"] > 0
        assert (
            sum("detection is behind" in r.getMessage() for r in caplog.records) == 1
        )  # not one per drop
        held.release.set()
        await _settle(svc, 6)
    assert svc.stats["points"] == 6 and svc.stats["queued_messages"] == 0


async def test_warm_up_covers_bindings_and_restored_series(tmp_path):
    path = tmp_path / "state.msgpack"
    first = DetectionService(MemoryBus(), None, state_path=path, default="ewma")
    first.bind("p", "pump", "seasonal", metrics=["temp"])
    first.bind("p", "pump", "default", metrics=["a", "b"], jointly=True, threshold=0.9)
    await first.process(
        PointBatch.of_series(SeriesKey("p", "d1", "hum"), T0 + np.arange(5) * MIN, np.arange(5.0))
    )
    await first.snapshot()
    assert first.stats["warmed_detectors"] == 0  # never started: process() alone compiles lazily

    again = DetectionService(MemoryBus(), None, state_path=path)
    held = _HeldWarmUp()
    held.release.set()
    again.warm_up = held
    await again.start()
    await asyncio.wait_for(again.ready.wait(), 600)
    await again.stop()
    assert sorted(held.units) == [
        ("EWMAZScore", 0),
        ("EnsembleDetector", 0),
        ("SeasonalBaseline", 0),
        ("Thresholded", 2),
    ]
    assert again.stats["warmed_detectors"] == 4
