"""``atoll detect`` on CSV files a user might have."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from atoll.cli.main import app

runner = CliRunner()


def _write(path, header, rows, delim=","):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delim)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _run(*args):
    return runner.invoke(app, ["detect", *map(str, args)])


@pytest.fixture
def machine(tmp_path):
    """Two correlated sensors, semicolon-separated, with a text column, a gap and two anomalies."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):
        a = 50 + 5 * np.sin(i / 20) + rng.normal(0, 0.3)
        b = 2 * a + rng.normal(0, 0.3)
        if i == 400:
            a += 40  # a spike on one sensor
        if i == 500:
            b = 2 * a + 10  # both in their usual ranges, but the relation is broken
        rows.append(
            [
                f"2026-11-23T{i // 60 % 24:02d}:{i % 60:02d}:00Z",
                f"{a:.3f}",
                "" if i == 300 else f"{b:.3f}",
                "pump-7",
            ]
        )
    return _write(tmp_path / "machine.csv", ["time", "flow", "pressure", "site"], rows, ";"), rows


def test_joint_detection_on_a_semicolon_file(machine, tmp_path):
    path, rows = machine
    # 100 rows are too few to fit a model of normal on: the streaming default learns them.
    res = _run(path, "--out", tmp_path / "out.csv", "--warmup-rows", 100)
    assert res.exit_code == 0, res.output
    assert "flow, pressure, ignored site (not numbers)" in res.output
    assert "Joint(detector='ensemble'" in res.output
    header, out = _read(tmp_path / "out.csv")
    assert header == ["timestamp", "anomaly_score", "is_anomaly", "alarm"]
    assert len(out) == len(rows) and out[0][0] == rows[0][0]
    scores = np.array([float(r[1]) for r in out])
    flags = np.array([r[2] == "1" for r in out])
    alarms = np.array([r[3] == "1" for r in out])
    assert np.all((scores >= 0) & (scores <= 1))
    assert (
        np.all(scores[:100] == 0) and not flags[:100].any()
    )  # warm-up rows are learned, not judged
    assert flags[400] and flags[500]
    assert flags.sum() <= 6
    np.testing.assert_array_equal(alarms, flags & ~np.r_[False, flags[:-1]])


def test_with_history_the_default_fits_a_model_of_normal(machine, tmp_path):
    path, rows = machine
    res = _run(path, "--out", tmp_path / "out.csv", "--warmup-rows", 300)
    assert res.exit_code == 0, res.output
    assert "Joint(detector='fitted'" in res.output
    _, out = _read(tmp_path / "out.csv")
    scores = np.array([float(r[1]) for r in out])
    flags = np.array([r[2] == "1" for r in out])
    alarms = np.array([r[3] == "1" for r in out])
    assert not scores[:300].any() and not flags[:300].any()
    assert np.all((scores >= 0) & (scores <= 1))
    # is_anomaly is a condition: up from the spike while the windows hold it, then down again.
    # Row 300, a missing pressure, is not flagged: the healthy baseline across the sensors fills
    # it with what the other sensor implies.
    assert flags[400:430].all() and flags[500]
    assert not flags[300:400].any() and not flags[470:500].any() and not flags[570:].any()
    assert set(np.flatnonzero(alarms).tolist()) == {400, 500}
    np.testing.assert_array_equal(alarms, flags & ~np.r_[False, flags[:-1]])
    assert f"{int(flags.sum())} anomalous rows in {int(alarms.sum())} alarms" in res.output


def test_scores_are_online(machine, tmp_path):
    path, rows = machine
    _run(path, "--out", tmp_path / "a.csv")
    changed = [r[:] for r in rows]
    for r in changed[450:]:
        r[1] = "999"
    _run(
        _write(tmp_path / "changed.csv", ["time", "flow", "pressure", "site"], changed, ";"),
        "--out",
        tmp_path / "b.csv",
    )
    a, b = _read(tmp_path / "a.csv")[1], _read(tmp_path / "b.csv")[1]
    assert a[:450] == b[:450] and a[450:] != b[450:]


def test_single_column_epoch_millis_tabs_and_named_detector(tmp_path):
    rows = [[1_700_000_000_000 + i * 60_000, 10.0 + (i % 7) * 0.1] for i in range(300)] + [
        [1_700_018_000_000, 30.0]
    ]
    path = _write(tmp_path / "one.tsv", ["epoch_ms", "temperature"], rows, "\t")
    res = _run(
        path,
        "--out",
        tmp_path / "o.csv",
        "--timestamp-column",
        "epoch_ms",
        "--detector",
        "windowed_gaussian",
    )
    assert res.exit_code == 0, res.output
    _, out = _read(tmp_path / "o.csv")
    assert out[-1][2] == "1" and out[-1][0] == "1700018000000"


@pytest.mark.parametrize(
    ("content", "args", "message", "fix"),
    [
        (None, [], "no such file", "CSV file"),
        ("", [], "header row", "column names"),
        ("when,value\n2024-01-01,1\n", [], "no timestamp column", "--timestamp-column"),
        (
            "time,value\n2024-01-01,1\n",
            ["--timestamp-column", "stamp"],
            "no column 'stamp'",
            "--timestamp-column",
        ),
        ("time,name\n2024-01-01,abc\n", [], "no numeric columns", "column of numbers"),
        ("time,value\n2024-01-01,1\nyesterday,2\n", [], "row 3", "ISO-8601"),
    ],
)
def test_bad_input_gets_an_error_with_the_fix(tmp_path, content, args, message, fix):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    res = _run(path, "--out", tmp_path / "o.csv", *args)
    assert res.exit_code == 2
    assert message in res.output and fix in res.output
    assert not (tmp_path / "o.csv").exists()


def test_unknown_detector(tmp_path):
    path = _write(tmp_path / "in.csv", ["ts", "v"], [["2024-01-01T00:00:00", 1]])
    res = _run(path, "--out", tmp_path / "o.csv", "--detector", "oracle")
    assert (
        res.exit_code == 2 and "no detector named 'oracle'" in res.output and "ewma" in res.output
    )


def test_detectors_lists_names():
    res = runner.invoke(app, ["detectors"])
    assert res.exit_code == 0 and "default -> ensemble (fitted with --warmup-rows >= 256)" in (
        res.output
    )
    assert "seasonal" in res.output and "fitted" in res.output
