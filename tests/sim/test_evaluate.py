"""Scoring detections against ground truth."""

from __future__ import annotations

import pytest

from atoll.core.errors import InvalidInput
from atoll.sim import Fault, evaluate, read_ground_truth, write_ground_truth

GT = [
    Fault("a", "bearing_wear", ("vibration_rms",), 1000.0, 2000.0),
    Fault("b", "door_left_open", ("door",), 1000.0, 1500.0),
    Fault("c", "sensor_stuck", ("strain",), 5000.0, 5600.0),
    Fault("a", "sensor_dropout", ("bearing_temp",), 8000.0, 8300.0),
]


def test_precision_recall_and_median_time_to_detect():
    detections = [
        {"device": "a", "ts": 1100.0},  # hit, ttd 100
        {"device": "a", "ts": 1200.0},  # hit again (same fault)
        {"device": "b", "ts": 1600.0},  # inside grace → hit, ttd 600
        {"device": "c", "ts": 4000.0},  # before the fault → false alarm
        {"device": "z", "ts": 1100.0},  # healthy device → false alarm
        {"device": "a", "ts": 8000.0},  # hit, ttd 0
    ]
    r = evaluate(GT, detections, grace_s=300)
    assert r["precision"] == pytest.approx(4 / 6)
    assert r["recall"] == pytest.approx(3 / 4)
    assert r["median_ttd"] == pytest.approx(100.0)
    assert (r["true_positives"], r["false_positives"], r["detected"]) == (4, 2, 3)
    assert r["by_kind"]["sensor_stuck"] == {"faults": 1, "detected": 0}


def test_grace_window_and_merging():
    late = [{"device": "b", "ts": 1900.0}]
    assert evaluate(GT, late, grace_s=300)["precision"] == 0.0
    assert evaluate(GT, late, grace_s=600)["precision"] == 1.0
    burst = [{"device": "z", "metric": "t", "ts": 100.0 + i} for i in range(10)]
    assert evaluate(GT, burst)["false_positives"] == 10
    assert evaluate(GT, burst, merge_s=60)["false_positives"] == 1


def test_metric_matching_is_optional():
    det = [{"device": "a", "metric": "current", "ts": 1100.0}]
    assert evaluate(GT, det)["detected"] == 1
    assert evaluate(GT, det, match_metric=True)["detected"] == 0


def test_time_formats_and_tuple_detections():
    r = evaluate(GT, [("a", 1_700_000_000_000)])  # ms, far from any fault
    assert r["false_positives"] == 1
    gt = [Fault("a", "bearing_wear", ("v",), 1_700_000_000.0, 1_700_000_600.0)]
    for ts in (
        1_700_000_100_000,
        1_700_000_100_000_000,
        "2023-11-14T22:15:00Z",
        ("a", "v", 1_700_000_100.0),
    ):
        det = [ts] if isinstance(ts, tuple) else [{"device": "a", "ts": ts}]
        assert evaluate(gt, det)["median_ttd"] == pytest.approx(100.0), ts


def test_undefined_ratios_are_none():
    r = evaluate([], [])
    assert r["precision"] is None and r["recall"] is None and r["median_ttd"] is None
    r = evaluate(GT, [])
    assert r["recall"] == 0.0 and r["precision"] is None


def test_ground_truth_round_trips_through_json(tmp_path):
    path = tmp_path / "gt.json"
    write_ground_truth(path, GT, seed=3)
    assert read_ground_truth(path) == GT
    assert evaluate(path, [{"device": "a", "ts": 1100.0}])["detected"] == 1


def test_bad_detection_is_a_clear_error():
    with pytest.raises(InvalidInput, match="cannot read detection"):
        evaluate(GT, [{"device": "a"}])
    with pytest.raises(InvalidInput, match="bad fault"):
        evaluate([{"device": "a"}], [])
