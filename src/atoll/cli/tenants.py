"""``atoll tenants``: enterprises and their quotas (needs a running ``atoll up``)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit

app = typer.Typer(help="Enterprises (tenants) and their quotas.", no_args_is_help=True)

NO_LIMIT = -1


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tenants")


@app.command("list")
def list_tenants(url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False) -> None:
    """The enterprises your key sees (all of them for the platform admin)."""
    with client(url, api_key) as c:
        emit(c.tenants(), [("id", lambda t: t.id), ("name", lambda t: t.name)], as_json)


@app.command("quota")
def quota(
    tenant: str,
    devices: Annotated[
        int | None, typer.Option("--devices", min=NO_LIMIT, help="device limit; -1: none")
    ] = None,
    api_keys: Annotated[
        int | None, typer.Option("--api-keys", min=NO_LIMIT, help="API key limit; -1: none")
    ] = None,
    ingest_rate: Annotated[
        float | None,
        typer.Option("--ingest-rate", help="points/s of the whole enterprise; -1: the default"),
    ] = None,
    storage_points: Annotated[
        int | None,
        typer.Option(
            "--storage-points", min=NO_LIMIT, help="points its projects may hold; -1: none"
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Show TENANT's quotas and usage; with --devices / --api-keys, set them (platform admin)."""
    if ingest_rate is not None and ingest_rate != NO_LIMIT and ingest_rate <= 0:
        typer.echo("error: --ingest-rate must be > 0 points/s, or -1 for the default", err=True)
        raise typer.Exit(2)
    with client(url, api_key) as c:
        changes = {
            k: (None if v == NO_LIMIT else v)
            for k, v in (
                ("devices", devices),
                ("api_keys", api_keys),
                ("ingest_rate", ingest_rate),
                ("storage_points", storage_points),
            )
            if v is not None
        }
        got = c.set_quotas(tenant, **changes) if changes else c.quotas(tenant)
    rate = got.pop("ingest_rate", None)
    rows = [{"quota": k, **v} for k, v in got.items()]
    rows.append({"quota": "ingest_rate (points/s)", "used": "", "limit": rate or "default"})
    emit(
        rows,
        [
            ("quota", lambda r: r["quota"]),
            ("used", lambda r: r["used"]),
            ("limit", lambda r: "none" if r["limit"] is None else r["limit"]),
        ],
        as_json,
    )
