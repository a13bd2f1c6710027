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
    assert "±100" in res.output and "no buffer" in res.output and "telemanom" in res.output
    result = json.loads(out.read_text())
    assert result["detector"] == "ewma" and result["buffer"] == 100
    assert result["corpus"]["channels"] == 3 and result["corpus"]["label_rows"] == 4
    assert list(result["with_buffer"]["channels"]) == ["A-1", "P-2", "M-1"]
    assert set(result["with_buffer"]["spacecraft"]) == {"SMAP", "MSL"}
    published = result["published"]["overall"]
    assert published["tp"] + published["fn"] == result["corpus"]["labelled_sequences"] == 4
    assert result["points"] == sum(
        len(smap_msl_corpus.channels[c].train) + len(smap_msl_corpus.channels[c].test)
        for c in ("A-1", "P-2", "M-1")
    )
    # The runs written to JSON are enough to re-score the run, with and without the buffer.
    subset = smap_msl_corpus.subset(["A-1", "P-2", "M-1"])
    flags = {}
    for chan_id, runs in result["sequences"].items():
        f = np.zeros(len(subset.channels[chan_id].test), dtype=bool)
        for start, end in runs:
            f[start : end + 1] = True
        flags[chan_id] = f
    assert sum(int(f.sum()) for f in flags.values()) == result["flagged_points"]
    for key, buffer in (("with_buffer", 100), ("without_buffer", 0)):
        report, _ = score_flags(subset, flags, buffer)
        assert report.to_dict() == result[key]


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
