"""Replaying a user's own history (a CSV file) through a detector: ``atoll detect``.

The file needs a header, a timestamp column and one or more numeric columns; the delimiter is
detected. The first ``warmup_rows`` rows are known to be normal: the detector is fitted on them
(``Detector.fit``) and does not judge them; with at least ``MIN_HISTORY`` (256) such rows,
``"default"`` is the fitted model of normal (``atoll.detect.registry.DEFAULT_WITH_HISTORY``),
with fewer the streaming default, which learns them. Several numeric columns are judged
jointly. ``is_anomaly`` is the detector's decision (a condition flag for ``fitted``); ``alarm``
marks its rising edges.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atoll.core.errors import InvalidInput, NotFound
from atoll.core.time import InvalidTime, parse_timestamp_any_unit
from atoll.detect.registry import for_features
from atoll.detect.threshold import Thresholded, onsets

TIMESTAMP_NAMES = ("timestamp", "time", "ts", "datetime", "date", "date_time", "time_stamp")
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class Table:
    timestamps: list[str]  # as written in the file, echoed to the output
    ts_us: np.ndarray  # int64 µs since the epoch
    columns: list[str]  # the numeric columns judged
    values: np.ndarray  # (rows, len(columns)) float64, NaN where empty
    delimiter: str
    ignored: list[str]  # columns that are not numbers (ids, labels), left out


def _sniff(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _float(text: str) -> float:
    text = text.strip()
    return (
        float("nan") if text == "" or text.lower() in ("nan", "null", "none", "na") else float(text)
    )


def read_table(path: str | os.PathLike, timestamp_column: str | None = None) -> Table:
    path = Path(path)
    if not path.is_file():
        raise NotFound(
            f"{path}: no such file", hint="give the path of a CSV file with a header row"
        )
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(_SNIFF_BYTES)
            f.seek(0)
            delim = _sniff(sample)
            rows = [r for r in csv.reader(f, delimiter=delim) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path}: not a text file", hint="export the data as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(
            f"{path}: not a readable CSV ({exc})", hint="check quoting and delimiters"
        ) from None
    if len(rows) < 2:
        raise InvalidInput(
            f"{path}: needs a header row and at least one data row",
            hint="first line: column names, e.g. timestamp,temperature",
        )
    header = [h.strip() for h in rows[0]]
    body = rows[1:]

    if timestamp_column is None:
        lowered = [h.lower() for h in header]
        found = next((header[lowered.index(n)] for n in TIMESTAMP_NAMES if n in lowered), None)
        if found is None:
            raise InvalidInput(
                f"{path}: no timestamp column among {header}",
                hint="name it with --timestamp-column COLUMN",
            )
        timestamp_column = found
    if timestamp_column not in header:
        raise InvalidInput(
            f"{path}: no column {timestamp_column!r}; columns are {header}",
            hint="pass one of them to --timestamp-column",
        )
    ti = header.index(timestamp_column)

    stamps, ts_us = [], np.empty(len(body), dtype=np.int64)
    for i, row in enumerate(body):
        cell = row[ti] if ti < len(row) else ""
        try:
            # Documented (docs/DETECTION.md): ISO-8601, or epoch s, ms or µs told by magnitude.
            ts_us[i] = parse_timestamp_any_unit(cell)
        except InvalidTime:
            raise InvalidInput(
                f"{path}: row {i + 2}: {cell!r} is not a timestamp",
                hint="use ISO-8601 (2026-11-23T10:00:00Z) or epoch seconds/milliseconds/µs",
            ) from None
        stamps.append(cell.strip())

    columns, cols, ignored = [], [], []
    for j, name in enumerate(header):
        if j == ti:
            continue
        try:
            col = np.array([_float(r[j]) if j < len(r) else np.nan for r in body], dtype=np.float64)
        except ValueError:
            ignored.append(name)  # a text column (an id, a label): not something to judge
            continue
        if np.isfinite(col).any():
            columns.append(name)
            cols.append(col)
        else:
            ignored.append(name)
    if not columns:
        raise InvalidInput(
            f"{path}: no numeric columns besides {timestamp_column!r}",
            hint="the file needs at least one column of numbers (empty cells are allowed; "
            "use '.' for decimals and no thousands separators)",
        )
    return Table(stamps, ts_us, columns, np.column_stack(cols), delim, ignored)


@dataclass(frozen=True)
class Detection:
    table: Table
    scores: np.ndarray
    #: ``is_anomaly``: the detector's decision per row.
    flags: np.ndarray
    #: Rising edges of ``flags``: one alarm per episode.
    alarms: np.ndarray
    threshold: float
    detector: str


def detect_table(table: Table, detector: str = "default", warmup_rows: int = 0) -> Detection:
    """Fit on the first ``warmup_rows`` rows, then score and decide every other row online."""
    if warmup_rows < 0:
        raise InvalidInput("--warmup-rows must be >= 0")
    k = len(table.columns)
    n = len(table.values)
    warm = min(warmup_rows, n)
    det = Thresholded(for_features(k, detector, history=warm))
    x = table.values if k > 1 else table.values[:, 0]
    if warm:
        det.fit(x[:warm], table.ts_us[:warm])  # known normal: fitted on, not judged
    scores = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    live, decided = det.detect_many(x[warm:], table.ts_us[warm:])
    scores[warm:] = np.clip(live, 0.0, 1.0)
    flags[warm:] = decided
    return Detection(table, scores, flags, onsets(flags), det.threshold, repr(det.detector))


def write_detection(result: Detection, out: str | os.PathLike) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "anomaly_score", "is_anomaly", "alarm"])
        for stamp, s, flag, alarm in zip(
            result.table.timestamps, result.scores, result.flags, result.alarms, strict=True
        ):
            w.writerow([stamp, f"{s:.10g}", int(flag), int(alarm)])
