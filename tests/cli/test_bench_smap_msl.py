"""``atoll bench smap-msl`` on the real corpus: the published run re-scored, a detector run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.detect.smap_msl import score_flags

pytestmark = pytest.mark.xdist_group("smap_msl")


def _invoke(*args):
    return CliRunner().invoke(app, ["bench", "smap-msl", *map(str, args)])


def test_published_run_rescored(smap_msl_corpus, tmp_path):
    out = tmp_path / "telemanom.json"
    res = _invoke("--published", "--json", out)
    assert res.exit_code == 0, res.output
    assert "0.849" in res.output and "0.867" in res.output and "0.806" in res.output
    result = json.loads(out.read_text())
    assert {k: result["overall"][k] for k in ("tp", "fp", "fn")} == {"tp": 87, "fp": 13, "fn": 18}
    res = _invoke("--published", "--spacecraft", "MSL", "--json", out)
    assert res.exit_code == 0, res.output
    msl = json.loads(out.read_text())
    assert list(msl["spacecraft"]) == ["MSL"] and len(msl["channels"]) == 27
    assert {k: msl["overall"][k] for k in ("tp", "fp", "fn")} == {"tp": 25, "fp": 1, "fn": 11}


def test_detector_run_on_chosen_channels(smap_msl_corpus, tmp_path):
    out = tmp_path / "ewma.json"
    res = _invoke("--detector", "ewma", "--channels", "A-1,P-2", "--channels", "M-1", "--json", out)
    assert res.exit_code == 0, res.output
    for run in ("alarm ±100", "alarm no buffer", "is_anomaly ±100", "is_anomaly no buffer"):
        assert run in res.output
    assert "telemanom" in res.output
    result = json.loads(out.read_text())
    assert result["detector"] == "ewma" and result["buffer"] == 100
    assert result["scored"] == ["alarm", "is_anomaly"]
    assert result["corpus"]["channels"] == 3 and result["corpus"]["label_rows"] == 4
    assert list(result["alarm"]["with_buffer"]["channels"]) == ["A-1", "P-2", "M-1"]
    assert set(result["is_anomaly"]["with_buffer"]["spacecraft"]) == {"SMAP", "MSL"}
    published = result["published"]["overall"]
    assert published["tp"] + published["fn"] == result["corpus"]["labelled_sequences"] == 4
    assert result["points"] == sum(
        len(smap_msl_corpus.channels[c].train) + len(smap_msl_corpus.channels[c].test)
        for c in ("A-1", "P-2", "M-1")
    )
    # The runs written to JSON are enough to re-score the run, with and without the buffer.
    subset = smap_msl_corpus.subset(["A-1", "P-2", "M-1"])
    rising = {}
    for name in result["scored"]:
        flags = {}
        for chan_id, runs in result[name]["sequences"].items():
            f = np.zeros(len(subset.channels[chan_id].test), dtype=bool)
            for start, end in runs:
                f[start : end + 1] = True
            flags[chan_id] = f
        assert sum(int(f.sum()) for f in flags.values()) == result[name]["flagged_points"]
        for key, buffer in (("with_buffer", 100), ("without_buffer", 0)):
            report, _ = score_flags(subset, flags, buffer)
            assert report.to_dict() == result[name][key]
        rising[name] = flags
    # The alarms are the rising edges of is_anomaly.
    for chan_id, f in rising["is_anomaly"].items():
        np.testing.assert_array_equal(rising["alarm"][chan_id], f & ~np.r_[False, f[:-1]])


def test_the_default_fits_on_train_and_scores_alarms_and_the_condition(smap_msl_corpus, tmp_path):
    out = tmp_path / "default.json"
    res = _invoke("--channels", "A-1,M-1", "--json", out)
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["detector"] == "default-fitted"
    alarm, cond = result["alarm"], result["is_anomaly"]
    # One alarm per episode: fewer flagged points than the condition, and never more events.
    assert alarm["flagged_points"] <= cond["flagged_points"]
    assert len(sum(alarm["sequences"].values(), [])) <= cond["flagged_points"]
    assert alarm["with_buffer"]["overall"]["coverage"] <= cond["with_buffer"]["overall"]["coverage"]


def test_missing_data_says_how_to_get_it(tmp_path):
    res = _invoke("--data", tmp_path / "nowhere")
    assert res.exit_code == 2
    assert "not found" in res.output and "telemanom" in res.output and "--data" in res.output


def test_unknown_channel_or_spacecraft(smap_msl_corpus):
    res = _invoke("--channels", "X-99")
    assert res.exit_code == 2 and "X-99" in res.output
    res = _invoke("--spacecraft", "Voyager", "--published")
    assert res.exit_code == 2 and "SMAP or MSL" in res.output
    res = _invoke("--channels", "A-1", "--buffer", "-1")
    assert res.exit_code == 2 and "buffer must be >= 0" in res.output
