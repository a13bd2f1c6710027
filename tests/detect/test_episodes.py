"""Episode decisions: k-of-n persistence, seasons, bounded state that survives a restart."""

from __future__ import annotations

import asyncio
import math

import msgspec
import numpy as np
import pytest

from atoll.bus.memory import MemoryBus
from atoll.core.errors import InvalidInput
from atoll.core.events import Contributor
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.episodes import EpisodeDecider, decider
from atoll.detect.service import DetectionService

DAY = 86_400.0
MONDAY = 4 * DAY  # 1970-01-05


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


def test_a_lone_spike_is_no_episode_but_a_sustained_shift_is():
    d = EpisodeDecider(z=5, min_count=3, window=300, warmup=0, stuck=0)  # steps to one value
    ts = np.arange(0, 7200, 30.0)
    x = 50 + _noise(len(ts))
    assert not any(d.decide(t, v) for t, v in zip(ts, x, strict=True))
    assert not d.decide(7200, 90.0)  # one wild reading
    assert not any(d.decide(t, 50.0) for t in (7230, 7260, 7290))
    assert not any(d.decide(t, 50.0) for t in np.arange(7320, 7800, 30.0))
    out = [d.decide(t, 70.0) for t in np.arange(7800, 7980, 30.0)]
    assert out[:2] == [False, False] and all(out[2:])  # the third piece of evidence opens it


def test_an_episode_ends_after_clear_seconds_without_evidence():
    d = EpisodeDecider(z=5, min_count=2, window=120, clear=300, warmup=0, stuck=0)
    for t, v in zip(np.arange(0, 3600, 10.0), 5 + 0.1 * _noise(360), strict=True):
        d.decide(t, v)
    assert [d.decide(3600 + 10 * i, 9.0) for i in range(3)] == [False, True, True]
    back = [d.decide(3630 + 10 * i, 5.0) for i in range(40)]
    assert back[0] and not back[-1]
    assert back.index(False) * 10 >= 300 - 10


def test_daily_steps_become_normal_once_the_slot_is_learned():
    """A shift change at 08:00 alarms on the first day, not on the third."""
    d = EpisodeDecider(warmup=0)
    ts = MONDAY + np.arange(0, 3 * DAY, 60.0)
    x = 30 + 10 * (((ts % DAY) >= 8 * 3600) & ((ts % DAY) < 18 * 3600)) + 0.5 * _noise(len(ts), 1)
    on = np.array([d.decide(t, v) for t, v in zip(ts, x, strict=True)])
    day = ((ts - MONDAY) // DAY).astype(int)
    assert on[day == 0].any()
    assert not on[day == 2].any()


def test_smoothing_sees_a_cycling_compressor_stop():
    """Readings alternate on/off; only a stop longer than a cycle is an episode."""
    d = EpisodeDecider(z=4, smooth=1800, warmup=0, level_tau=14_400)
    ts = MONDAY + np.arange(0, 2 * DAY, 30.0)
    x = np.where((ts % 1200) < 420, 195.0, 15.0) + 2 * _noise(len(ts), 2)
    assert not any(d.decide(t, v) for t, v in zip(ts, x, strict=True))
    stop = [d.decide(ts[-1] + 30 * i, 0.0) for i in range(1, 80)]
    assert any(stop)


def test_state_round_trip_continues_identically():
    ts = np.arange(0, 2 * DAY, 60.0)
    x = 20 + 3 * np.sin(2 * np.pi * ts / DAY) + _noise(len(ts), 3)
    x[2500:2530] += 15
    a = EpisodeDecider(min_count=2, smooth=120)
    half = len(ts) // 2
    for t, v in zip(ts[:half], x[:half], strict=True):
        a.decide(t, v)
    blob = msgspec.msgpack.encode(a.state())
    b = EpisodeDecider.from_state(msgspec.msgpack.decode(blob))
    ra = [a.decide(t, v) for t, v in zip(ts[half:], x[half:], strict=True)]
    rb = [b.decide(t, v) for t, v in zip(ts[half:], x[half:], strict=True)]
    assert ra == rb and any(ra)
    assert len(blob) < 2_000 and a.nbytes() < 1_000  # fixed size, whatever the stream length


def test_missing_readings_are_neither_judged_nor_learned():
    d = EpisodeDecider(warmup=0, min_readings=3)
    for t in range(10):
        d.decide(t * 10.0, 1.0)
    before = d.state()
    assert d.decide(100.0, math.nan) is False
    assert d.state() == before


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(InvalidInput, match="unknown episode decision settings"):
        decider({"zz": 3})
    with pytest.raises(InvalidInput, match="min_count"):
        decider({"min_count": 0})
    with pytest.raises(InvalidInput):
        EpisodeDecider.from_state({"params": {}, "st": [1.0]})
    assert decider(None) is None


def test_the_service_publishes_episodes_and_restores_them(tmp_path):
    """Bound with ``decision``, ``is_anomaly`` covers the episode; a restart keeps it open."""

    async def run():
        class Types:
            def get_device(self, device):
                return type("D", (), {"device_type": "pump", "labels": {}})()

        path = tmp_path / "state.msgpack"
        svc = DetectionService(MemoryBus(), None, registry=Types(), state_path=path)
        with pytest.raises(InvalidInput):
            svc.bind("p", "pump", "ewma", ["flow"], decision={"nope": 1})
        svc.bind("p", "pump", "ewma", ["flow"], decision={"z": 5, "min_count": 3, "warmup": 0})
        key = SeriesKey("p", "pump-1", "flow")
        t0 = 1_764_000_000_000_000
        ts = t0 + np.arange(0, 400) * 30_000_000
        x = 100 + _noise(400, 4)
        x[300:] += 40  # the pump's flow jumps and stays
        flags = []
        for i in range(0, 310, 10):
            events = await svc.process(PointBatch.of_series(key, ts[i : i + 10], x[i : i + 10]))
            flags += [e.is_anomaly for e in events]
        assert not any(flags[:300]) and flags[302:310] == [True] * 8
        await svc.stop()  # snapshots

        again = DetectionService(MemoryBus(), None, registry=Types(), state_path=path)
        await again.start()
        events = await again.process(PointBatch.of_series(key, ts[310:320], x[310:320]))
        assert all(e.is_anomaly for e in events)
        assert again.series[key].episodes is not None
        await again.stop()

    asyncio.run(run())


def _analogue(n: int, seed: int = 3) -> np.ndarray:
    return np.round(40 + 0.5 * _noise(n, seed), 2)  # two decimals: repeats now and then


def test_a_frozen_sensor_opens_an_episode_within_stuck_min_readings_and_clears_after():
    d = EpisodeDecider(warmup=600, clear=60)
    ts = np.arange(0.0, 3600.0)
    assert not any(d.decide(t, v) for t, v in zip(ts, _analogue(3600), strict=True))
    frozen = [d.decide(3600 + i, 41.37) for i in range(30)]
    assert not any(frozen[:8]) and all(frozen[10:]) and d.frozen
    assert frozen.index(True) + 1 == d.stuck_min  # the tenth reading in a row
    back = [d.decide(3630 + i, v) for i, v in enumerate(_analogue(120, 4))]
    assert not d.frozen and back[0] and not back[-1]  # clears `clear` s after the last one


def test_series_that_repeat_readings_or_rest_at_zero_are_not_frozen():
    rng = np.random.default_rng(5)
    counter = EpisodeDecider(warmup=0)  # transactions per minute: often the same small count
    on = [counter.decide(t, float(rng.poisson(0.5))) for t in range(3000)]
    assert not any(on[:2000]) or not counter.frozen
    assert not any(counter.decide(3000 + i, 1.0) for i in range(100))
    motor = EpisodeDecider(warmup=0)  # current of a motor that stops
    for t, v in enumerate(_analogue(2000)):
        motor.decide(t, v)
    stopped = [motor.decide(2000 + i, 0.0) for i in range(100)]
    assert not motor.frozen and not all(stopped)


def test_a_sensor_that_holds_its_value_for_a_while_has_that_run_learned():
    """A sensor that now and then holds a value for 12 readings is judged against that."""
    d = EpisodeDecider(warmup=0)
    rng = np.random.default_rng(6)
    t = 0
    for i in range(3000):
        v = round(float(rng.normal(20, 2)), 3)
        for _ in range(12 if i % 100 == 50 else 1):
            assert not d.decide(t, v)
            t += 1
    assert not any(d.decide(t + i, 21.25) for i in range(35))  # under 3 x 12 in a row
    assert d.decide(t + 35, 21.25) and d.frozen


def test_the_frozen_check_survives_a_restart_and_older_states_still_restore():
    d = EpisodeDecider(warmup=0)
    for t, v in enumerate(_analogue(500)):
        d.decide(t, v)
    for i in range(5):
        d.decide(500 + i, 40.01)
    again = EpisodeDecider.from_state(msgspec.msgpack.decode(msgspec.msgpack.encode(d.state())))
    assert [again.decide(505 + i, 40.01) for i in range(6)] == [False] * 4 + [True] * 2
    old = d.state()
    old["st"] = old["st"][:10]  # saved before the check existed
    assert not EpisodeDecider.from_state(old).frozen


def test_the_service_names_a_frozen_sensor_and_one_that_went_silent():
    """A frozen reading's event says ``frozen``; a metric missing from its device's messages
    is reported ``silent`` after 30 s (10 usual intervals, at least 30 s) and clears when it is
    back."""

    async def run():
        class Types:
            def get_device(self, device):
                return type("D", (), {"device_type": "pump", "labels": {}})()

        svc = DetectionService(MemoryBus(), None, registry=Types())
        svc.bind("p", "pump", "ewma", ["flow", "pressure"], decision={"warmup": 600})
        flow, pressure = SeriesKey("p", "pump-1", "flow"), SeriesKey("p", "pump-1", "pressure")
        t0 = 1_764_000_000_000_000
        n = 1200
        ts = t0 + np.arange(n) * 1_000_000  # 1 Hz
        f, pr = 100 + _analogue(n, 7), _analogue(n, 8) / 8

        def both(i, j, fx, px):
            return PointBatch.concat(
                [
                    PointBatch.of_series(flow, ts[i:j], fx[i:j]),
                    PointBatch.of_series(pressure, ts[i:j], px[i:j]),
                ]
            )

        events = []
        for i in range(0, 900, 50):
            events += await svc.process(both(i, i + 50, f, pr))
        assert not any(e.is_anomaly for e in events)
        stuck = pr.copy()
        stuck[900:] = stuck[900]
        events = []
        for i in range(900, 960, 5):
            events += await svc.process(both(i, i + 5, f, stuck))
        frozen = [e for e in events if e.metric == "pressure" and e.is_anomaly]
        assert frozen and frozen[0].ts == int(ts[909])  # the tenth reading in a row
        assert all(e.contributors == [Contributor("frozen", 1.0)] for e in frozen)
        assert not any(e.is_anomaly for e in events if e.metric == "flow")

        silent = []
        for i in range(960, 1040, 5):  # the flow meter drops out of the messages
            got = await svc.process(PointBatch.of_series(pressure, ts[i : i + 5], pr[i : i + 5]))
            silent += [e for e in got if e.metric == "flow"]
        assert silent and all(e.is_anomaly and e.value is None for e in silent)
        assert silent[0].contributors == [Contributor("silent", 1.0)]
        assert silent[0].ts == int(ts[989])  # 30 s after its last reading (ts[959])
        back = await svc.process(both(1040, 1045, f, pr))
        assert [e.is_anomaly for e in back if e.metric == "flow"] == [False] * 5
        assert svc.stats["silent"] == len(silent) and svc.stats["frozen"] >= len(frozen)
        await svc.stop()

    asyncio.run(run())


def test_an_episode_that_clears_sooner_than_its_window_does_not_flap():
    """With ``clear`` shorter than ``window``, the evidence that opened an episode used to reopen
    it at the next reading after it cleared, then close it again, reading after reading."""
    d = EpisodeDecider(warmup=0, min_readings=20, clear=30.0, window=300.0)
    rng = np.random.default_rng(7)
    level = [20.0] * 400 + [80.0] * 10 + [20.0] * 200
    noise = rng.normal(0, 0.3, len(level))
    on = [d.decide(t, x + float(e)) for t, (x, e) in enumerate(zip(level, noise, strict=True))]
    changes = [t for t in range(1, len(on)) if on[t] != on[t - 1]]
    assert len(changes) == 2, changes  # opened in the fault, closed once after it
    assert 400 <= changes[0] < 410 and 430 <= changes[1] < 450
