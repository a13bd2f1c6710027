"""``atoll rul train|predict``: the C-MAPSS contract, end to end through the command line."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.testing.rul import synthetic_cmapss, write_cmapss

runner = CliRunner()


def test_train_then_predict_writes_one_row_per_unit(tmp_path):
    train, _ = synthetic_cmapss(units=24, seed=0)
    test, left = synthetic_cmapss(units=12, seed=5, cut=True)
    write_cmapss(train, tmp_path / "train.txt")
    write_cmapss(test, tmp_path / "test.txt")
    model = tmp_path / "model"
    r = runner.invoke(
        app,
        [
            "rul",
            "train",
            str(tmp_path / "train.txt"),
            "--format",
            "cmapss",
            "--model",
            str(model),
            "--folds",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "24 units" in r.output and "RMSE" in r.output and (model / "model.json").is_file()
    out = tmp_path / "pred.csv"
    r = runner.invoke(
        app,
        [
            "rul",
            "predict",
            str(tmp_path / "test.txt"),
            "--format",
            "cmapss",
            "--model",
            str(model),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["unit", "rul"] and [int(u) for u, _ in rows[1:]] == list(range(1, 13))
    err = [abs(float(rul) - left[int(u)]) for u, rul in rows[1:]]
    assert sum(err) / len(err) < 25, err
    r = runner.invoke(
        app,
        [
            "rul",
            "predict",
            str(tmp_path / "test.txt"),
            "--model",
            str(model),
            "--out",
            str(out),
            "--intervals",
        ],
    )
    assert r.exit_code == 0 and next(csv.reader(out.open())) == [
        "unit",
        "rul",
        "rul_low",
        "rul_high",
    ]


def test_mistakes_get_a_message_with_the_fix_and_exit_2(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("unit cycle s1\n1 1 0\n")
    r = runner.invoke(app, ["rul", "train", str(bad), "--model", str(tmp_path / "m")])
    assert r.exit_code == 2 and "line 1" in r.output and "26 whitespace-separated" in r.output
    r = runner.invoke(
        app, ["rul", "predict", str(bad), "--model", str(tmp_path / "none"), "--out", "x.csv"]
    )
    assert r.exit_code == 2 and "atoll rul train" in r.output
    r = runner.invoke(app, ["rul", "train", str(bad), "--model", "m", "--format", "csv"])
    assert r.exit_code == 2 and "cmapss" in r.output
