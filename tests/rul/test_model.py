"""``RulModel``: fitted on run-to-failure fleets, judged on units it never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.rul import RulModel, Trajectories, phm08_score, read_cmapss
from atoll.testing.rul import synthetic_cmapss, write_cmapss


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("rul")
    rows, _ = synthetic_cmapss(units=30, seed=0)
    train = read_cmapss(write_cmapss(rows, d / "train.txt"))
    return RulModel.fit(train, folds=3, source="synthetic"), d


def _test_set(d, seed=7):
    rows, left = synthetic_cmapss(units=20, seed=seed, cut=True)
    return read_cmapss(write_cmapss(rows, d / f"test{seed}.txt")), left


def test_predicts_units_it_never_saw_far_better_than_the_fleet_average(fitted):
    model, d = fitted
    test, left = _test_set(d)
    preds = model.predict(test)
    assert [p.unit for p in preds] == list(range(1, 21))
    truth = np.array([left[p.unit] for p in preds], dtype=float)
    got = np.array([p.rul for p in preds])
    rmse = float(np.sqrt(np.mean((got - truth) ** 2)))
    naive = float(np.sqrt(np.mean((truth.mean() - truth) ** 2)))  # knows the test's own mean
    assert rmse < 0.5 * naive, (rmse, naive)
    assert all(p.low <= p.rul <= p.high and p.low >= 0 for p in preds)
    inside = np.mean([p.low <= left[p.unit] <= p.high for p in preds])
    assert inside >= 0.6, inside


def test_a_young_unit_is_at_most_the_cap_and_the_card_records_training_and_validation(fitted):
    model, _ = fitted
    card = model.card
    assert card["kind"] == "rul" and card["training"]["units"] == 30
    assert card["training"]["source"] == "synthetic" and card["params"]["cap"] == 125.0
    v = card["validation"]
    assert v["cut_points"] > 0 and 0 < v["rmse"] < 40 and v["phm08_per_100_engines"] > 0
    assert card["sensors"] and "sensor_1" not in card["sensors"]  # constant sensors left out
    young, _ = synthetic_cmapss(units=2, seed=3)
    t = read_cmapss_rows(young[young[:, 1] <= 3])
    assert all(0 <= p.rul <= 125.0 for p in model.predict(t))


def read_cmapss_rows(rows):
    import io

    text = "\n".join(" ".join(f"{v:.6g}" for v in r) for r in rows)
    return read_cmapss(io.StringIO(text))


def test_saved_and_loaded_it_predicts_the_same_and_nothing_is_pickled(fitted, tmp_path):
    model, d = fitted
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["model.json"] + [f"trees-{i}.txt" for i in range(4)]
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert doc["format"] == "atoll-rul/1" and len(doc["intervals"]) == 5
    again = RulModel.load(tmp_path / "m")
    test, _ = _test_set(d)
    assert [p.rul for p in again.predict(test)] == pytest.approx(
        [p.rul for p in model.predict(test)]
    )


def test_too_few_units_and_unreadable_models_are_refused(tmp_path):
    rows, _ = synthetic_cmapss(units=5, seed=1)
    with pytest.raises(InvalidInput, match="need at least 10"):
        RulModel.fit(read_cmapss(write_cmapss(rows, tmp_path / "t.txt")))
    with pytest.raises(InvalidInput, match="no RUL model here"):
        RulModel.load(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "other"}')
    with pytest.raises(InvalidInput, match="format"):
        RulModel.load(tmp_path)


def test_phm08_charges_late_predictions_more_than_early_ones():
    assert phm08_score(np.array([10.0])) > phm08_score(np.array([-10.0])) > 0
    assert isinstance(Trajectories, type)
