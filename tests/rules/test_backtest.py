"""Backtests replay stored history through a rule."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.core.points import PointBatch, SeriesKey
from atoll.rules.backtest import backtest
from atoll.rules.loading import parse_rule
from atoll.store.memory import MemoryStore

T0 = 1_800_000_000_000_000
S = 1_000_000


def rule(condition, devices=("d1",)):
    return parse_rule(
        {"name": "r", "project": "p", "target": {"devices": list(devices)}, "condition": condition}
    )


def store_with(**series):
    store = MemoryStore()
    for name, values in series.items():
        device, metric = name.split("__")
        ts = T0 + np.arange(len(values)) * 60 * S  # one reading a minute
        store.append(
            PointBatch.of_series(SeriesKey("p", device, metric), ts, np.array(values, float))
        )
    return store


def test_threshold_episodes_with_hysteresis():
    store = store_with(d1__t=[20, 31, 35, 27, 24, 20, 40, 41], d2__t=[50] * 8)
    r = rule({"type": "threshold", "metric": "t", "value": 30, "clear": 25})
    bt = backtest(r, ["d1"], store, T0, T0 + 3600 * S)
    assert bt.points == 8 and not bt.truncated
    assert [(e.raised_at, e.cleared_at, e.value) for e in bt.episodes] == [
        (T0 + 60 * S, T0 + 240 * S, 31.0),
        (T0 + 360 * S, None, 40.0),
    ]


def test_for_duration_and_no_data_need_the_timer_passes():
    # Above 30 for minutes 1..4, then silence from minute 5 (the last reading).
    store = store_with(d1__t=[20, 31, 32, 33, 34, 10])
    hot = backtest(
        rule({"type": "threshold", "metric": "t", "value": 30, "for": "2m"}),
        ["d1"],
        store,
        T0,
        T0 + 3600 * S,
    )
    assert [(e.raised_at - T0) // S for e in hot.episodes] == [180]
    quiet = backtest(rule({"type": "no_data", "timeout": "10m"}), ["d1"], store, T0, T0 + 3600 * S)
    (ep,) = quiet.episodes
    assert ep.raised_at == T0 + 900 * S and ep.cleared_at is None  # 5 min + 10 min


def test_composite_across_devices_and_metrics_of_one_reading():
    store = store_with(d1__t=[90, 90, 90], d1__h=[1, 9, 9], pump__flow=[0.5, 0.5, 5])
    r = rule(
        {
            "type": "all",
            "conditions": [
                {"type": "threshold", "metric": "t", "value": 80},
                {"type": "threshold", "metric": "h", "op": "<", "value": 5},
                {"type": "threshold", "metric": "flow", "op": "<", "value": 1, "device": "pump"},
            ],
        }
    )
    bt = backtest(r, ["d1"], store, T0, T0 + 600 * S)
    assert [
        ((e.raised_at - T0) // S, e.cleared_at and (e.cleared_at - T0) // S) for e in bt.episodes
    ] == [(0, 60)]


def test_anomaly_scores_come_from_the_stored_score_series():
    store = store_with(**{"d1__t.anomaly_score": [0.1, 0.95, 0.2]}, d1__t=[1, 2, 3])
    bt = backtest(
        rule({"type": "anomaly", "metric": "t", "value": 0.9}), ["d1"], store, T0, T0 + 600 * S
    )
    assert [(e.raised_at - T0) // S for e in bt.episodes] == [60]


def test_bad_ranges():
    with pytest.raises(InvalidInput):
        backtest(rule({"type": "no_data", "timeout": 1}), ["d1"], MemoryStore(), T0, T0)
