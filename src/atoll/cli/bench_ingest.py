"""``atoll bench ingest``: persisted ingest rates over MQTT and HTTP, with the raw store and
broker rates of the same run, and chart-query latency."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer


def add_to(bench: typer.Typer) -> None:
    bench.command("ingest")(ingest)


def ingest(
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the results as JSON here")
    ] = None,
    scale: Annotated[
        float, typer.Option("--scale", help="multiply message counts (1 = ~1 min)")
    ] = 1.0,
    chart_days: Annotated[
        int, typer.Option("--chart-days", help="days of 1 Hz data for chart queries")
    ] = 365,
    services: Annotated[
        bool,
        typer.Option("--services/--no-services", help="also run detectors and rules during ingest"),
    ] = False,
) -> None:
    """Points/s persisted end-to-end (MQTT batched, MQTT single readings, HTTP batches)."""
    import logging

    from atoll.bench.ingest import run

    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(
        run(scale=scale, chart_days=chart_days, services=services, echo=typer.echo)
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
