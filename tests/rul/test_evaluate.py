"""``atoll.rul.evaluate``: cross-validation over engines, and ``atoll bench cmapss``."""

from __future__ import annotations

from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.rul import read_cmapss
from atoll.rul.evaluate import cross_validate
from atoll.testing.rul import synthetic_cmapss, write_cmapss


def test_every_engine_is_judged_by_a_model_that_never_saw_it(tmp_path):
    rows, _ = synthetic_cmapss(units=24, seed=4)
    t = read_cmapss(write_cmapss(rows, tmp_path / "train.txt"))
    r = cross_validate(t, folds=2, fit_folds=2, draws=5)
    every, one = r["every_cut_point"], r["one_cut_per_engine"]
    assert r["engines"] == 24 and len(r["train_seconds_per_model"]) == 2
    left = t.rul_to_failure()
    assert every["cut_points"] == int(((left >= 5) & (left <= 150)).sum())
    assert 0 < every["rmse"] < 40 and every["mae"] <= every["rmse"]
    assert 0.5 < every["interval_coverage"] <= 1.0 and every["interval_mean_width"] > 0
    lo, hi = one["rmse_range"]
    assert lo <= one["rmse_mean"] <= hi and one["draws"] == 5
    assert r["predict_cycles_per_s"] > 0


def test_bench_cmapss_without_data_says_where_to_get_it(tmp_path):
    r = CliRunner().invoke(app, ["bench", "cmapss", "--data", str(tmp_path / "none.txt")])
    assert r.exit_code == 2 and "no such file" in r.output and "ATOLL_CMAPSS_DIR" in r.output
