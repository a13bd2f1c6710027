"""``atoll models``: the model registry of a running Atoll, through its REST API.

    atoll models list PROJECT [--kind rul] [--scope type:motor] [--state active]
    atoll models show PROJECT MODEL_ID          # with its versions
    atoll models approve|activate|retire|rollback PROJECT MODEL_ID [--comment WHY]
    atoll models card PROJECT MODEL_ID [--format md|json] [--out FILE]

The URL and API key come from ``--url``/``--api-key`` or ``ATOLL_URL``/``ATOLL_API_KEY``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit

app = typer.Typer(
    help="The model registry: list, approve, activate, retire, roll back, export cards.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")


class CardFormat(StrEnum):
    md = "md"
    json = "json"


_COLUMNS = [
    ("id", lambda m: m.id),
    ("kind", lambda m: m.kind),
    ("scope", lambda m: m.scope),
    ("version", lambda m: m.version),
    ("state", lambda m: m.state),
    ("algorithm", lambda m: m.algorithm),
    ("created by", lambda m: m.created_by),
    ("approved by", lambda m: m.approved_by),
    ("updated", lambda m: m.updated_at.isoformat(timespec="seconds")),
]
Comment = Annotated[str | None, typer.Option("--comment", help="Why (kept in the audit log).")]


@app.command("list")
def list_models(
    project: str,
    kind: Annotated[str | None, typer.Option("--kind", help="detector, rul or forecaster")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="type:<t> or series:<d>/<m>")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="draft, approved, active or retired")
    ] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="an anomaly's model id")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """List the models of PROJECT, newest change first."""
    with client(url, api_key) as c:
        emit(c.models(project, kind=kind, scope=scope, state=state, ref=ref), _COLUMNS, as_json)


@app.command("show")
def show(
    project: str, model_id: str, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False
) -> None:
    """One model and every version of its kind and scope."""
    with client(url, api_key) as c:
        m = c.model(project, model_id)
        versions = c.model_versions(project, model_id)
    if as_json:
        emit([m], _COLUMNS, True)
        return
    typer.echo(f"{m.id}: {m.kind} {m.scope} v{m.version}, {m.state} ({m.algorithm})")
    if m.metrics:
        typer.echo("metrics: " + ", ".join(f"{k}={_short(v)}" for k, v in m.metrics.items()))
    typer.echo(f"may: {', '.join(m.allowed) or 'nothing (final)'}")
    emit(versions, _COLUMNS, False)


def _short(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _action(name: str):
    def command(
        project: str,
        model_id: str,
        comment: Comment = None,
        url: Url = DEFAULT_URL,
        api_key: Key = "",
    ) -> None:
        with client(url, api_key) as c:
            change = getattr(c, f"{name}_model")(project, model_id, comment)
        m = change.model
        typer.echo(f"{m.id}: {m.kind} {m.scope} v{m.version} is {m.state}")
        for retired in change.retired:
            typer.echo(f"retired {retired}")

    command.__doc__ = {
        "approve": "Approve a draft model.",
        "activate": "Activate an approved (or earlier) version; the active one is retired.",
        "retire": "Retire a model version.",
        "rollback": "Retire the active MODEL_ID and activate the previous approved version.",
    }[name]
    return command


for _name in ("approve", "activate", "retire", "rollback"):
    app.command(_name)(_action(_name))


@app.command("card")
def card(
    project: str,
    model_id: str,
    format: Annotated[CardFormat, typer.Option("--format", help="md or json")] = CardFormat.md,
    out: Annotated[Path | None, typer.Option("--out", help="Write it here.")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Export a model card as Markdown or JSON."""
    with client(url, api_key) as c:
        got = c.model_card(project, model_id, format.value)
    text = got if isinstance(got, str) else json.dumps(got, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)
