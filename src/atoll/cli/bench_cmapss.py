"""``atoll bench cmapss``: RUL models cross-validated over the engines of a C-MAPSS file."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.core.errors import AtollError, InvalidInput


def _default_data() -> Path:
    env = os.environ.get("ATOLL_CMAPSS_DIR")
    if env:
        return Path(env) / "train_FD001.txt"
    return Path(__file__).resolve().parents[3].parent / "shared/datasets/cmapss/train_FD001.txt"


def cmapss(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A run-to-failure C-MAPSS file; default $ATOLL_CMAPSS_DIR/train_FD001.txt or "
            "<repo>/../shared/datasets/cmapss/train_FD001.txt",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Outer folds over engines.")] = 5,
    draws: Annotated[int, typer.Option("--draws", help="Draws of one cut point per engine.")] = 20,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.")
    ] = None,
) -> None:
    """Cross-validate `atoll rul train`'s model over the engines of a run-to-failure file: each
    fold's model judges engines it never saw, cut where 5-150 cycles are left."""
    from atoll.rul import read_cmapss
    from atoll.rul.evaluate import cross_validate

    err = Console(stderr=True)
    path = data or _default_data()
    try:
        if not path.is_file():
            raise InvalidInput(
                f"{path}: no such file",
                hint="give --data train_FD001.txt (NASA's C-MAPSS) or set ATOLL_CMAPSS_DIR",
            )
        t = read_cmapss(path)
        with Progress(
            TextColumn("[bold]C-MAPSS cross-validation[/bold] folds"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=folds)
            result = cross_validate(
                t, folds=folds, draws=draws, on_fold=lambda _i: progress.advance(task)
            )
    except AtollError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]fix:[/yellow] {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    result = {
        "data": str(path),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        **result,
    }
    every, one = result["every_cut_point"], result["one_cut_per_engine"]
    table = Table(
        title=f"{path.name}: {result['engines']} engines, {folds}-fold cross-validation over "
        "engines, cut with 5-150 cycles left"
    )
    for col in ("view", "RMSE", "PHM08 / 100 engines", f"{every['interval_level']:.0%} covered"):
        table.add_column(col, justify="left" if col == "view" else "right")
    table.add_row(
        f"every cut point ({every['cut_points']:,})",
        f"{every['rmse']:.2f}",
        f"{every['phm08_per_100_engines']:.0f}",
        f"{every['interval_coverage']:.1%}",
    )
    lo, hi = one["rmse_range"]
    slo, shi = one["phm08_per_100_engines_range"]
    table.add_row(
        f"one cut per engine ({one['draws']} draws)",
        f"{one['rmse_mean']:.2f} ({lo:.1f}-{hi:.1f})",
        f"{one['phm08_per_100_engines_mean']:.0f} ({slo:.0f}-{shi:.0f})",
        f"{one['interval_coverage_mean']:.1%}",
    )
    out = Console(soft_wrap=True)
    out.print(table)
    train_s = result["train_seconds_per_model"]
    out.print(
        f"training {min(train_s):.0f}-{max(train_s):.0f} s per model (on {folds - 1}/{folds} "
        f"of the engines, one thread); prediction {result['predict_cycles_per_s']:,.0f} "
        f"engine-cycles/s with an RUL at every cycle, {result['predict_last_cycles_per_s']:,.0f} "
        "with one at each engine's last cycle"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        out.print(f"wrote {json_out}")


def add_to(bench: typer.Typer) -> None:
    bench.command("cmapss")(cmapss)
