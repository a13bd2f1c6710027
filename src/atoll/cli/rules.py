"""``atoll rules`` and ``atoll alarms``: check and apply YAML rule files, list and act on alarms.

``atoll rules validate FILE`` needs nothing running. The other commands talk to a running
``atoll up`` through its REST API: ``--url``/``--api-key`` or ``ATOLL_URL``/``ATOLL_API_KEY``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit
from atoll.core.errors import AtollError

Project = Annotated[str, typer.Option("--project", "-p", help="project id")]

rules_app = typer.Typer(help="Rules in YAML: validate, apply, list.", no_args_is_help=True)
alarms_app = typer.Typer(help="Alarms: list, acknowledge, clear, comment.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(rules_app, name="rules")
    root.add_typer(alarms_app, name="alarms")


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    typer.echo(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    raise typer.Exit(code)


def _time(value) -> str | None:
    return value and value.isoformat(timespec="seconds")


@rules_app.command("validate")
def validate(
    file: Path, project: Annotated[str | None, typer.Option("--project", "-p")] = None
) -> None:
    """Check a rules file offline; exit 1 with the offending field if it is invalid."""
    from atoll.rules.loading import load_rule_file

    try:
        doc = load_rule_file(file.read_text(), project=project)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except AtollError as exc:
        _fail(exc.message, exc.hint)
    for r in doc.rules:
        typer.echo(
            f"ok  rule {r.id} ({r.project}): {r.condition.type} on "
            f"{r.target.model_dump(exclude_none=True)}"
        )
    for c in doc.channels:
        typer.echo(f"ok  channel {c.name} ({c.type})")


@rules_app.command("apply")
def apply(file: Path, project: Project, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Create or replace the file's rules and channels in a project."""
    try:
        text = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    with client(url, api_key) as c:
        out = c.import_rules(project, text.decode("utf-8", "replace"))
    typer.echo(f"applied {len(out.rules)} rules, {len(out.channels)} channels to {project}")


@rules_app.command("backtest")
def backtest_cmd(
    file: Path,
    project: Project,
    start: str = "-7d",
    end: str = "now",
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """What the file's rules would have raised over stored history (nothing is saved)."""
    from atoll.rules.loading import parse_yaml

    try:
        doc = parse_yaml(file.read_text())
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except AtollError as exc:
        _fail(exc.message, exc.hint)
    rules = doc.get("rules", []) if isinstance(doc, dict) else (doc or [])
    episodes = []
    with client(url, api_key) as c:
        for raw in rules:
            out = c.backtest_rule(project, {**raw, "project": project}, start=start, end=end)
            episodes += [{"rule": out.rule.id, **asdict(e)} for e in out.episodes]
    emit(
        episodes,
        [
            ("rule", lambda e: e["rule"]),
            ("device", lambda e: e["device"]),
            ("raised_at", lambda e: _time(e["raised_at"])),
            ("cleared_at", lambda e: _time(e["cleared_at"])),
            ("value", lambda e: e["value"]),
            ("detail", lambda e: e["detail"]),
        ],
        as_json,
    )


@rules_app.command("list")
def list_rules(
    project: Project, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False
) -> None:
    with client(url, api_key) as c:
        rows = c.rules(project)
    emit(
        rows,
        [
            ("id", lambda r: r.id),
            ("name", lambda r: r.name),
            ("severity", lambda r: r.severity),
            ("enabled", lambda r: r.enabled),
            ("condition", lambda r: r.condition["type"]),
            ("target", lambda r: json.dumps(r.target)),
        ],
        as_json,
    )


@alarms_app.command("list")
def list_alarms(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    status: Annotated[
        str, typer.Option(help="active, acknowledged, cleared, open or all")
    ] = "open",
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    with client(url, api_key) as c:
        rows = c.alarms(project=project, status=status)
    emit(
        rows,
        [
            ("id", lambda a: a.id),
            ("project", lambda a: a.project),
            ("device", lambda a: a.device),
            ("rule_name", lambda a: a.rule_name),
            ("severity", lambda a: a.severity),
            ("status", lambda a: a.status),
            ("acknowledged", lambda a: a.acknowledged),
            ("raised_at", lambda a: _time(a.raised_at)),
            ("detail", lambda a: a.detail),
        ],
        as_json,
    )


def _act(verb: str, alarm_id: int, comment: str | None, url: str, api_key: str) -> None:
    with client(url, api_key) as c:
        a = (c.ack_alarm if verb == "ack" else c.clear_alarm)(alarm_id, comment)
    acked = a.acknowledged and a.status != "acknowledged"
    typer.echo(f"alarm {a.id}: {a.status}" + (", acknowledged" if acked else ""))


@alarms_app.command("ack")
def ack(
    alarm_id: int,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    _act("ack", alarm_id, comment, url, api_key)


@alarms_app.command("clear")
def clear(
    alarm_id: int,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    _act("clear", alarm_id, comment, url, api_key)
