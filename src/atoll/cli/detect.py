"""``atoll detect``: try Atoll's anomaly detection
on your own history, before connecting anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from atoll.core.errors import AtollError


def detect(
    input: Annotated[
        Path, typer.Argument(help="CSV with a header, a timestamp column and numeric columns.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Write timestamp,anomaly_score,is_anomaly,alarm here."),
    ],
    timestamp_column: Annotated[
        str | None,
        typer.Option(
            "--timestamp-column",
            help="Timestamp column (default: one named timestamp/time/ts/date...).",
        ),
    ] = None,
    warmup_rows: Annotated[
        int,
        typer.Option(
            "--warmup-rows",
            help="The first N rows are known to be normal: fit on them, don't judge them. "
            "With at least 256 such rows the default detector is a fitted model of normal.",
        ),
    ] = 0,
    detector: Annotated[
        str,
        typer.Option(
            "--detector",
            help="Detector name; several columns are judged jointly. Names: see `atoll detectors`.",
        ),
    ] = "default",
) -> None:
    """Score every row of INPUT.csv online (each row judged only on the rows before it)."""
    from atoll.detect.history import detect_table, read_table, write_detection

    err = Console(stderr=True)
    try:
        table = read_table(input, timestamp_column)
        result = detect_table(table, detector, warmup_rows)
        write_detection(result, out)
    except AtollError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]fix:[/yellow] {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    flagged, alarms = int(result.flags.sum()), int(result.alarms.sum())
    skipped = f", ignored {', '.join(table.ignored)} (not numbers)" if table.ignored else ""
    err.print(
        f"{len(result.scores):,} rows, columns {', '.join(table.columns)}{skipped} "
        f"(delimiter {table.delimiter!r}), detector {result.detector}: "
        f"{flagged:,} anomalous rows in {alarms:,} alarms at threshold {result.threshold:g} "
        f"→ {out}",
        highlight=False,
        soft_wrap=True,
    )


def list_detectors() -> None:
    from atoll.detect.registry import MIN_HISTORY, names, resolve

    for name in names():
        if name == "default":
            typer.echo(
                f"{name} -> {resolve(name)} "
                f"({resolve(name, MIN_HISTORY)} with --warmup-rows >= {MIN_HISTORY})"
            )
        else:
            typer.echo(name)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)
    app.command("detectors", help="List detector names for --detector.")(list_detectors)
