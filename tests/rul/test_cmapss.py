"""Reading C-MAPSS files (``atoll.rul.cmapss``): NASA's layout, and clear errors otherwise."""

from __future__ import annotations

import io

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.rul import read_cmapss
from atoll.rul.cmapss import Trajectories
from atoll.testing.rul import synthetic_cmapss, write_cmapss
from tests.rul.conftest import FD001


def test_rows_are_sorted_by_unit_and_cycle_and_rul_counts_down_to_failure(tmp_path):
    rows, _ = synthetic_cmapss(units=4, seed=2)
    shuffled = rows[np.random.default_rng(0).permutation(len(rows))]
    t = read_cmapss(write_cmapss(shuffled, tmp_path / "train.txt"))
    assert isinstance(t, Trajectories) and len(t) == len(rows)
    assert [u for u, _, _ in t.spans()] == [1, 2, 3, 4]
    for _, s, e in t.spans():
        assert (np.diff(t.cycles[s:e]) == 1).all()
        assert t.rul_to_failure()[e - 1] == 0 and t.rul_to_failure()[s] == e - s - 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rows"),
        ("1 1 0 0 100 1 2 3\n", "line 1: 8 columns, expected 26"),
        ("1 1 0 0 100 " + "x " * 21 + "\n", "line 1: not all numbers"),
        ("1.5 1 0 0 100 " + "1 " * 21 + "\n", "must be integers"),
        ("1 1 0 0 100 " + "1 " * 21 + "\n" + "1 1 0 0 100 " + "2 " * 21 + "\n", "cycle twice"),
        ("1 1 0 0 100 " + "nan " * 21 + "\n", "NaN"),
    ],
)
def test_bad_files_are_refused_with_the_line_and_the_format(text, message):
    with pytest.raises(InvalidInput, match=message) as err:
        read_cmapss(io.StringIO(text))
    assert err.value.hint and "26 whitespace-separated" in err.value.hint


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        read_cmapss(tmp_path / "nope.txt")


@pytest.mark.skipif(not FD001.is_file(), reason="needs ../shared/datasets/cmapss (optional corpus)")
def test_nasas_fd001_training_file():
    t = read_cmapss(FD001)
    assert len(t) == 20_631 and len(t.unit_ids()) == 100
    lives = [e - s for _, s, e in t.spans()]
    assert min(lives) == 128 and max(lives) == 362
