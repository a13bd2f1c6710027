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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only show what it would add, keep and replace")
    ] = False,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Start PROJECT from template NAME: create the project if missing, the device types it
    lacks (those it has are kept) and the template's rules (same id: replaced)."""
    with client(url, api_key) as c:
        try:
            got = c.apply_solution(name, project, name=project_name, dry_run=dry_run)
        except AtollError as e:
            typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(got, indent=2, ensure_ascii=False))
        return
    console = Console()
    verb = "would" if dry_run else "did"
    head = f"create project {got['project']}" if got["create_project"] else got["project"]
    console.print(f"[bold]{got['title']}[/bold] → {head}" + (" (dry run)" if dry_run else ""))
    types = Table("device type", "action", "metrics (unit)", "detectors", title_justify="left")
    for t in got["device_types"]:
        metrics = ", ".join(
            f"{m['name']} ({m['unit']})" if m["unit"] else m["name"] for m in t["metrics"]
        )
        note = f"kept; lacks {', '.join(t['missing'])}" if t["missing"] else t["action"]
        types.add_row(t["name"], note, metrics, "; ".join(t["detectors"]) or "-")
    console.print(types)
    rules = Table("rule", "action", "device type", "severity", title_justify="left")
    for r in got["rules"]:
        rules.add_row(r["name"], r["action"], r["device_type"] or "", r["severity"])
    if got["rules"]:
        console.print(rules)
    console.print(f"dashboard {got['dashboard']}: {', '.join(got['panels'])}")
    adds = got["adds"]
    typer.echo(f"{verb} add {adds['device_types']} device type(s) and {adds['rules']} rule(s)")
    if not dry_run:
        typer.echo(f"next: {got['next'].replace('atoll sim', f'atoll sim --api {url}', 1)}")
