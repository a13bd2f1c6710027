"""The detection service fits on stored history, refits without flagged readings, keeps model
records across restarts, explains anomalies and accepts a new normal (memory bus and store)."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from atoll.bus.memory import MemoryBus
from atoll.core.errors import InvalidInput, NotFound
from atoll.core.events import decode_anomalies, expected_metric, score_metric
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.registry import DEFAULT, MIN_HISTORY, get_detector
from atoll.detect.service import DetectionService
from atoll.ingest.events import encode_telemetry
from atoll.store.memory import MemoryStore

S = 1_000_000
T0 = 1_764_000_000_000_000
FAR = 2**62
KEY = SeriesKey("p", "d1", "temp")
HISTORY = 3000
WAIT_STEPS = 6000  # x 10 ms: kernels may compile on a loaded box


def signal(start: int, n: int, seed: int = 0) -> np.ndarray:
    """A machine's normal: a 60 s cycle plus noise, at 1 Hz."""
    t = np.arange(start, start + n)
    return 20 + 2 * np.sin(2 * np.pi * t / 60) + np.random.default_rng(seed).normal(0, 0.05, n)


def stored_history(store: MemoryStore, n: int = HISTORY, key: SeriesKey = KEY) -> None:
    ts = T0 + np.arange(n, dtype=np.int64) * S
    store.append(PointBatch.of_series(key, ts, signal(0, n)))


class Collector:
    def __init__(self):
        self.events = []

    async def __call__(self, msg):
        self.events += decode_anomalies(msg.data)


async def ingest(store, bus, start: int, values, key: SeriesKey = KEY, chunk: int = 20) -> None:
    """As ingest does: store, then publish, ``chunk`` readings per message."""
    for lo in range(0, len(values), chunk):
        part = values[lo : lo + chunk]
        ts = T0 + (start + lo + np.arange(len(part), dtype=np.int64)) * S
        store.append(PointBatch.of_series(key, ts, np.asarray(part, dtype=np.float64)))
        await bus.publish(
            f"telemetry.{key.project}.{key.device}",
            encode_telemetry(
                key.project,
                key.device,
                [key.metric],
                [0] * len(part),
                ts.tolist(),
                [float(v) for v in part],
            ),
        )


async def until(predicate, what: str) -> None:
    for _ in range(WAIT_STEPS):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def running(store, tmp_path=None, **kw):
    bus = MemoryBus()
    got = Collector()
    await bus.subscribe("anomaly.>", got)
    svc = DetectionService(
        bus,
        store,
        state_path=None if tmp_path is None else tmp_path / "state.msgpack",
        snapshot_interval=0,
        **{"refit_interval": 0, **kw},
    )
    await svc.start()
    return bus, svc, got


def fault_run(n_before=600, n_fault=200, n_after=400, level=6.0):
    live = signal(HISTORY, n_before + n_fault + n_after, seed=1)
    live[n_before : n_before + n_fault] += level
    return live


async def test_the_first_live_reading_is_judged_by_a_model_fitted_on_stored_history():
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store)
    live = fault_run()
    await ingest(store, bus, HISTORY, live)
    await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")
    await svc.stop()

    events = [e for e in got.events if e.metric == "temp"]
    assert len(events) == len(live)
    assert {e.detector.name for e in events} == {"fitted"}  # from the very first reading
    record = svc.models.current(KEY)
    assert record is not None and record.version == 1 and record.reason == "bound"
    assert record.detector == "fitted" and record.rows == HISTORY and record.excluded == 0
    assert (record.history_from, record.history_to) == (T0, T0 + (HISTORY - 1) * S)
    assert record.thresholds is not None and record.thresholds["signals"] == ["nn", "ar", "band"]
    assert svc.stats["fits"] == 1

    # The fault is flagged for its whole duration and clears once it is over.
    flags = np.array([e.is_anomaly for e in events])
    assert not flags[:600].any()
    assert flags[602:800].all()
    assert not flags[880:].any()  # once the shape window (64 readings) is past the fault


async def test_anomalous_events_carry_their_explanation_and_the_band_is_stored():
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store)
    live = fault_run()
    await ingest(store, bus, HISTORY, live)
    await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")
    await svc.stop()

    events = [e for e in got.events if e.metric == "temp"]
    record = svc.models.current(KEY)
    hot = [e for e in events if e.is_anomaly or e.score >= 0.5]
    assert hot and all(e.model == record.ref for e in hot)
    plain = [e for e in events if not (e.is_anomaly or e.score >= 0.5)]
    assert all(e.expected is None and e.contributors is None and e.model is None for e in plain)
    onset = events[600]
    assert onset.is_anomaly
    band = onset.expected["temp"]
    lo, hi = record.thresholds["normal_range"]
    assert band.lo < lo and band.hi > hi  # the range of normal, widened by its threshold
    assert band.hi < onset.value  # the fault's level lies above it
    assert 18.0 < band.value < 22.0  # the forecast: what the cycle would be now
    shares = {c.name: c.share for c in onset.contributors}
    assert set(shares) <= {"nn", "ar", "band"} and sum(shares.values()) == pytest.approx(1, 1e-3)
    assert max(shares, key=shares.get) in ("band", "ar", "nn")
    # The band of every explained reading is a series of its own, for the charts.
    stored_hi = store.query_raw(SeriesKey("p", "d1", expected_metric("temp", "hi")), 0, FAR)
    stored_lo = store.query_raw(SeriesKey("p", "d1", expected_metric("temp", "lo")), 0, FAR)
    assert len(stored_hi.ts) == len(stored_lo.ts) == len(hot)
    assert stored_hi.value[0] == pytest.approx(hot[0].expected["temp"].hi)
    assert len(store.query_raw(SeriesKey("p", "d1", score_metric("temp")), 0, FAR).ts) == len(live)


async def test_too_little_history_keeps_todays_default():
    store = MemoryStore()
    stored_history(store, n=MIN_HISTORY - 10)
    bus, svc, got = await running(store)
    live = signal(HISTORY, 100, seed=2)
    await ingest(store, bus, HISTORY, live)
    await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")
    await svc.stop()
    assert {e.detector.name for e in got.events} == {DEFAULT}
    record = svc.models.current(KEY)
    assert record.reason == "bound" and record.detector == DEFAULT and record.rows == 0
    assert svc.stats["fits"] == 0 and svc.stats["fits_declined"] == 1


async def test_a_refit_leaves_out_what_the_model_flagged():
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store)
    live = fault_run()
    await ingest(store, bus, HISTORY, live)
    await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")

    records, skipped = await svc.refit("p", "d1", actor="test")
    assert skipped == []
    (record,) = records
    assert (record.version, record.reason, record.actor) == (2, "manual", "test")
    flagged = sum(e.is_anomaly for e in got.events)
    assert record.excluded >= 200 and record.excluded >= flagged
    assert record.rows + record.excluded == HISTORY + len(live)
    # The fault's level was not learned as normal: the refitted range stays below it.
    assert record.thresholds["normal_range"][1] < 20 + 2 + 3
    # The next fault is flagged by the refitted model.
    again = signal(HISTORY + len(live), 300, seed=3)
    again[100:] += 6.0
    await ingest(store, bus, HISTORY + len(live), again)
    await until(lambda: svc.stats["points"] >= len(live) + 300, "the second run judged")
    await svc.stop()
    tail = [e for e in got.events if e.ts >= T0 + (HISTORY + len(live) + 110) * S]
    assert tail and all(e.is_anomaly for e in tail)
    assert {e.model.version for e in tail} == {2}


async def test_scheduled_refits_happen_on_their_own():
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store, refit_interval=1.0)
    live = signal(HISTORY, 200, seed=4)
    await ingest(store, bus, HISTORY, live)
    await until(
        lambda: (r := svc.models.current(KEY)) is not None and r.reason == "scheduled",
        "a scheduled refit",
    )
    await svc.stop()
    history = svc.models.history(KEY)
    assert [r.reason for r in history[:2]] == ["bound", "scheduled"]
    assert [r.version for r in history] == list(range(1, len(history) + 1))


async def test_refit_of_a_detector_that_learns_online_says_why_not(tmp_path):
    store = MemoryStore()
    stored_history(store)
    bus = MemoryBus()
    svc = DetectionService(bus, store, default="ewma", refit_interval=0)
    await svc.start()
    await ingest(store, bus, HISTORY, signal(HISTORY, 40))
    await until(lambda: svc.stats["points"] >= 40, "readings judged")
    with pytest.raises(InvalidInput, match="learns online"):
        await svc.refit("p", "d1", "temp")
    done, skipped = await svc.refit("p", "d1")
    assert done == [] and [m for m, _ in skipped] == ["temp"]
    with pytest.raises(NotFound):
        await svc.refit("p", "d1", "pressure")
    await svc.stop()


async def test_model_records_survive_a_restart_and_old_snapshots_still_load(tmp_path):
    store = MemoryStore()
    stored_history(store)
    bus, svc, _ = await running(store, tmp_path)
    await ingest(store, bus, HISTORY, signal(HISTORY, 100))
    await until(lambda: svc.stats["points"] >= 100, "readings judged")
    await svc.refit("p", "d1", "temp")
    before = svc.models.history(KEY)
    await svc.stop()
    assert [r.version for r in before] == [1, 2]

    bus, again, got = await running(store, tmp_path)
    assert again.models.history(KEY) == before
    assert again.series[KEY].name == "fitted"
    await ingest(store, bus, HISTORY + 100, signal(HISTORY + 100, 50))
    await until(lambda: again.stats["points"] >= 50, "readings judged")
    (status,) = await again.detection("p", "d1")
    assert status.model == before[-1] and status.detector == "fitted" and not status.flagged
    await again.stop()

    # A snapshot written before model records existed (7 fields per series, no "models").
    old = tmp_path / "old" / "state.msgpack"
    old.parent.mkdir()
    det = get_detector("ewma")
    old.write_bytes(
        msgspec.msgpack.encode(
            {
                "format": 1,
                "series": [["p", "d1", "temp", "ewma", T0, det.state(), None]],
                "bindings": [],
            }
        )
    )
    bus, restored, _ = await running(store, old.parent)
    (record,) = restored.models.history(KEY)
    assert record.reason == "restored" and record.detector == "ewma" and record.version == 1
    await restored.stop()


async def test_accepting_a_new_normal_clears_the_flag_and_is_recorded():
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store)
    live = signal(HISTORY, 800, seed=5)
    live[400:] += 6.0  # the machine was re-set: a new level, for good
    await ingest(store, bus, HISTORY, live)
    await until(lambda: svc.stats["points"] >= 800, "readings judged")
    (status,) = await svc.detection("p", "d1")
    assert status.flagged and status.flagged_since == T0 + (HISTORY + 400) * S

    with pytest.raises(InvalidInput, match="no stored readings"):
        await svc.accept("p", "d1", "temp", T0 - 100 * S, T0 - 10 * S)
    with pytest.raises(InvalidInput, match="empty"):
        await svc.accept("p", "d1", "temp", T0 + 10 * S, T0)
    with pytest.raises(NotFound):
        await svc.accept("p", "d1", "pressure", T0, T0 + S)
    record = await svc.accept(
        "p", "d1", "temp", T0 + (HISTORY + 400) * S, T0 + (HISTORY + 800) * S, actor="operator"
    )
    assert (record.reason, record.version, record.actor, record.rows) == (
        "accept",
        2,
        "operator",
        400,
    )
    assert record.accepted_from == T0 + (HISTORY + 400) * S
    (status,) = await svc.detection("p", "d1")
    assert not status.flagged and status.model == record
    assert svc.series[KEY].spans == []  # a refit now learns the accepted readings too

    more = signal(HISTORY + 800, 300, seed=6) + 6.0  # the new level goes on: it is normal now
    await ingest(store, bus, HISTORY + 800, more)
    await until(lambda: svc.stats["points"] >= 1100, "readings judged")
    await svc.stop()
    after = [e for e in got.events if e.ts >= T0 + (HISTORY + 800 + 70) * S]
    assert after and not any(e.is_anomaly for e in after)


async def test_a_machine_judged_jointly_is_fitted_and_explained_by_metric(tmp_path):
    from argon2 import PasswordHasher

    from atoll.registry import Registry

    registry = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    registry.create_project(registry.bootstrap().tenant, "P", project_id="p")
    registry.create_device_type("p", "pump", [{"name": "flow"}, {"name": "pressure"}])
    registry.register_device("p", device_id="d1", device_type="pump")
    store = MemoryStore()
    flow, pressure = SeriesKey("p", "d1", "flow"), SeriesKey("p", "d1", "pressure")
    stored_history(store, key=flow)
    stored_history(store, key=pressure)
    bus = MemoryBus()
    got = Collector()
    await bus.subscribe("anomaly.>", got)
    svc = DetectionService(bus, store, registry=registry, refit_interval=0)
    svc.bind("p", "pump", "default", ["flow", "pressure"], jointly=True)
    await svc.start()
    live_flow = fault_run()
    live_pressure = signal(HISTORY, len(live_flow), seed=9)
    for lo in range(0, len(live_flow), 20):
        ts = T0 + (HISTORY + lo + np.arange(20, dtype=np.int64)) * S
        for key, v in ((flow, live_flow), (pressure, live_pressure)):
            store.append(PointBatch.of_series(key, ts, v[lo : lo + 20]))
        await bus.publish(
            "telemetry.p.d1",
            encode_telemetry(
                "p",
                "d1",
                ["flow", "pressure"],
                [0] * 20 + [1] * 20,
                ts.tolist() * 2,
                [*map(float, live_flow[lo : lo + 20]), *map(float, live_pressure[lo : lo + 20])],
            ),
        )
    await until(lambda: svc.stats["points"] >= len(live_flow), "every live reading judged")
    await svc.stop()
    registry.close()

    group = SeriesKey("p", "d1", "flow+pressure")
    record = svc.models.current(group)
    assert (record.detector, record.reason, record.rows) == ("joint", "bound", HISTORY)
    assert set(record.thresholds) == {"flow", "pressure"}  # each sensor's fitted model
    onset = [e for e in got.events if e.is_anomaly and e.ts >= T0 + (HISTORY + 600) * S][0]
    assert onset.detector.name == "fitted" and onset.model == record.ref
    assert set(onset.expected) == {"flow", "pressure"}
    assert onset.contributors[0].name == "flow" and onset.contributors[0].share > 0.5
    assert onset.values["flow"] > onset.expected["flow"].hi


async def test_a_series_met_without_history_is_fitted_once_it_has_some():
    """The demo's way: readings back-filled live are judged by the default with no history; a
    refit then fits on them, and the readings after are judged by the fitted model."""
    store = MemoryStore()
    bus, svc, got = await running(store)
    await ingest(store, bus, 0, signal(0, HISTORY), chunk=120)
    await until(lambda: svc.stats["points"] >= HISTORY, "the back-fill judged")
    assert svc.series[KEY].name == DEFAULT and svc.models.current(KEY).rows == 0
    (record,), _ = await svc.refit("p", "d1")
    assert (record.version, record.reason, record.detector, record.rows) == (
        2,
        "manual",
        "fitted",
        HISTORY,
    )
    await ingest(store, bus, HISTORY, fault_run())
    await until(lambda: svc.stats["points"] >= HISTORY + 1200, "live readings judged")
    await svc.stop()
    live = [e for e in got.events if e.ts >= T0 + HISTORY * S]
    assert {e.detector.name for e in live} == {"fitted"}
    assert all(e.is_anomaly for e in live[602:800]) and not any(e.is_anomaly for e in live[:600])


async def test_readings_wait_for_a_slow_first_fit_only_so_long():
    """Past ``max_park_seconds`` the fallback judges what waited; the fitted model, once ready,
    learns those readings from the store and judges the rest."""
    store = MemoryStore()
    stored_history(store)
    bus, svc, got = await running(store)
    svc.max_park_seconds = 0.0
    live = fault_run()
    await ingest(store, bus, HISTORY, live[:100])
    await until(
        lambda: (r := svc.models.current(KEY)) is not None and r.version == 2, "the first fit"
    )
    await ingest(store, bus, HISTORY + 100, live[100:])
    await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")
    await svc.stop()
    names = [e.detector.name for e in got.events]
    assert names[0] == DEFAULT and names[-1] == "fitted"
    assert [(r.version, r.detector, r.reason) for r in svc.models.history(KEY)] == [
        (1, DEFAULT, "bound"),
        (2, "fitted", "bound"),
    ]
    fitted = [e for e in got.events if e.detector.name == "fitted"]
    assert len(fitted) >= 1100 and all(e.model.version == 2 for e in fitted if e.model is not None)
    flags = np.array([e.is_anomaly for e in got.events])
    assert flags[602:800].all() and not flags[:600].any()  # it caught up, then judged the fault


async def test_a_refit_while_readings_wait_for_the_first_fit_fits_on_them_too():
    """An operator's refit that joins a first fit still queued (a back-fill sent at once, the fit
    thread busy): the waiting readings are judged by the fallback, then the refit fits on all."""
    store = MemoryStore()
    bus, svc, got = await running(store)
    svc.max_park_seconds = 3600.0
    svc._fit_wake = asyncio.Event()  # the fit thread does not start: the first fit stays queued
    svc._fitter = asyncio.ensure_future(asyncio.Event().wait())
    await ingest(store, bus, 0, signal(0, HISTORY), chunk=120)
    await until(
        lambda: svc.series.get(KEY) is not None and svc.series[KEY].parked_n == HISTORY,
        "the back-fill parked",
    )
    svc._fitter.cancel()
    svc._fitter = None
    (record,), _ = await svc.refit("p", "d1", "temp")
    assert (record.reason, record.detector, record.rows) == ("manual", "fitted", HISTORY)
    await until(lambda: svc.stats["points"] >= HISTORY, "the back-fill judged")
    await svc.stop()
    assert {e.detector.name for e in got.events} == {DEFAULT}  # judged before the refit
    assert [r.reason for r in svc.models.history(KEY)] == ["bound", "manual"]


async def test_first_fits_on_duckdb_count_history_once_for_many_new_series(tmp_path):
    """A series with stored history and new ones met together: the new ones' lack of history
    comes from one count for the batch (the store counts many series at once), the one with
    history is read and fitted."""
    from atoll.store.duckdb import DuckDBStore

    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        stored_history(store)  # type: ignore[arg-type]
        new = [SeriesKey("p", f"new-{i}", "temp") for i in range(5)]
        stored_history(store, n=MIN_HISTORY - 1, key=new[0])  # one short of a fit  # type: ignore[arg-type]
        reads = []
        query_raw = store.query_raw
        store.query_raw = lambda key, *a, **kw: reads.append(key) or query_raw(key, *a, **kw)
        bus, svc, got = await running(store)
        live = signal(HISTORY, 40, seed=1)
        for key in [KEY, *new]:
            await ingest(store, bus, HISTORY, live, key=key)
        await until(lambda: svc.stats["points"] >= 6 * len(live), "every live reading judged")
        await svc.stop()
    finally:
        store.close()
    assert svc.stats["fits"] == 1 and svc.stats["fits_declined"] == 5
    assert svc.models.current(KEY).detector == "fitted"
    for key in new:
        record = svc.models.current(key)
        assert record.detector == DEFAULT and record.rows == 0
    assert set(reads) == {KEY}  # read for its fit; the new series were only counted
