"""Files the API answers for download (CSV exports): one way to build them.

>>> r = csv_download(("a", "b"), [{"a": 1, "b": None}], "x.csv")
>>> r.body.decode().splitlines(), r.headers["content-disposition"]
(['a,b', '1,'], 'attachment; filename="x.csv"')
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Response


def csv_download(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]], filename: str
) -> Response:
    """A CSV attachment: a header of ``columns``, then each row, given as its cells in order or
    as a mapping read by ``columns`` (``None`` and missing cells are empty)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(columns)
    for row in rows:
        if isinstance(row, Mapping):
            out.writerow(["" if row.get(c) is None else row[c] for c in columns])
        else:
            out.writerow(["" if v is None else v for v in row])
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


__all__ = ["csv_download"]
