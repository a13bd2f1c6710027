"""The benchmark runs a detector exactly as ``atoll detect --warmup-rows`` does."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.detect.smap_msl import Channel, Corpus, detect_flags, detect_outputs, evaluate
from atoll.detect.smap_msl.bench import GAP, as_table


def _channel(chan_id="T-1", spacecraft="SMAP", spike_at=500):
    rng = np.random.default_rng(1)
    t = np.arange(3000)
    x = 0.5 * np.sin(t / 15) + rng.normal(0, 0.02, len(t))
    x[2000 + spike_at : 2000 + spike_at + 20] += 3.0  # a burst in the test part
    return Channel(
        chan_id,
        spacecraft,
        x[:2000],
        x[2000:],
        (np.array([[spike_at, spike_at + 19]]),),
    )


@pytest.mark.parametrize("detector", ["default", "ewma"])
def test_flags_are_what_atoll_detect_writes(tmp_path, detector):
    chan = _channel()
    table = as_table(chan)
    src, out = tmp_path / "chan.csv", tmp_path / "out.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        w.writerows(
            zip(table.timestamps, (repr(float(v)) for v in table.values[:, 0]), strict=True)
        )
    res = CliRunner().invoke(
        app,
        [
            "detect",
            str(src),
            "--out",
            str(out),
            "--warmup-rows",
            str(len(chan.train)),
            "--detector",
            detector,
        ],
    )
    assert res.exit_code == 0, res.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    written = np.array([r["is_anomaly"] == "1" for r in rows])
    alarms = np.array([r["alarm"] == "1" for r in rows])
    flags = detect_flags(chan, detector)
    assert not written[: len(chan.train)].any()
    np.testing.assert_array_equal(flags, written[len(chan.train) :])
    np.testing.assert_array_equal(detect_outputs(chan, detector)["alarm"], alarms[2000:])
    assert flags[500:530].any()  # the burst is flagged, so the comparison means something


def test_the_test_file_starts_a_day_after_the_train_file():
    table = as_table(_channel())
    steps = np.diff(table.ts_us)
    assert set(steps[:1999].tolist()) == set(steps[2000:].tolist()) == {60_000_000}
    assert steps[1999] == 60_000_000 + GAP.astype("timedelta64[us]").astype(np.int64)
    assert table.timestamps[2000] == "2018-01-03T09:20:00"


def test_evaluate_any_flagger():
    corpus = Corpus(
        Path("."),
        {"T-1": _channel(), "M-1": _channel("M-1", "MSL", spike_at=200)},
    )
    seen = []

    def beyond_train_range(chan):
        return np.abs(chan.test) > np.abs(chan.train).max() + 1

    result = evaluate(corpus, beyond_train_range, buffer=100, on_channel=seen.append)
    assert seen == ["T-1", "M-1"]
    assert result["with_buffer"]["overall"]["tp"] == 2
    assert result["with_buffer"]["spacecraft"]["MSL"]["fp"] == 0
    assert result["flagged_points"] == 40
    assert result["sequences"] == {"T-1": [[500, 519]], "M-1": [[200, 219]]}
    assert result["without_buffer"]["overall"]["coverage"] == pytest.approx(40 / 2000)
    assert result["with_buffer"]["overall"]["covered_points"] == 2 * 220
    held_out = evaluate(corpus.subset(spacecraft="MSL"), beyond_train_range)
    assert list(held_out["with_buffer"]["channels"]) == ["M-1"]
    assert {k: held_out["with_buffer"]["overall"][k] for k in ("tp", "fp", "fn")} == {
        "tp": 1,
        "fp": 0,
        "fn": 0,
    }
