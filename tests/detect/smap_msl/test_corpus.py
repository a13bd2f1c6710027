"""Reading the SMAP/MSL corpus in both layouts (hand-made directories), and the real one."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect.smap_msl import find_smap_msl_dir, load_corpus, parse_sequences

LABELS = """chan_id,spacecraft,anomaly_sequences,class,num_values
A-1,SMAP,"[[2, 4]]",[point],8
P-2,SMAP,"[[1, 3], [5, 6]]","[point, contextual]",6
P-2,SMAP,"[[0, 2]]",[point],6
M-1,MSL,"[[4, 5]]",[point],7
"""


def _arrays():
    rng = np.random.default_rng(0)
    return {
        c: (rng.normal(size=(n + 3, 4)), rng.normal(size=(n, 4)))
        for c, n in (("A-1", 8), ("P-2", 6), ("M-1", 7))
    }


@pytest.fixture
def npz_dir(tmp_path):
    (tmp_path / "labeled_anomalies.csv").write_text(LABELS)
    np.savez(
        tmp_path / "smap_msl_channel0.npz",
        **{
            f"{c}__{part}": a[:, 0]
            for c, (tr, te) in _arrays().items()
            for part, a in (("train", tr), ("test", te))
        },
    )
    return tmp_path


@pytest.fixture
def telemanom_dir(tmp_path):
    """telemanom's download: data/train/<chan>.npy with the value in column 0."""
    (tmp_path / "labeled_anomalies.csv").write_text(LABELS)
    for part in ("train", "test"):
        (tmp_path / "data" / part).mkdir(parents=True)
    for chan, (train, test) in _arrays().items():
        np.save(tmp_path / "data" / "train" / f"{chan}.npy", train)
        np.save(tmp_path / "data" / "test" / f"{chan}.npy", test)
    return tmp_path


@pytest.mark.parametrize("layout", ["npz_dir", "telemanom_dir"])
def test_both_layouts_read_the_same(layout, request):
    corpus = load_corpus(request.getfixturevalue(layout))
    arrays = _arrays()
    assert list(corpus.channels) == ["A-1", "P-2", "M-1"]
    p2 = corpus.channels["P-2"]
    np.testing.assert_array_equal(p2.train, arrays["P-2"][0][:, 0])
    np.testing.assert_array_equal(p2.test, arrays["P-2"][1][:, 0])
    assert [s.tolist() for s in p2.label_sets] == [[[1, 3], [5, 6]], [[0, 2]]]
    assert p2.spacecraft == "SMAP" and corpus.channels["M-1"].spacecraft == "MSL"
    assert corpus.labelled_sequences == 5 and corpus.test_points == 21


def test_subset(npz_dir):
    corpus = load_corpus(npz_dir)
    assert list(corpus.subset(spacecraft="msl").channels) == ["M-1"]
    assert list(corpus.subset(["M-1", "A-1"]).channels) == ["A-1", "M-1"]  # corpus order
    assert list(corpus.subset(["A-1", "M-1"], "SMAP").channels) == ["A-1"]
    assert len(corpus.subset()) == 3
    with pytest.raises(NotFound, match="X-9"):
        corpus.subset(["X-9"])
    with pytest.raises(NotFound, match="no MSL channel among A-1"):
        corpus.subset(["A-1"], "MSL")
    with pytest.raises(InvalidInput, match="Voyager") as exc:
        corpus.subset(spacecraft="Voyager")
    assert exc.value.hint == "choose SMAP or MSL"


def test_mismatched_or_missing_arrays_are_named(npz_dir):
    text = LABELS.replace("[point],7", "[point],9")
    (npz_dir / "labeled_anomalies.csv").write_text(text)
    with pytest.raises(InvalidInput, match="M-1"):
        load_corpus(npz_dir)
    (npz_dir / "labeled_anomalies.csv").write_text(LABELS + 'Z-1,MSL,"[[0, 1]]",[point],3\n')
    with pytest.raises(NotFound, match="Z-1"):
        load_corpus(npz_dir)


def test_missing_corpus_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(NotFound) as exc:
        find_smap_msl_dir(tmp_path)
    assert "telemanom" in exc.value.hint and "--data" in exc.value.hint
    monkeypatch.setenv("ATOLL_SMAP_MSL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(NotFound, match="nowhere"):
        find_smap_msl_dir()


def test_parse_sequences():
    assert parse_sequences("[(2130, 2349), (3540, 3679)]").tolist() == [[2130, 2349], [3540, 3679]]
    assert parse_sequences("[]").shape == (0, 2)
    for bad in ("[[5, 1]]", "[[1, 2, 3]]", "nope"):
        with pytest.raises(InvalidInput):
            parse_sequences(bad)


def test_real_corpus_shape(smap_msl_corpus):
    corpus = smap_msl_corpus
    assert len(corpus) == 81
    crafts = [c.spacecraft for c in corpus.channels.values()]
    assert crafts.count("SMAP") == 54 and crafts.count("MSL") == 27
    assert sum(len(c.label_sets) for c in corpus.channels.values()) == 82  # P-2 twice
    assert corpus.labelled_sequences == 105
    assert corpus.test_points == 509_555
