"""The authors' published telemanom run (LSTM forecaster + nonparametric dynamic threshold).

Its predicted sequences (``fp_sequences`` and ``tp_sequences``, already widened by telemanom's
buffer) re-scored with :func:`atoll.detect.smap_msl.score_corpus` give TP 87, FP 13, FN 18.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect.smap_msl.corpus import parse_sequences

#: Where the run is found under a corpus directory: beside the data, or in a telemanom clone.
RUN_FILES = ("telemanom_results_2018-05-19_15.00.10.csv", "results/2018-05-19_15.00.10.csv")
LABEL = "telemanom (published)"


def find_published_run(root: str | os.PathLike) -> Path:
    for name in RUN_FILES:
        path = Path(root) / name
        if path.is_file():
            return path
    raise NotFound(
        f"the published telemanom run is not in {root} (looked for {', '.join(RUN_FILES)})",
        hint="it is results/2018-05-19_15.00.10.csv in https://github.com/khundman/telemanom",
    )


def load_published_run(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``chan_id -> (k, 2)`` predicted sequences (test indices, inclusive) of a telemanom run."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"chan_id", "fp_sequences", "tp_sequences"}
    if not rows or not need <= set(rows[0]):
        raise InvalidInput(
            f"{path}: expected columns {', '.join(sorted(need))}",
            hint="give a results file written by telemanom",
        )
    out: dict[str, np.ndarray] = {}
    for row in rows:
        chan = row["chan_id"].strip()
        seqs = np.concatenate(
            [parse_sequences(row["tp_sequences"]), parse_sequences(row["fp_sequences"])]
        )
        seqs = seqs[np.lexsort((seqs[:, 1], seqs[:, 0]))]
        # A channel with two label rows was run twice; the runs must agree to be one prediction.
        if chan in out and not np.array_equal(out[chan], seqs):
            raise InvalidInput(f"{path}: two rows for {chan} predict different sequences")
        out[chan] = seqs
    return out
