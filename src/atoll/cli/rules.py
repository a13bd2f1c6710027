"""``atoll rules`` and ``atoll alarms``: check and apply YAML rule files, list and act on alarms.

``atoll rules validate FILE`` needs nothing running. The other commands talk to a running
``atoll up`` through its REST API: ``--url``/``--api-key`` or ``ATOLL_URL``/``ATOLL_API_KEY``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.core.errors import AtollError

Url = Annotated[str, typer.Option("--url", envvar="ATOLL_URL", help="Atoll server [http://127.0.0.1:8080]")]
Key = Annotated[str, typer.Option("--api-key", envvar="ATOLL_API_KEY", help="API key (Bearer token)",
                                  show_default=False)]
Project = Annotated[str, typer.Option("--project", "-p", help="project id")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
DEFAULT_URL = "http://127.0.0.1:8080"

rules_app = typer.Typer(help="Rules in YAML: validate, apply, list.", no_args_is_help=True)
alarms_app = typer.Typer(help="Alarms: list, acknowledge, clear, comment.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(rules_app, name="rules")
    root.add_typer(alarms_app, name="alarms")


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    typer.echo(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    raise typer.Exit(code)


def _call(url: str, api_key: str, method: str, path: str, **kw: Any) -> Any:
    import httpx

    if not api_key:
        _fail("no API key. Pass --api-key or set ATOLL_API_KEY "
              "(`atoll up` prints the admin key on its first start).", code=2)
    try:
        r = httpx.request(method, f"{url.rstrip('/')}/api/v1{path}", timeout=30,
                          headers={"Authorization": f"Bearer {api_key}", **kw.pop("headers", {})}, **kw)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}", "is `atoll up` running? check --url")
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {"message": r.text}
        _fail(body.get("message", f"HTTP {r.status_code}"), body.get("hint"))
    return r.json() if r.content else None


def _table(rows: list[dict], columns: list[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("(none)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)


@rules_app.command("validate")
def validate(file: Path, project: Annotated[str | None, typer.Option("--project", "-p")] = None) -> None:
    """Check a rules file offline; exit 1 with the offending field if it is invalid."""
    from atoll.rules.loading import load_rule_file

    try:
        doc = load_rule_file(file.read_text(), project=project)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except AtollError as exc:
        _fail(exc.message, exc.hint)
    for r in doc.rules:
        typer.echo(f"ok  rule {r.id} ({r.project}): {r.condition.type} on "
                   f"{r.target.model_dump(exclude_none=True)}")
    for c in doc.channels:
        typer.echo(f"ok  channel {c.name} ({c.type})")


@rules_app.command("apply")
def apply(file: Path, project: Project, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Create or replace the file's rules and channels in a project."""
    try:
        text = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    out = _call(url, api_key, "POST", f"/projects/{project}/rules/import", content=text,
                headers={"Content-Type": "application/yaml"})
    typer.echo(f"applied {len(out['rules'])} rules, {len(out['channels'])} channels to {project}")


@rules_app.command("backtest")
def backtest_cmd(file: Path, project: Project, start: str = "-7d", end: str = "now",
                 url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False) -> None:
    """What the file's rules would have raised over stored history (nothing is saved)."""
    from atoll.rules.loading import parse_yaml

    try:
        doc = parse_yaml(file.read_text())
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except AtollError as exc:
        _fail(exc.message, exc.hint)
    rules = doc.get("rules", []) if isinstance(doc, dict) else (doc or [])
    rows = []
    for raw in rules:
        out = _call(url, api_key, "POST", f"/projects/{project}/rules/backtest",
                    params={"start": start, "end": end}, json={**raw, "project": project})
        rows += [{"rule": out["rule"]["id"], **e} for e in out["episodes"]]
    _table(rows, ["rule", "device", "raised_at", "cleared_at", "value", "detail"], as_json)


@rules_app.command("list")
def list_rules(project: Project, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False) -> None:
    rows = _call(url, api_key, "GET", f"/projects/{project}/rules")
    for r in rows:
        r["condition"] = r["condition"]["type"]
        r["target"] = json.dumps(r["target"])
    _table(rows, ["id", "name", "severity", "enabled", "condition", "target"], as_json)


@alarms_app.command("list")
def list_alarms(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    status: Annotated[str, typer.Option(help="active, acknowledged, cleared, open or all")] = "open",
    url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False,
) -> None:
    params = {"status": status, **({"project": project} if project else {})}
    rows = _call(url, api_key, "GET", "/alarms", params=params)
    _table(rows, ["id", "project", "device", "rule_name", "severity", "status", "acknowledged",
                  "raised_at", "detail"], as_json)


def _act(verb: str, alarm_id: int, comment: str | None, url: str, api_key: str) -> None:
    a = _call(url, api_key, "POST", f"/alarms/{alarm_id}/{verb}", json={"comment": comment})
    typer.echo(f"alarm {a['id']}: {a['status']}" + (", acknowledged" if a["acknowledged"] else ""))


@alarms_app.command("ack")
def ack(alarm_id: int, comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
        url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    _act("ack", alarm_id, comment, url, api_key)


@alarms_app.command("clear")
def clear(alarm_id: int, comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
          url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    _act("clear", alarm_id, comment, url, api_key)
