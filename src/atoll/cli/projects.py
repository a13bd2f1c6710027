"""``atoll projects``: list and create projects of a
running Atoll (same options as ``atoll devices``)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit

app = typer.Typer(
    help="List and create projects (needs a running `atoll up`).", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="projects")


@app.command("list")
def list_projects(url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False) -> None:
    """List the projects your key's tenant owns."""
    with client(url, api_key) as c:
        emit(
            c.projects(),
            [
                ("id", lambda p: p.id),
                ("name", lambda p: p.name),
                ("retention days", lambda p: p.retention_days),
            ],
            as_json,
        )


@app.command("create")
def create(
    name: str,
    project_id: Annotated[
        str | None, typer.Option("--id", help="project id (default: generated)")
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option("--retention-days", min=1, help="delete points older than this")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Create a project called NAME."""
    with client(url, api_key) as c:
        p = c.create_project(name, id=project_id, retention_days=retention_days)
    typer.echo(f"created project {p.id}")
