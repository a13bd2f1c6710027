"""``atoll bench nab``: the default detector (or any) on the Numenta Anomaly Benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.core.errors import AtollError

PROFILES = (
    ("standard", "standard"),
    ("reward_low_FP_rate", "reward low FP"),
    ("reward_low_FN_rate", "reward low FN"),
)


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def nab(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="NAB directory (data/, labels/, config/); "
            "default $ATOLL_NAB_DIR or <repo>/../shared/datasets/nab",
        ),
    ] = None,
    detector: Annotated[
        str, typer.Option("--detector", help="Detector name (see `atoll detect --help`).")
    ] = "default",
    scores_dir: Annotated[
        Path, typer.Option("--scores-dir", help="Where raw scores go, in NAB's results layout.")
    ] = Path(".atoll/nab-results"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.")
    ] = None,
    param: Annotated[
        list[str], typer.Option("--param", help="Detector parameter KEY=VALUE (repeatable).")
    ] = [],  # noqa: B006
    score_only: Annotated[
        bool,
        typer.Option(
            "--score-only",
            help="Don't run anything: score the raw files already in --scores-dir/<detector>/ "
            "(any detector's, e.g. NAB's published results).",
        ),
    ] = False,
) -> None:
    """Run a detector strictly online over all NAB streams and score it on NAB's three profiles.

    One fresh detector per stream, the same settings for every stream, no labels, no future
    readings. Thresholds are optimised per profile by NAB's rules (an exact sweep).
    """
    from atoll.detect.nab.bench import run_nab
    from atoll.detect.nab.corpus import load_corpus

    console = Console(stderr=True)
    try:
        corpus = load_corpus(data)
        if score_only:
            _print_scored(corpus, scores_dir, detector, json_out)
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"NAB {detector}", total=len(corpus))
            result = run_nab(
                corpus,
                detector,
                _params(param),
                scores_dir,
                on_stream=lambda _p: progress.advance(task),
            )
    except AtollError as exc:
        console.print(
            f"[red]error:[/red] {exc.message}"
            + (f"\n[yellow]fix:[/yellow] {exc.hint}" if exc.hint else ""),
            soft_wrap=True,
        )
        raise typer.Exit(2) from None

    table = _table(
        f"NAB v1.1 — {result['corpus']['streams']} streams, {result['corpus']['points']:,} points",
        result["detector"],
        result["profiles"],
    )
    out = Console(soft_wrap=True)
    out.print(table)
    out.print(
        "thresholds: "
        + ", ".join(f"{t} {result['profiles'][p]['threshold']:.6g}" for p, t in PROFILES)
    )
    out.print(
        f"throughput: {result['throughput_points_per_s']:,.0f} points/s wall, "
        f"{result['throughput_points_per_cpu_s']:,.0f} points per CPU-second"
        " (one thread, detector time only); "
        f"state per series: {result['memory_bytes_per_series']:,} bytes"
    )
    out.print(f"raw scores: {result['scores_dir']}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        out.print(f"wrote {json_out}")


def _table(title: str, detector: str, profiles: dict) -> Table:
    from atoll.detect.nab.bench import SCOREBOARD

    table = Table(title=title)
    table.add_column("detector")
    for _, heading in PROFILES:
        table.add_column(heading, justify="right")
    table.add_row(
        f"[bold]{detector}[/bold]",
        *(f"[bold]{profiles[p]['score']:.2f}[/bold]" for p, _ in PROFILES),
    )
    for name, row in SCOREBOARD.items():
        table.add_row(name, *(f"{row[p]:.2f}" for p, _ in PROFILES))
    return table


def _print_scored(corpus, scores_dir: Path, detector: str, json_out: Path | None) -> None:
    from atoll.detect.nab.results import score_results_dir

    profiles = score_results_dir(scores_dir, detector, corpus)
    out = Console(soft_wrap=True)
    out.print(_table(f"NAB v1.1 — raw scores from {scores_dir / detector}", detector, profiles))
    out.print(
        "thresholds: " + ", ".join(f"{t} {profiles[p]['threshold']:.6g}" for p, t in PROFILES)
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps(
                {
                    "detector": detector,
                    "scores_dir": str(scores_dir / detector),
                    "profiles": profiles,
                },
                indent=2,
            )
            + "\n"
        )
        out.print(f"wrote {json_out}")


def add_to(bench: typer.Typer) -> None:
    bench.command("nab")(nab)
