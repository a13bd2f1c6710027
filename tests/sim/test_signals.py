"""Signals: reproducible with a seed, realistic (in range, cyclic, correlated), faults visible."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.sim import Fault, Fleet
from atoll.solutions import discover

T0 = 1_700_006_400.0  # a Wednesday, 00:00 UTC


def _series(fleet: Fleet, until: float, step: float) -> dict[tuple[str, str], tuple[list, list]]:
    out: dict[tuple[str, str], tuple[list, list]] = {}
    for readings in fleet.history(until, step):
        for r in readings:
            dev = fleet.devices[r.device].device_id
            for k, v in r.values.items():
                ts, vs = out.setdefault((dev, k), ([], []))
                ts.append(r.ts)
                vs.append(v)
    return out


def _arr(series, key):
    ts, vs = series[key]
    return np.asarray(ts), np.asarray(vs, dtype=float)


def test_same_seed_same_signals_other_seed_other_signals():
    def run(seed):
        f = Fleet.build(["retail", "manufacturing"], 12, seed=seed, start=T0)
        hist = [(r.device, r.ts, r.values) for rs in f.history(T0 + 3600, 30) for r in rs]
        live = [(r.device, r.ts, r.values) for r in f.advance(T0 + 3600 + 5)]
        return hist, live

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("template", [t.name for t in discover()])
def test_healthy_devices_stay_in_their_expected_range(template):
    fleet = Fleet.build(template, 12, seed=11, start=T0)
    series = _series(fleet, T0 + 86400 * 1.5, 90)
    for (dev, metric), (_ts, vs) in series.items():
        spec = fleet.device_type(dev).metric(metric)
        v = np.asarray(vs, dtype=float)
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        assert ((v >= lo) & (v <= hi)).all(), (dev, metric, v.min(), v.max())
        if spec.type == "float":
            assert len(set(vs)) > 1, f"{dev}.{metric} is constant"


def test_daily_and_weekly_cycles():
    fleet = Fleet.build("retail", 6, seed=2, start=T0)
    series = _series(fleet, T0 + 7 * 86400, 300)
    meters = [k for k in series if "store-meter" in k[0] and k[1] == "power"]
    assert meters
    ts, v = _arr(series, meters[0])
    hour = (ts % 86400) / 3600
    weekday = ((ts // 86400) + 3) % 7
    workday = weekday < 5
    # Opening hours draw far more power than the night.
    assert v[workday & (hour > 10) & (hour < 16)].mean() > v[(hour > 0) & (hour < 5)].mean() + 30
    # Weekends run lower than weekdays during the day.
    day = (hour > 10) & (hour < 16)
    assert v[day & ~workday].mean() < v[day & workday].mean() - 5


def test_correlated_sensors():
    fleet = Fleet.build("manufacturing", 10, seed=3, start=T0)
    series = _series(fleet, T0 + 86400, 60)
    motor = next(k[0] for k in series if "-motor-" in k[0])
    _, current = _arr(series, (motor, "current"))
    _, vibration = _arr(series, (motor, "vibration_rms"))
    _, bearing = _arr(series, (motor, "bearing_temp"))
    assert np.corrcoef(current, vibration)[0, 1] > 0.6
    assert np.corrcoef(current, bearing)[0, 1] > 0.6
    pump = next(k[0] for k in series if "-pump-" in k[0])
    _, flow = _arr(series, (pump, "flow"))
    _, pressure = _arr(series, (pump, "pressure"))
    assert np.corrcoef(flow, pressure)[0, 1] < -0.6  # the pump curve


def test_compressor_cycles_drive_the_case_temperature():
    fleet = Fleet.build("retail", 4, seed=4, start=T0)
    series = _series(fleet, T0 + 6 * 3600, 10)
    freezer = next(k[0] for k in series if "-freezer-" in k[0])
    _, power = _arr(series, (freezer, "compressor_power"))
    _, temp = _arr(series, (freezer, "temperature"))
    assert (power > 200).mean() == pytest.approx(0.45, abs=0.08)  # the duty cycle
    # Running compressor → the case cools: temperature falls while power is high.
    dtemp = np.diff(temp)
    assert dtemp[power[1:] > 200].mean() < 0 < dtemp[power[1:] < 100].mean()


def _with_fault(template, dtype, kind, start, end, *, n=4, seed=9, step=15, span=4 * 3600):
    fleet = Fleet.build(template, n, seed=seed, start=T0)
    device = next(d.device_id for d in fleet.devices if d.device_type == dtype)
    spec = fleet.device_type(device).faults[kind]
    fault = Fault(device, kind, tuple(e.metric for e in spec.effects), T0 + start, T0 + end)
    fleet.inject(fault)
    return device, fault, _series(fleet, T0 + span, step)


def _split(ts, v, fault, settle=0.0):
    before = v[ts < fault.start]
    during = v[(ts >= fault.start + settle) & (ts < fault.end)]
    after = v[ts >= fault.end]
    return before, during, after


def test_bearing_wear_raises_vibration_and_temperature_gradually():
    dev, fault, s = _with_fault("manufacturing", "motor", "bearing_wear", 3600, 7200)
    ts, vib = _arr(s, (dev, "vibration_rms"))
    before, during, _ = _split(ts, vib, fault)
    assert during[-30:].mean() > before.max() + 3
    half = len(during) // 2
    assert during[:half].mean() < during[half:].mean()  # gradual, not a step
    ts, temp = _arr(s, (dev, "bearing_temp"))
    before, during, _ = _split(ts, temp, fault)
    assert during[-30:].mean() > before.mean() + 15


def test_compressor_failure_warms_the_case_past_its_limit():
    dev, fault, s = _with_fault("retail", "freezer", "compressor_failure", 3600, 7200)
    ts, power = _arr(s, (dev, "compressor_power"))
    _, during, after = _split(ts, power, fault)
    assert (during == 0).all() and after.max() > 200
    ts, temp = _arr(s, (dev, "temperature"))
    before, during, _ = _split(ts, temp, fault)
    assert before.max() < -15 < during.max()


def test_door_left_open():
    dev, fault, s = _with_fault("healthcare", "vaccine_fridge", "door_left_open", 3600, 4800)
    ts, door = _arr(s, (dev, "door"))
    _, during, _ = _split(ts, door, fault)
    assert (during == 1).all()
    ts, temp = _arr(s, (dev, "temperature"))
    before, during, _ = _split(ts, temp, fault)
    assert before.max() < 8 < during.max()


def test_sensor_stuck_repeats_one_value_then_recovers():
    dev, fault, s = _with_fault("construction", "structure_node", "sensor_stuck", 3600, 4500)
    ts, v = _arr(s, (dev, "strain"))
    before, during, after = _split(ts, v, fault)
    assert len(during) > 50 and len(set(during)) == 1
    assert len(set(before[-50:])) > 10 and len(set(after[:50])) > 10


def test_sensor_dropout_sends_nothing_for_the_metric():
    dev, fault, s = _with_fault("manufacturing", "motor", "sensor_dropout", 3600, 4000)
    ts, _ = _arr(s, (dev, "bearing_temp"))
    assert not ((ts >= fault.start) & (ts < fault.end)).any()
    assert (ts < fault.start).any() and (ts >= fault.end).any()
    ts, _ = _arr(s, (dev, "current"))  # the other sensors keep reporting
    assert ((ts >= fault.start) & (ts < fault.end)).sum() > 20


def test_structural_shift_is_a_step():
    dev, fault, s = _with_fault("construction", "structure_node", "structural_shift", 3600, 5400)
    ts, tilt = _arr(s, (dev, "tilt"))
    before, during, _ = _split(ts, tilt, fault)
    assert during.min() > before.max() + 0.4
    ts, strain = _arr(s, (dev, "strain"))
    before, during, _ = _split(ts, strain, fault)
    assert during.min() > before.max() + 100


def test_cash_running_out():
    dev, fault, s = _with_fault("finance", "atm", "cash_running_out", 3600, 5400)
    ts, cash = _arr(s, (dev, "cash_level"))
    before, during, _ = _split(ts, cash, fault)
    assert before.min() > 15
    assert during[-20:].max() == 0
    assert during[0] > during[len(during) // 4] > 0  # drains, not jumps
