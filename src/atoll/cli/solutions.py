"""``atoll solutions``: the sector templates: list them, read one, start a project from one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client
from atoll.core.errors import AtollError

app = typer.Typer(
    help="Sector solution templates: device types, detectors, rules, dashboards.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="solutions")


def _load(name: str):
    from atoll.solutions import load  # on use: `atoll --help` stays fast

    try:
        return load(name)
    except AtollError as e:
        typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_templates(as_json: AsJson = False) -> None:
    """The templates this Atoll knows (built in, plus ATOLL_SOLUTIONS_PATH)."""
    from atoll.solutions import discover

    templates = discover()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "sector": t.sector,
                        "title": t.title,
                        "device_types": [d.name for d in t.device_types],
                        "rules": len(t.rules),
                    }
                    for t in templates
                ],
                indent=2,
            )
        )
        return
    table = Table("name", "sector", "title", "device types", "rules")
    for t in templates:
        table.add_row(
            t.name, t.sector, t.title, ", ".join(d.name for d in t.device_types), str(len(t.rules))
        )
    Console().print(table)


@app.command("show")
def show(name: str, as_json: AsJson = False) -> None:
    """Device types with their telemetry, detectors, faults the simulator can inject, rules."""
    t = _load(name)
    if as_json:
        typer.echo(t.model_dump_json(indent=2))
        return
    console = Console()
    console.print(f"[bold]{t.title}[/bold] ({t.name}, sector {t.sector}, version {t.version})")
    console.print(t.description.strip())
    for d in t.device_types:
        table = Table(
            "metric",
            "unit",
            "type",
            "expected range",
            title=f"{d.name}: {d.description}",
            title_justify="left",
        )
        for m in d.telemetry:
            lo = "" if m.min is None else f"{m.min:g}"
            hi = "" if m.max is None else f"{m.max:g}"
            table.add_row(m.name, m.unit, m.type, f"{lo} … {hi}" if lo or hi else "")
        console.print(table)
        dets = "; ".join(f"{b.detector} on {', '.join(b.metrics)}" for b in d.detectors)
        console.print(f"  detectors: {dets or '-'}")
        console.print(f"  simulated faults: {', '.join(k.value for k in d.faults) or '-'}")
    rules = Table("rule", "severity", "device type", title="rules", title_justify="left")
    for r in t.rules:
        rules.add_row(r["name"], r.get("severity", "major"), r["target"].get("device_type", ""))
    console.print(rules)
    console.print("dashboard: " + ", ".join(p.title for p in t.dashboard.panels))


@app.command("apply")
def apply(
    name: str,
    project: Annotated[
        str, typer.Option("--project", "-p", help="project id (created if missing)")
    ],
    project_name: Annotated[
        str | None, typer.Option("--name", help="project name if created")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Start PROJECT from template NAME: create its device types and rules."""
    from atoll.solutions.apply import apply as apply_template

    t = _load(name)
    with client(url, api_key) as c:
        done = apply_template(c, t, project, project_name=project_name)
    if done.created_project:
        typer.echo(f"created project {done.project}")
    typer.echo(
        f"device types created: {', '.join(done.device_types) or '-'}"
        + (f" (already there: {', '.join(done.existing_types)})" if done.existing_types else "")
    )
    typer.echo(f"rules applied: {len(done.rules)}")
    typer.echo(f"next: atoll sim --api {url} --project {done.project} -t {t.name} -n 20")
