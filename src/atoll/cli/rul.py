"""``atoll rul train|predict``: remaining useful life from run-to-failure history, standalone.

    atoll rul train TRAIN.txt --format cmapss --model DIR
    atoll rul predict TEST.txt --format cmapss --model DIR --out PRED.csv

``predict`` writes ``unit,rul``: one row per unit, the RUL predicted at its last cycle
(``--intervals`` adds ``rul_low,rul_high``).

In a running Atoll (``--url``/``--api-key``, or ``ATOLL_URL``/``ATOLL_API_KEY``):

    atoll rul fit --project P --type T [--cycle 1h] [--since -90d]   # a draft RUL model
    atoll rul due --project P [--type T] [--within 7d]               # the devices most at risk
"""

from __future__ import annotations

import csv
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit
from atoll.core.errors import AtollError

rul_app = typer.Typer(
    help="Remaining useful life: train on run-to-failure history, predict each unit's RUL.",
    no_args_is_help=True,
)


class Format(StrEnum):
    cmapss = "cmapss"


def _fail(err: Console, exc: AtollError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"[yellow]fix:[/yellow] {exc.hint}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@rul_app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Run-to-failure history (every unit fails).")],
    model: Annotated[Path, typer.Option("--model", help="Directory to save the model in.")],
    format: Annotated[Format, typer.Option("--format", help="Input format.")] = Format.cmapss,
    cap: Annotated[
        float, typer.Option("--cap", help="Cap of the training target (cycles).")
    ] = 125.0,
    level: Annotated[float, typer.Option("--level", help="Interval level, e.g. 0.9.")] = 0.9,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds over units.")] = 5,
    register: Annotated[
        bool,
        typer.Option(
            "--register", help="Also register it as a draft in a running Atoll's model registry."
        ),
    ] = False,
    api: Annotated[
        str, typer.Option("--api", "--url", envvar="ATOLL_URL", help="Atoll server (--register).")
    ] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str,
        typer.Option("--api-key", envvar="ATOLL_API_KEY", help="API key, operator role or more."),
    ] = "",
    project: Annotated[str | None, typer.Option("--project", help="Project (--register).")] = None,
    device_type: Annotated[
        str | None, typer.Option("--device-type", help="Device type it serves (--register).")
    ] = None,
) -> None:
    """Fit an RUL model on DATA and save it (with its model card, model.json) in --model;
    with --register, also register it as a draft model of PROJECT's DEVICE_TYPE."""
    from atoll.rul import RulModel, read_cmapss

    err = Console(stderr=True)
    if register and not (project and device_type and api_key):
        err.print(
            "[red]error:[/red] --register needs --project, --device-type and --api-key "
            "(or ATOLL_API_KEY)",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        t = read_cmapss(data)
        with Progress(
            TextColumn("[bold]training[/bold] {task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=folds + 1)

            def step(done: int, what: str) -> None:
                progress.update(task, description=what, completed=done)

            m = RulModel.fit(t, cap=cap, level=level, folds=folds, source=str(data), on_step=step)
        m.save(model)
    except AtollError as exc:
        raise _fail(err, exc) from None
    v, tr = m.card["validation"], m.card["training"]
    err.print(
        f"{tr['units']} units, {tr['rows']:,} cycles, {len(m.norm.sensors)} sensors used; "
        f"trained in {tr['seconds']:.0f} s. Cross-validated over units ({v['cut_points']:,} "
        f"cut points: cycles with 5-150 left): RMSE {v['rmse']:.2f}, "
        f"MAE {v['mae']:.2f}, PHM08 {v['phm08_per_100_engines']:.0f} per 100 units → {model}",
        highlight=False,
        soft_wrap=True,
    )
    if register:
        assert project is not None and device_type is not None
        _register(err, model, api, api_key, project, device_type)


def _register(
    err: Console, directory: Path, api: str, api_key: str, project: str, device_type: str
) -> None:
    """Register the saved model (its model.json is the card) as a draft."""
    import json

    from atoll.client import Client

    card = json.loads((directory / "model.json").read_text())
    try:
        with Client(api, api_key) as c:
            m = c.register_model(
                project,
                "rul",
                device_type=device_type,
                card=card,
                algorithm=str(card.get("model", "")),
                code_version=str(card.get("code_version", "")),
                params=card.get("params") or {},
                metrics=card.get("validation") or {},
                rows=(card.get("training") or {}).get("rows"),
            )
    except AtollError as exc:
        err.print(f"the model is saved in {directory}, but not registered:", highlight=False)
        raise _fail(err, exc) from None
    err.print(
        f"registered {m.id}: rul {m.scope} v{m.version} ({m.state}) in {project}; approve with "
        f"`atoll models approve {project} {m.id}`",
        highlight=False,
        soft_wrap=True,
    )


@rul_app.command()
def predict(
    data: Annotated[Path, typer.Argument(help="Units' histories up to now (any length).")],
    model: Annotated[Path, typer.Option("--model", help="A directory `atoll rul train` wrote.")],
    out: Annotated[Path, typer.Option("--out", help="Write unit,rul here (CSV).")],
    format: Annotated[Format, typer.Option("--format", help="Input format.")] = Format.cmapss,
    intervals: Annotated[
        bool, typer.Option("--intervals", help="Add rul_low,rul_high (the model's level).")
    ] = False,
) -> None:
    """Predict each unit's RUL at its last cycle; one row per unit."""
    from atoll.rul import RulModel, read_cmapss

    err = Console(stderr=True)
    try:
        m = RulModel.load(model)
        t = read_cmapss(data)
        started = time.perf_counter()
        preds = m.predict(t)
        seconds = time.perf_counter() - started
    except AtollError as exc:
        raise _fail(err, exc) from None
    try:
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["unit", "rul", "rul_low", "rul_high"] if intervals else ["unit", "rul"])
            for p in preds:
                row = [p.unit, f"{p.rul:.2f}"]
                w.writerow(row + [f"{p.low:.2f}", f"{p.high:.2f}"] if intervals else row)
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot write {out}: {exc.strerror}", highlight=False)
        raise typer.Exit(2) from None
    err.print(
        f"{len(preds)} units, {len(t):,} cycles in {seconds:.2f} s "
        f"({len(t) / max(seconds, 1e-9):,.0f} cycles/s) → {out}",
        highlight=False,
        soft_wrap=True,
    )


@rul_app.command()
def fit(
    project: Annotated[str, typer.Option("--project", help="Project.")],
    device_type: Annotated[str, typer.Option("--type", "--device-type", help="Device type.")],
    cycle: Annotated[
        str, typer.Option("--cycle", help="One cycle: the time bucket of mean readings.")
    ] = "1h",
    since: Annotated[str | None, typer.Option("--since", help="History from (e.g. -90d).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="History until.")] = None,
    cap: Annotated[
        float, typer.Option("--cap", help="Cap of the training target (cycles).")
    ] = 125.0,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Fit the RUL model of a device type on the fleet's run-to-failure history (stored telemetry
    cut by its failure records) in a running Atoll; it is registered as a draft. The fit is a
    job on the server: this shows its progress and waits for it."""
    err = Console(stderr=True)
    with client(url, api_key) as c:
        what = f"the RUL model of {device_type} in {project}"
        with err.status(f"fitting {what} (a job on the server)") as status:

            def show(job) -> None:
                step = f": {job.progress}" if job.progress else ""
                status.update(f"fitting {what}: job {job.id} {job.state}{step}")

            m = c.fit_rul(
                project,
                device_type,
                cycle=cycle,
                since=since,
                until=until,
                cap=cap,
                on_progress=show,
            )
    if as_json:
        emit([m], [], True)
        return
    v = m.metrics
    fl = (m.card or {}).get("fleet", {})
    typer.echo(
        f"registered {m.id}: rul {m.scope} v{m.version} ({m.state}), {fl.get('trajectories')} "
        f"runs to failure of {fl.get('devices')} devices, {m.rows} cycles of {cycle}"
    )
    typer.echo(
        f"cross-validated over devices: RMSE {v.get('rmse')}, MAE {v.get('mae')} cycles "
        f"({v.get('cut_points')} cut points)"
    )
    typer.echo(f"approve and activate: atoll models approve|activate {project} {m.id}")


_DUE = [
    ("device", lambda d: d.device),
    ("type", lambda d: d.device_type),
    ("rul_lo h", lambda d: d.rul_lo_hours),
    ("rul h", lambda d: d.rul_hours),
    ("rul_hi h", lambda d: d.rul_hi_hours),
    ("rul days", lambda d: d.rul_days),
    ("at", lambda d: d.at.isoformat(timespec="minutes")),
    ("model", lambda d: d.model and f"{d.model.id} v{d.model.version}"),
]


@rul_app.command()
def due(
    project: Annotated[str, typer.Option("--project", help="Project.")],
    device_type: Annotated[
        str | None, typer.Option("--type", "--device-type", help="Only this device type.")
    ] = None,
    within: Annotated[
        str | None, typer.Option("--within", help="Only rul_lo within, e.g. 7d.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """The devices due for maintenance: latest RUL estimates, most at risk (lowest rul_lo) first."""
    with client(url, api_key) as c:
        rows = c.maintenance_due(project, device_type=device_type, within=within, limit=limit)
    emit(rows, _DUE, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(rul_app, name="rul")
