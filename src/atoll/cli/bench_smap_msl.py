"""``atoll bench smap-msl``: a detector on NASA's SMAP/MSL telemetry, telemanom's event scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.core.errors import AtollError

SCOPES = ("SMAP", "MSL", "all")
TELEMANOM = "telemanom: the authors' run (LSTM + dynamic threshold; its sequences are buffered)"


def smap_msl(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Corpus directory (labeled_anomalies.csv with smap_msl_channel0.npz, or a "
            "telemanom clone with data/train and data/test); default $ATOLL_SMAP_MSL_DIR or "
            "<repo>/../shared/datasets/smap_msl",
        ),
    ] = None,
    detector: Annotated[
        str, typer.Option("--detector", help="Detector name (see `atoll detectors`).")
    ] = "default",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.")
    ] = None,
    channels: Annotated[
        list[str],
        typer.Option("--channels", help="Only these channels (comma-separated or repeated)."),
    ] = [],  # noqa: B006
    spacecraft: Annotated[
        str | None, typer.Option("--spacecraft", help="Only SMAP or only MSL channels.")
    ] = None,
    buffer: Annotated[
        int,
        typer.Option("--buffer", help="Points added on each side of a flag (telemanom: 100)."),
    ] = 100,
    published: Annotated[
        bool,
        typer.Option(
            "--published",
            help="Don't run anything: re-score the authors' published telemanom run.",
        ),
    ] = False,
) -> None:
    """Run a detector over every SMAP/MSL channel as `atoll detect --warmup-rows <train>` would.

    The detector is fitted on the train file (known normal), then judges the test file. Two
    outputs are scored by telemanom's event rules, with and without the ±buffer, per spacecraft
    and overall, with the share of test points they cover: the alarms (rising edges of
    is_anomaly; the events, held to telemanom's 5.2 % coverage) and is_anomaly itself (a
    condition covers the anomaly's whole length: the labels alone cover 12.5 %).
    """
    from atoll.detect.smap_msl.bench import published_scores, run_smap_msl
    from atoll.detect.smap_msl.corpus import load_corpus

    console = Console(stderr=True)
    names = [c.strip() for item in channels for c in item.split(",") if c.strip()]
    try:
        corpus = load_corpus(data).subset(names or None, spacecraft)
        if published:
            result = published_scores(corpus)
            _print_published(result, json_out)
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"SMAP/MSL {detector}", total=len(corpus))
            result = run_smap_msl(
                corpus, detector, buffer, on_channel=lambda _c: progress.advance(task)
            )
    except AtollError as exc:
        console.print(
            f"[red]error:[/red] {exc.message}"
            + (f"\n[yellow]fix:[/yellow] {exc.hint}" if exc.hint else ""),
            soft_wrap=True,
        )
        raise typer.Exit(2) from None

    info = result["corpus"]
    out = Console(soft_wrap=True, width=max(100, Console().width))  # the table is 96 wide
    out.print(
        _table(
            f"SMAP/MSL — {result['detector']}: {info['channels']} channels, "
            f"{info['labelled_sequences']} labelled sequences, {info['test_points']:,} test points",
            result,
        )
    )
    if result.get("published"):
        out.print(TELEMANOM)
    flagged = ", ".join(f"{name} {result[name]['flagged_points']:,}" for name in result["scored"])
    out.print(
        f"flagged points: {flagged}; detector time {result['seconds']:.1f} s "
        f"({result['points_per_s']:,.0f} points/s wall, {result['points_per_cpu_s']:,.0f} "
        "per CPU-second, train and test points, one thread)"
    )
    if json_out is not None:
        _write(json_out, result)
        out.print(f"wrote {json_out}")


def _row(table: Table, run: str, scope: str, tally: dict[str, Any]) -> None:
    f1 = f"{tally['f1']:.3f}"
    table.add_row(
        run,
        scope,
        str(tally["tp"]),
        str(tally["fp"]),
        str(tally["fn"]),
        f"{tally['precision']:.3f}",
        f"{tally['recall']:.3f}",
        f"[bold]{f1}[/bold]" if scope == "all" else f1,
        f"{100 * tally['coverage']:.2f}%",
    )


def _new_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("run", "scope", "TP", "FP", "FN", "prec", "recall", "F1", "covered"):
        left = col in ("run", "scope")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    return table


def _scopes(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(s, report["spacecraft"][s]) for s in SCOPES[:2] if s in report["spacecraft"]]
    return rows + [("all", report["overall"])]


def _table(title: str, result: dict[str, Any]) -> Table:
    table = _new_table(title)
    for name in result["scored"]:
        for key, run in (("with_buffer", f"±{result['buffer']}"), ("without_buffer", "no buffer")):
            for scope, tally in _scopes(result[name][key]):
                _row(table, f"{name} {run}", scope, tally)
    if result.get("published"):
        for scope, tally in _scopes(result["published"]):
            _row(table, "telemanom", scope, tally)
    return table


def _print_published(result: dict[str, Any], json_out: Path | None) -> None:
    out = Console(soft_wrap=True, width=max(100, Console().width))  # the table is 96 wide
    table = _new_table("SMAP/MSL — telemanom's published run, re-scored")
    for scope, tally in _scopes(result):
        _row(table, "telemanom", scope, tally)
    out.print(table)
    out.print(f"{TELEMANOM}: {result['file']}")
    if json_out is not None:
        _write(json_out, result)
        out.print(f"wrote {json_out}")


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def add_to(bench: typer.Typer) -> None:
    bench.command("smap-msl")(smap_msl)
