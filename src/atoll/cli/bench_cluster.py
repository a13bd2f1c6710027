"""``atoll bench cluster``: persisted rates, CPU per persisted reading and the share of readings
scored with 1, 2 and 3 ``atoll up`` nodes on NATS + PostgreSQL + Mosquitto, next to the embedded
default (docs/BENCHMARKS.md, "Cluster")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def add_to(bench: typer.Typer) -> None:
    bench.command("cluster")(cluster)


def cluster(
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the results as JSON here")
    ] = None,
    nodes: Annotated[
        str, typer.Option("--nodes", help="node counts to run, comma-separated")
    ] = "1,2,3",
    devices: Annotated[int, typer.Option("--devices", min=1, help="devices sending")] = 10,
    messages: Annotated[int, typer.Option("--messages", min=1, help="messages per device")] = 2000,
    readings: Annotated[
        int, typer.Option("--readings", min=1, max=1000, help="readings per message")
    ] = 1,
    nats_nodes: Annotated[
        int, typer.Option("--nats-nodes", help="1 nats-server, or a 3-node JetStream cluster (R3)")
    ] = 1,
    embedded: Annotated[
        bool,
        typer.Option("--embedded/--no-embedded", help="also run the embedded default (baseline)"),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=10, help="seconds per configuration, at most")
    ] = 600.0,
) -> None:
    """Persisted msgs/s and points/s, node CPU-seconds per persisted reading and share scored,
    for 1, 2 and 3 Atoll nodes on one NATS + PostgreSQL + Mosquitto set-up."""
    import logging

    from atoll.bench.cluster import run
    from atoll.core.errors import AtollError

    try:
        counts = sorted({int(n) for n in nodes.split(",") if n.strip()})
    except ValueError:
        raise typer.BadParameter(f"--nodes takes numbers like 1,2,3, not {nodes!r}") from None
    if not counts or counts[0] < 1 or counts[-1] > 8:
        raise typer.BadParameter("--nodes: between 1 and 8 nodes")
    if nats_nodes not in (1, 3):
        raise typer.BadParameter("--nats-nodes: 1 or 3")
    logging.basicConfig(level=logging.ERROR)
    try:
        result = run(
            nodes=counts,
            devices=devices,
            messages=messages,
            readings=readings,
            nats_nodes=nats_nodes,
            embedded=embedded,
            timeout=timeout,
            echo=typer.echo,
        )
    except AtollError as e:
        typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result["targets"]))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
