"""The fleet baseline (``atoll.detect.fleet``): one machine against its siblings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.fleet import FleetBaseline
from atoll.sim.fleet import Fleet

S = 1_000_000


def _pack(fleet: FleetBaseline, t: int, hot: float = 0.0, motors: int = 6, seed: int = 0):
    rng = np.random.default_rng([seed, t])
    load = 30 + 10 * math.sin(t / 300)
    return [
        fleet.observe(f"m{m}", t * S, load + m + (hot if m == 0 else 0.0) + rng.normal(0, 0.3))
        for m in range(motors)
    ]


def test_common_mode_cancels_and_a_motor_leaving_the_pack_is_flagged_until_it_returns():
    fleet = FleetBaseline()
    flags = [
        _pack(fleet, t, hot=5.0 if 2000 <= t < 2300 else 0.0)[0].is_anomaly for t in range(3000)
    ]
    assert not any(flags[:2000]) and all(flags[2005:2300]) and not any(flags[2400:])


def test_a_flagged_state_is_not_learned_and_accept_makes_it_the_new_offset():
    fleet = FleetBaseline(warmup_s=600)
    for t in range(1000):
        _pack(fleet, t)
    for t in range(1000, 5000):  # an hour's worth of tau later, still out of the pack
        j = _pack(fleet, t, hot=5.0)[0]
    assert j.is_anomaly and j.expected is not None and j.hi is not None and j.hi < j.expected + 5
    fleet.accept("m0")
    after = [_pack(fleet, t, hot=5.0)[0] for t in range(5000, 5300)]
    assert not any(a.is_anomaly for a in after)


def test_too_few_peers_judges_nothing_and_missing_readings_are_skipped():
    fleet = FleetBaseline(min_peers=3)
    for t in range(500):
        js = _pack(fleet, t, hot=50.0, motors=3)  # two peers only
    assert all(j.score == 0.0 and not j.is_anomaly for j in js) and js[0].peers == 2
    assert fleet.observe("m0", 501 * S, float("nan")).score == 0.0


def test_peers_are_bounded_and_forgotten_devices_leave():
    fleet = FleetBaseline(max_peers=8)
    for t in range(3):
        js = _pack(fleet, t, motors=40)
    assert max(j.peers for j in js) <= 8
    fleet.forget("m1")
    assert "m1" not in fleet.devices


def test_bad_settings_are_refused():
    with pytest.raises(InvalidInput):
        FleetBaseline(limit=0)
    with pytest.raises(InvalidInput):
        FleetBaseline(min_peers=10, max_peers=5)


def test_bearing_wear_on_a_simulated_line_is_caught_with_no_false_alarm():
    t0 = 1_764_000_000.0
    sim = Fleet.build("manufacturing", 12, seed=2, rate=0.2, start=t0)
    faults = sim.plan_faults(2, t0 + 3600, t0 + 2 * 3600, ["bearing_wear"])
    baselines: dict[tuple[str, str], FleetBaseline] = {}
    raised: dict[str, float] = {}
    for batch in sim.history(t0 + 2 * 3600, 5.0):
        for r in batch:
            dev = sim.devices[r.device]
            for metric in ("vibration_rms", "bearing_temp", "current"):
                value = r.values.get(metric)
                if value is None or isinstance(value, bool):
                    continue
                base = baselines.setdefault((dev.device_type, metric), FleetBaseline())
                if base.observe(dev.device_id, int(r.ts * S), float(value)).is_anomaly:
                    raised.setdefault(dev.device_id, r.ts)
    faulty = {f.device: f for f in faults}
    assert set(raised) == set(faulty), (raised, faults)
    for device, ts in raised.items():
        assert faulty[device].start <= ts <= faulty[device].start + 300


def test_history_arriving_device_by_device_in_chunks_is_compared_at_its_own_time():
    """A back-fill comes in chunks: each device's next 5 to 40 minutes at once, devices in any
    order (as the demo's simulator and a gateway's backlog send them). Compared with the peers'
    readings of the same time, not with their latest, the healthy motors stay in the pack and
    the worn one leaves it (the latest-reading comparison flagged healthy motors)."""
    t0 = 1_764_000_000.0
    live = t0 + 3600
    sim = Fleet.build("manufacturing", 12, seed=5, rate=1.0, start=t0)
    faults = sim.plan_faults(1, live + 120, live + 180, ["bearing_wear"])
    readings = [r for batch in sim.history(live + 900, 1.0) for r in batch]
    mine: dict[str, list] = {}
    for r in readings:
        if r.ts < live:
            mine.setdefault(r.device, []).append(r)
    rng = np.random.default_rng(5)
    arrival = []
    while mine:
        device = sorted(mine)[rng.integers(len(mine))]
        n = int(rng.integers(300, 2400))
        arrival += mine[device][:n]
        del mine[device][:n]
        if not mine[device]:
            del mine[device]
    arrival += [r for r in readings if r.ts >= live]
    baselines: dict[tuple[str, str], FleetBaseline] = {}
    raised: dict[str, float] = {}
    for r in arrival:
        dev = sim.devices[r.device]
        for metric in ("vibration_rms", "bearing_temp"):
            value = r.values.get(metric)
            if value is None or isinstance(value, bool):
                continue
            base = baselines.setdefault((dev.device_type, metric), FleetBaseline())
            if base.observe(dev.device_id, int(r.ts * S), float(value)).is_anomaly:
                raised.setdefault(dev.device_id, r.ts)
    assert set(raised) == {f.device for f in faults}, raised


def test_the_service_judges_a_device_against_its_siblings_and_keeps_the_pack(tmp_path):
    """Bound with ``fleet``, a motor that leaves the pack is anomalous (contributor ``fleet``,
    the pack's band as expected) while the whole line's load swing is not; the pack survives a
    restart."""
    import asyncio

    from atoll.bus.memory import MemoryBus
    from atoll.core.events import Contributor
    from atoll.core.points import PointBatch, SeriesKey
    from atoll.detect.service import DetectionService

    class Types:
        def get_device(self, device):
            return type("D", (), {"device_type": "motor", "labels": {}})()

    rng = np.random.default_rng(4)
    t0 = 1_764_000_000_000_000
    motors = [f"m{i}" for i in range(8)]

    def step(svc, t, hot):
        load = 30 + 8 * np.sin(t / 60)  # every motor follows the shift load
        batch = PointBatch.concat(
            [
                PointBatch.of_series(
                    SeriesKey("p", m, "temp"),
                    [t0 + t * 1_000_000],
                    [load + i * 0.5 + (hot if m == "m3" else 0.0) + rng.normal(0, 0.2)],
                )
                for i, m in enumerate(motors)
            ]
        )
        return svc.process(batch)

    async def run():
        path = tmp_path / "state.msgpack"
        svc = DetectionService(MemoryBus(), None, registry=Types(), state_path=path)
        with pytest.raises(InvalidInput, match="unknown fleet baseline settings"):
            svc.bind("p", "motor", "ewma", ["temp"], fleet={"nope": 1})
        svc.bind("p", "motor", "ewma", ["temp"], fleet={"warmup": 30, "warmup_s": 30})
        calm = []
        for t in range(300):
            calm += [e for e in await step(svc, t, 0.0) if e.is_anomaly]
        hot = []
        for t in range(300, 330):
            hot += [e for e in await step(svc, t, 3.0) if e.is_anomaly]
        assert not [e for e in calm if e.contributors == [Contributor("fleet", 1.0)]]
        off = [e for e in hot if e.contributors == [Contributor("fleet", 1.0)]]
        assert off and {e.device for e in off} == {"m3"}
        band = off[-1].expected["temp"]
        assert band.lo < band.value < band.hi < off[-1].value  # above what the pack implies
        await svc.stop()

        again = DetectionService(MemoryBus(), None, registry=Types(), state_path=path)
        await again.start()
        assert ("p", "motor", "temp") in again._fleets
        events = await step(again, 330, 3.0)
        assert [e.is_anomaly for e in events if e.device == "m3"] == [True]
        await again.stop()

    asyncio.run(run())
