"""``atoll bench nab`` on the real corpus, and honesty: no score depends on the future."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.detect.nab import read_scores
from atoll.detect.registry import names
from atoll.detect.replay import replay

pytestmark = pytest.mark.xdist_group("nab")


@pytest.fixture(scope="module")
def corpus(nab_corpus):
    return nab_corpus


def test_bench_nab_writes_nab_layout_and_scores(corpus, tmp_path):
    out = tmp_path / "nab.json"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "nab",
            "--detector",
            "ewma",
            "--scores-dir",
            str(tmp_path / "r"),
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "reward low FN" in res.output and "points/s" in res.output
    files = list((tmp_path / "r" / "ewma").glob("*/ewma_*.csv"))
    assert len(files) == 58
    assert (
        (tmp_path / "r" / "ewma" / "realKnownCause" / "ewma_nyc_taxi.csv")
        .read_text()
        .startswith("timestamp,anomaly_score\n2014-07-01 00:00:00,")
    )
    result = json.loads(out.read_text())
    assert result["corpus"]["points"] == corpus.total_points
    assert result["throughput_points_per_s"] > 0
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert 0 < result["profiles"][profile]["score"] <= 100
    # The raw files score the same as the run did (the layout round-trips through NAB's reader).
    from atoll.detect.nab import profile_scores

    again = profile_scores(corpus, read_scores(tmp_path / "r", "ewma", corpus))
    assert again["standard"]["score"] == pytest.approx(
        result["profiles"]["standard"]["score"], abs=1e-6
    )


def test_bench_nab_missing_data_says_how_to_fix(tmp_path):
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert "--data" in res.output or "ATOLL_NAB_DIR" in res.output


@pytest.mark.parametrize("name", names())
def test_changing_future_values_leaves_earlier_scores_alone(corpus, name):
    stream = corpus.streams["realKnownCause/nyc_taxi.csv"]
    values, ts = stream.values[:4000], stream.timestamps[:4000]
    cut = 2500
    future = values.copy()
    future[cut:] = np.random.default_rng(0).normal(0, 1e5, len(values) - cut)
    a = replay(name, {"s": (values, ts)}).scores["s"]
    b = replay(name, {"s": (future, ts)}).scores["s"]
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.array_equal(a[cut:], b[cut:])


def test_score_only_rescores_published_results(corpus, tmp_path):
    out = tmp_path / "numenta.json"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "nab",
            "--score-only",
            "--scores-dir",
            str(corpus.root / "reference"),
            "--detector",
            "numenta",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    profiles = json.loads(out.read_text())["profiles"]
    assert profiles["standard"]["score"] == pytest.approx(70.10, abs=0.01)
    assert profiles["reward_low_FN_rate"]["score"] == pytest.approx(74.32, abs=0.01)
    res = CliRunner().invoke(
        app, ["bench", "nab", "--score-only", "--scores-dir", str(tmp_path), "--detector", "x"]
    )
    assert res.exit_code == 2 and "missing raw scores" in res.output
