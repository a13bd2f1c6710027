"""Each condition type through the engine, with a fake clock (times in seconds)."""

from __future__ import annotations

import pytest

from atoll.rules.clock import FakeClock
from atoll.rules.directory import StaticDirectory
from atoll.rules.engine import RuleEngine
from atoll.rules.loading import parse_rule

T0 = 1_800_000_000  # s


def us(s: float) -> int:
    return int(s * 1_000_000)


def make(condition: dict, *, target=None, schedule=None, directory=None):
    clock = FakeClock(us(T0))
    eng = RuleEngine(clock, directory)
    rule = parse_rule(
        {
            "name": "r",
            "project": "p",
            "target": target or {"device": "d1"},
            "condition": condition,
            **({"schedule": schedule} if schedule else {}),
        }
    )
    eng.upsert(rule)
    return eng, clock


def feed(eng, clock, at: float, device="d1", **values):
    clock.set(us(T0 + at))
    return [(c.device, c.active) for c in eng.on_telemetry("p", device, us(T0 + at), values)]


def tick(eng, clock, at: float):
    clock.set(us(T0 + at))
    return [(c.device, c.active) for c in eng.on_tick()]


def test_threshold_with_hysteresis_raises_at_value_and_clears_at_clear():
    eng, clock = make({"type": "threshold", "metric": "t", "op": ">", "value": 30, "clear": 25})
    assert feed(eng, clock, 0, t=20) == [("d1", False)]
    assert feed(eng, clock, 1, t=30) == []  # not strictly above
    assert feed(eng, clock, 2, t=31) == [("d1", True)]
    assert feed(eng, clock, 3, t=26) == []  # between clear and value: still raised
    assert feed(eng, clock, 4, t=29.9) == []
    assert feed(eng, clock, 5, t=24.9) == [("d1", False)]
    assert feed(eng, clock, 6, t=29) == []  # below value: stays clear


def test_threshold_below_without_hysteresis():
    eng, clock = make({"type": "threshold", "metric": "p", "op": "<=", "value": 1.0})
    assert feed(eng, clock, 0, p=1.0) == [("d1", True)]
    assert feed(eng, clock, 1, p=1.01) == [("d1", False)]


def test_threshold_ignores_other_metrics_and_nan():
    eng, clock = make({"type": "threshold", "metric": "t", "value": 30})
    assert feed(eng, clock, 0, h=99) == []
    assert feed(eng, clock, 1, t=31) == [("d1", True)]
    assert feed(eng, clock, 2, t=float("nan")) == []
    assert eng.state(eng.rules["r"].id, "d1") is True


def test_for_duration_needs_the_condition_to_hold_and_fires_on_the_timer():
    eng, clock = make({"type": "threshold", "metric": "t", "value": 30, "for": "1m"})
    assert feed(eng, clock, 0, t=35) == [("d1", False)]  # first answer: not yet
    assert tick(eng, clock, 59.9) == []
    assert tick(eng, clock, 60) == [("d1", True)]  # no new data needed
    assert feed(eng, clock, 61, t=10) == [("d1", False)]
    # A dip resets the timer.
    assert feed(eng, clock, 100, t=35) == []
    assert feed(eng, clock, 130, t=10) == []
    assert feed(eng, clock, 150, t=35) == []
    assert tick(eng, clock, 200) == []
    assert tick(eng, clock, 210) == [("d1", True)]


def test_rate_of_change_per_minute_over_consecutive_readings():
    eng, clock = make(
        {"type": "rate", "metric": "t", "op": ">", "value": 5, "per": "1m", "clear": 1}
    )
    assert feed(eng, clock, 0, t=20) == [("d1", False)]  # one point: no rate yet
    assert feed(eng, clock, 60, t=24) == []  # +4/min
    assert feed(eng, clock, 120, t=30) == [("d1", True)]  # +6/min
    assert feed(eng, clock, 180, t=33) == []  # +3/min: above clear
    assert feed(eng, clock, 240, t=33.5) == [("d1", False)]  # +0.5/min


def test_rate_absolute_over_a_window():
    eng, clock = make(
        {"type": "rate", "metric": "level", "op": ">=", "value": 10, "window": 30, "absolute": True}
    )
    feed(eng, clock, 0, level=100)
    feed(eng, clock, 10, level=95)
    assert feed(eng, clock, 20, level=90) == []  # -0.5/s over 20 s
    assert eng.state("r", "d1") is False
    # Within 30 s the level falls 300: |rate| over the window is >= 10/s.
    assert feed(eng, clock, 30, level=-200) == [("d1", True)]


def test_anomaly_score_any_metric_and_clear_level():
    eng, clock = make({"type": "anomaly", "value": 0.9, "clear": 0.5})
    clock.set(us(T0))
    assert eng.on_anomaly("p", "d1", "t", us(T0), 0.95)[0].active is True
    assert eng.on_anomaly("p", "d1", "h", us(T0 + 1), 0.99) == []
    assert eng.on_anomaly("p", "d1", "t", us(T0 + 2), 0.2) == []  # h still anomalous
    changes = eng.on_anomaly("p", "d1", "h", us(T0 + 3), 0.4)
    assert [c.active for c in changes] == [False]
    # Telemetry with the same metric name does not count as a score.
    assert feed(eng, clock, 4, t=0.99) == []


def test_no_data_fires_on_the_timer_and_clears_with_data():
    eng, clock = make({"type": "no_data", "timeout": "5m"})
    assert tick(eng, clock, 299) == []
    assert tick(eng, clock, 300) == [("d1", True)]  # never heard from since we started
    assert feed(eng, clock, 301, anything=1) == [("d1", False)]
    assert tick(eng, clock, 600) == []
    assert tick(eng, clock, 601) == [("d1", True)]


def test_no_data_for_one_metric_ignores_others():
    eng, clock = make({"type": "no_data", "metric": "hb", "timeout": 10})
    feed(eng, clock, 0, hb=1)
    feed(eng, clock, 9, t=1)
    assert tick(eng, clock, 10) == [("d1", True)]


def test_all_across_two_devices():
    eng, clock = make(
        {
            "type": "all",
            "conditions": [
                {"type": "threshold", "metric": "t", "value": 80},
                {"type": "threshold", "metric": "flow", "op": "<", "value": 1, "device": "pump"},
            ],
        }
    )
    assert feed(eng, clock, 0, t=90) == [("d1", False)]  # nothing from the pump yet
    assert feed(eng, clock, 1, device="pump", flow=0.5) == [("d1", True)]
    assert feed(eng, clock, 2, device="pump", flow=2) == [("d1", False)]


def test_any_with_for_on_the_composite():
    eng, clock = make(
        {
            "type": "any",
            "for": 10,
            "conditions": [
                {"type": "threshold", "metric": "a", "value": 1},
                {"type": "threshold", "metric": "b", "value": 1},
            ],
        }
    )
    assert feed(eng, clock, 0, a=2) == [("d1", False)]
    assert feed(eng, clock, 5, a=0, b=2) == []  # still true (b), timer keeps running
    assert tick(eng, clock, 10) == [("d1", True)]


def test_schedule_gates_the_condition_in_local_time():
    # 1_800_000_000 s = 2027-01-15 08:00 UTC, a Friday; 09:00 in Paris.
    sched = {
        "timezone": "Europe/Paris",
        "windows": [{"days": ["fri"], "start": "08:30", "end": "09:30"}],
    }
    eng, clock = make({"type": "threshold", "metric": "t", "value": 1}, schedule=sched)
    assert feed(eng, clock, 0, t=5) == [("d1", True)]
    assert tick(eng, clock, 1800) == [("d1", False)]  # 09:30 Paris: window ends


def test_schedule_window_past_midnight():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from atoll.rules.model import Window

    w = Window(days=["fri"], start="22:00", end="06:00")
    tz = ZoneInfo("UTC")
    assert w.contains(datetime(2027, 1, 15, 23, 0, tzinfo=tz))  # Fri 23:00
    assert w.contains(datetime(2027, 1, 16, 5, 59, tzinfo=tz))  # Sat 05:59
    assert not w.contains(datetime(2027, 1, 16, 6, 0, tzinfo=tz))
    assert not w.contains(datetime(2027, 1, 15, 5, 0, tzinfo=tz))  # Fri early: Thu's night


def test_device_type_target_adopts_devices_as_they_appear():
    directory = StaticDirectory({"p": {"b1": "boiler", "x": "pump"}})
    eng, clock = make(
        {"type": "threshold", "metric": "t", "value": 90},
        target={"device_type": "boiler"},
        directory=directory,
    )
    assert eng.devices("r") == ["b1"]
    directory.add("p", "b2", "boiler")
    assert feed(eng, clock, 0, device="b2", t=95) == [("b2", True)]
    assert feed(eng, clock, 1, device="x", t=95) == []
    assert eng.devices("r") == ["b1", "b2"]


def test_device_list_target():
    eng, clock = make(
        {"type": "threshold", "metric": "t", "value": 1}, target={"devices": ["a", "b"]}
    )
    assert feed(eng, clock, 0, device="a", t=2) == [("a", True)]
    assert feed(eng, clock, 0, device="b", t=2) == [("b", True)]
    assert feed(eng, clock, 0, device="c", t=2) == []


def test_future_timestamps_are_judged_at_the_clock():
    eng, clock = make({"type": "threshold", "metric": "t", "value": 1, "for": 60})
    clock.set(us(T0))
    # Device clock one hour ahead: the "for" must not be satisfied by its timestamps.
    eng.on_telemetry("p", "d1", us(T0 + 3600), {"t": 5})
    clock.set(us(T0 + 30))
    assert eng.on_telemetry("p", "d1", us(T0 + 3630), {"t": 5}) == []


@pytest.mark.parametrize("value", ["5m", 300, "300s", "4m60s"])
def test_durations_accept_units(value):
    eng, clock = make({"type": "no_data", "timeout": value})
    assert tick(eng, clock, 300) == [("d1", True)]


def test_refresh_watches_devices_registered_later_even_if_silent():
    directory = StaticDirectory({"p": {"b1": "boiler"}})
    eng, clock = make(
        {"type": "no_data", "timeout": 60}, target={"device_type": "boiler"}, directory=directory
    )
    directory.add("p", "b2", "boiler")
    assert eng.refresh() == 1 and eng.refresh() == 0
    assert sorted(tick(eng, clock, 60)) == [("b1", True), ("b2", True)]


def test_anomaly_without_value_follows_the_detectors_own_decision():
    eng, clock = make({"type": "anomaly", "metric": "t", "for": 2})

    def score(at, x, flagged=None):
        clock.set(us(T0 + at))
        return [c.active for c in eng.on_anomaly("p", "d1", "t", us(T0 + at), x, flagged)]

    # A high score the detector did not flag (its threshold is higher) does not count.
    assert score(0, 0.99, False) == [False]
    assert score(1, 0.9999, True) == []
    assert score(3, 0.9999, True) == [True]
    assert score(4, 0.999, False) == [False]
    # An event without a decision falls back to a 0.8 score.
    assert score(5, 0.85) == []
    assert [c.active for c in eng.on_tick()] == []
    assert tick(eng, clock, 7) == [("d1", True)]


def test_clear_for_keeps_a_flapping_condition_raised():
    eng, clock = make({"type": "anomaly", "metric": "t", "clear_for": "5m"})

    def score(at, flagged):
        clock.set(us(T0 + at))
        return [c.active for c in eng.on_anomaly("p", "d1", "t", us(T0 + at), 0.5, flagged)]

    assert score(0, True) == [True]
    assert score(10, False) == []  # one normal reading does not clear it
    assert tick(eng, clock, 200) == []
    assert score(250, True) == [] and score(260, False) == []  # re-flagged: the hold restarts
    assert tick(eng, clock, 559) == []
    assert tick(eng, clock, 560) == [("d1", False)]


def test_anomaly_k_of_n_within_a_window():
    """``min_count: 3, window: 2m``: three flagged readings of one metric within two minutes
    raise, a lone one or ones too far apart do not, and the alarm clears as hits age out."""
    eng, clock = make({"type": "anomaly", "min_count": 3, "window": "2m"})

    def score(at, flagged, metric="t"):
        clock.set(us(T0 + at))
        return [c.active for c in eng.on_anomaly("p", "d1", metric, us(T0 + at), 0.5, flagged)]

    assert score(0, True) == [False]  # the first evaluation reports the state
    assert score(10, False) == [] and score(100, True) == []
    assert score(200, True) == []  # t=0 is out of the window by now: 2 hits in 2 minutes
    assert score(205, True, "h") == []  # another metric's hit does not add up
    assert score(210, True) == [True]  # 100, 200, 210
    assert score(215, False) == []  # still 3 hits in the last 2 minutes
    assert tick(eng, clock, 300) == [("d1", False)]  # the hit at 100 aged out
    with pytest.raises(Exception, match="min_count and window go together"):
        parse_rule(
            {
                "name": "x",
                "target": {"device": "d1"},
                "condition": {"type": "anomaly", "min_count": 3},
            },
            project="p",
        )


def test_an_anomaly_alarm_names_the_reading_and_what_was_expected_not_a_zero_score():
    """A detector's own decision may come with score 0: the alarm says what was read and what
    the model expected instead of "anomaly score 0" (issue #13's user walk)."""
    eng, clock = make({"type": "anomaly", "metric": "t"})
    why = {
        "metric": "t",
        "value": 45.25,
        "score": 0.0,
        "expected": {"t": {"value": 20.0, "lo": 19.5, "hi": 20.5}},
    }
    clock.set(us(T0))
    (change,) = eng.on_anomaly("p", "d1", "t", us(T0), 0.0, True, why)
    assert change.active
    assert (
        change.detail == "d1.t = 45.25, expected 20 (19.5 to 20.5), anomaly flagged by its detector"
    )
    assert "score 0" not in change.detail
    # A rule comparing the score names it, with the reading.
    eng, clock = make({"type": "anomaly", "metric": "t", "value": 0.9})
    (change,) = eng.on_anomaly("p", "d1", "t", us(T0), 0.95, None, {**why, "score": 0.95})
    assert change.detail == "d1.t = 45.25, expected 20 (19.5 to 20.5), anomaly score 0.95 >= 0.9"
    # Without an explanation: the score alone, as before.
    eng, clock = make({"type": "anomaly", "metric": "t", "value": 0.9})
    (change,) = eng.on_anomaly("p", "d1", "t", us(T0), 0.95)
    assert change.detail == "d1.t anomaly score 0.95 >= 0.9"
