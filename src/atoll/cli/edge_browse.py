"""``atoll edge browse opc.tcp://… [--node …]``: list an OPC UA server's variables, to pick the
nodes of an OPC UA connector's configuration. ``register(edge_app)`` adds the command to the
``atoll edge`` group."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def register(edge_app: typer.Typer) -> None:
    edge_app.command("browse")(browse)


def browse(
    url: Annotated[str, typer.Argument(help="the server, e.g. opc.tcp://10.0.0.9:4840")],
    node: Annotated[
        str | None, typer.Option(help="start here (a node id, e.g. ns=2;s=Press1); default Objects")
    ] = None,
    depth: Annotated[int, typer.Option(min=1, max=10, help="levels to go down")] = 3,
    limit: Annotated[int, typer.Option(min=1, help="stop after this many variables")] = 500,
    certificate: Annotated[
        Path | None, typer.Option(help="client certificate: use Basic256Sha256 SignAndEncrypt")
    ] = None,
    private_key: Annotated[Path | None, typer.Option(help="the client certificate's key")] = None,
    server_certificate: Annotated[Path | None, typer.Option(help="the server's, trusted")] = None,
    application_uri: Annotated[
        str, typer.Option(help="the URI in the client certificate")
    ] = "urn:atoll:edge",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the variables under a node of an OPC UA server: node id, path, type, value."""
    from atoll.edge.connectors.opcua.config import Security
    from atoll.edge.connectors.opcua.connector import browse_url

    files = (certificate, private_key, server_certificate)
    security = None
    if any(files):
        if not all(files):
            _fail("--certificate, --private-key and --server-certificate go together")
        try:
            security = Security(
                certificate=certificate,
                private_key=private_key,
                server_certificate=server_certificate,
                application_uri=application_uri,
            )
        except ValueError as e:
            _fail(str(e))
    console = Console(stderr=True)
    try:
        with console.status(f"browsing {url} …"):
            found = asyncio.run(browse_url(url, node, security=security, depth=depth, limit=limit))
    except (OSError, TimeoutError) as e:
        _fail(f"cannot reach {url}: {e or type(e).__name__}; check the address and port")
    except Exception as e:  # asyncua's errors (refused security, unknown node …)
        _fail(f"{url}: {type(e).__name__}: {e}")
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("node", "path", "type", "value")
    for v in found:
        table.add_row(v["node"], v["path"], v["type"], repr(v["value"]))
    Console().print(table)
    if len(found) >= limit:
        typer.echo(f"(stopped at --limit {limit})", err=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
