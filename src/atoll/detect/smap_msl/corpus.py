"""The SMAP/MSL corpus: 81 spacecraft telemetry channels, their train/test splits and labels.

Two layouts are read, both with telemanom's ``labeled_anomalies.csv`` beside them:

- ``smap_msl_channel0.npz`` holding ``<chan>__train`` and ``<chan>__test`` (the telemetry value
  only), as in ``../shared/datasets/smap_msl``;
- telemanom's own download: ``data/train/<chan>.npy`` and ``data/test/<chan>.npy`` (or
  ``train/`` and ``test/``), whose column 0 is the telemetry value (the other columns are
  one-hot command flags).
"""

from __future__ import annotations

import ast
import csv
import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from atoll.core.errors import InvalidInput, NotFound

SPACECRAFT = ("SMAP", "MSL")
LABELS_FILE = "labeled_anomalies.csv"
NPZ_FILE = "smap_msl_channel0.npz"
ENV_VAR = "ATOLL_SMAP_MSL_DIR"


@dataclass(frozen=True)
class Channel:
    """One telemetry channel: its history, its test stretch and the labelled anomalies in it.

    ``label_sets`` has one ``(k, 2)`` array of inclusive ``[start, end]`` test indices per row of
    the labels file: telemanom scores each row on its own, and one channel (SMAP ``P-2``) has two
    rows with different labels.
    """

    chan_id: str
    spacecraft: str
    train: np.ndarray  # float64, known to hold no labelled anomaly
    test: np.ndarray  # float64
    label_sets: tuple[np.ndarray, ...]

    @property
    def labelled_sequences(self) -> int:
        return sum(len(s) for s in self.label_sets)


@dataclass(frozen=True)
class Corpus:
    root: Path
    channels: dict[str, Channel]  # chan_id -> channel, in the labels file's order

    @cached_property
    def test_points(self) -> int:
        return sum(len(c.test) for c in self.channels.values())

    @cached_property
    def labelled_sequences(self) -> int:
        return sum(c.labelled_sequences for c in self.channels.values())

    def __len__(self) -> int:
        return len(self.channels)

    def subset(self, channels: list[str] | None = None, spacecraft: str | None = None) -> Corpus:
        """The channels named (in corpus order) and/or those of one spacecraft."""
        keep = dict(self.channels)
        if channels:
            unknown = sorted(set(channels) - set(keep))
            if unknown:
                raise NotFound(
                    f"no channel {', '.join(unknown)} in the SMAP/MSL corpus",
                    hint=f"channels are e.g. {', '.join(list(keep)[:5])}",
                )
            keep = {k: c for k, c in keep.items() if k in set(channels)}
        if spacecraft is not None:
            craft = spacecraft.upper()
            if craft not in SPACECRAFT:
                raise InvalidInput(
                    f"unknown spacecraft {spacecraft!r}", hint=f"choose {' or '.join(SPACECRAFT)}"
                )
            keep = {k: c for k, c in keep.items() if c.spacecraft == craft}
        if not keep:
            raise NotFound(
                f"no {spacecraft} channel among {', '.join(channels or [])}",
                hint="drop --spacecraft or name channels of that spacecraft",
            )
        return replace(self, channels=keep)


def find_smap_msl_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Locate the corpus: ``explicit``, ``$ATOLL_SMAP_MSL_DIR``, or
    ``<repo>/../shared/datasets/smap_msl`` (or ``shared/datasets/smap_msl`` beside any directory
    above the repo)."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    else:
        src_dir = Path(__file__).resolve().parents[3]  # <repo>/src
        candidates += [p / "shared" / "datasets" / "smap_msl" for p in src_dir.parents]
    for c in candidates:
        if (c / LABELS_FILE).is_file() and ((c / NPZ_FILE).is_file() or _npy_dirs(c) is not None):
            return c
    raise NotFound(
        f"SMAP/MSL corpus not found (looked in {', '.join(str(c) for c in candidates)})",
        hint="get it with `git clone https://github.com/khundman/telemanom && cd telemanom && "
        "curl -O https://s3-us-west-2.amazonaws.com/telemanom/data.zip && unzip data.zip` "
        f"(data/train, data/test and {LABELS_FILE} are what is read), then pass "
        f"--data telemanom or set {ENV_VAR}=telemanom; ../shared/datasets/smap_msl beside the "
        "repository is found without either",
    )


def _npy_dirs(root: Path) -> tuple[Path, Path] | None:
    for base in (root / "data", root):
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base / "train", base / "test"
    return None


def parse_sequences(text: str) -> np.ndarray:
    """``"[[2149, 2349], [4536, 4844]]"`` or ``"[(2130, 2349)]"`` -> ``(k, 2)`` int64 array."""
    try:
        raw = ast.literal_eval(text.strip() or "[]")
        out = np.array([[int(a), int(b)] for a, b in raw], dtype=np.int64).reshape(-1, 2)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise InvalidInput(f"not a list of [start, end] pairs: {text!r}") from exc
    if (out[:, 0] > out[:, 1]).any():
        raise InvalidInput(f"a sequence ends before it starts: {text!r}")
    return out


def _read_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"chan_id", "spacecraft", "anomaly_sequences", "num_values"}
    if not rows or not need <= set(rows[0]):
        raise InvalidInput(
            f"{path}: expected columns {', '.join(sorted(need))}",
            hint="use telemanom's labeled_anomalies.csv",
        )
    return rows


def load_corpus(data_dir: str | os.PathLike | None = None) -> Corpus:
    """Load every channel listed in ``labeled_anomalies.csv``."""
    root = find_smap_msl_dir(data_dir)
    rows = _read_labels(root / LABELS_FILE)
    npz = np.load(root / NPZ_FILE) if (root / NPZ_FILE).is_file() else None
    dirs = None if npz is not None else _npy_dirs(root)
    labels: dict[str, list[np.ndarray]] = {}
    meta: dict[str, tuple[str, int]] = {}
    for row in rows:
        chan = row["chan_id"].strip()
        try:
            sequences = parse_sequences(row["anomaly_sequences"])
            meta[chan] = (row["spacecraft"].strip().upper(), int(row["num_values"]))
        except (InvalidInput, ValueError) as exc:
            raise InvalidInput(f"{root / LABELS_FILE}: channel {chan}: {exc}") from None
        labels.setdefault(chan, []).append(sequences)
    channels = {}
    for chan, sets in labels.items():
        try:
            if npz is not None:
                train, test = npz[f"{chan}__train"], npz[f"{chan}__test"]
            else:
                assert dirs is not None
                train, test = (np.load(d / f"{chan}.npy") for d in dirs)
                train, test = (a[:, 0] if a.ndim == 2 else a for a in (train, test))
        except (KeyError, FileNotFoundError):
            raise NotFound(
                f"{root}: no train/test arrays for channel {chan}",
                hint=f"the arrays must cover every channel of {LABELS_FILE}",
            ) from None
        spacecraft, n = meta[chan]
        if len(test) != n:
            raise InvalidInput(
                f"{chan}: the test array has {len(test)} values, the labels say {n}",
                hint="the labels file and the arrays come from different releases",
            )
        channels[chan] = Channel(
            chan,
            spacecraft,
            np.asarray(train, dtype=np.float64),
            np.asarray(test, dtype=np.float64),
            tuple(sets),
        )
    return Corpus(root, channels)
