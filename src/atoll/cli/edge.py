"""``atoll edge``: run the edge agent on a gateway, check its configuration, read its buffer.

``atoll edge run --config edge.yaml`` runs until SIGINT/SIGTERM and prints a summary;
``atoll edge status`` reads the local buffer (also while an agent runs); ``atoll edge check``
validates the configuration without connecting to anything. See docs/EDGE.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli import edge_browse
from atoll.core.errors import AtollError

edge_app = typer.Typer(
    help="The edge agent: store-and-forward from machines to Atoll.", no_args_is_help=True
)

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="the agent's YAML file")]


def register(root: typer.Typer) -> None:
    edge_browse.register(edge_app)
    root.add_typer(edge_app, name="edge")


def _fail(message: str, hint: str | None = None, code: int = 2) -> None:
    typer.echo(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    raise typer.Exit(code)


def _load(path: Path) -> Any:
    from atoll.edge.config import load_config

    try:
        return load_config(path)
    except AtollError as e:
        _fail(e.message, e.hint)


class _NoSink:
    async def put(self, readings: Any) -> None:
        return None


@edge_app.command("check")
def check(config: ConfigPath) -> None:
    """Validate the configuration: settings, connectors, secret and buffer directory."""
    from atoll.edge.agent import build_connectors
    from atoll.edge.connectors import CONNECTORS

    cfg = _load(config)
    problems = []
    try:
        link = cfg.link()
        typer.echo(
            f"ok  platform {'mqtts' if link.tls else 'mqtt'}://{link.host}:{link.port} "
            f"as gateway {link.gateway_id}"
        )
    except AtollError as e:
        problems.append((e.message, e.hint))
    if cfg.ca_file and not cfg.ca_file.is_file():
        problems.append((f"ca_file {cfg.ca_file} does not exist", "give the platform's CA (PEM)"))
    try:
        connectors = build_connectors(cfg.connectors, CONNECTORS)
        for c in connectors:
            typer.echo(f"ok  connector {c.name}: {len(c.devices())} child devices")
        if not connectors:
            typer.echo("ok  no connectors in the file (the desired twin may bring them)")
    except ValueError as e:
        problems.append((str(e), "see docs/EDGE.md, 'Connectors'"))
    if cfg.detection.enabled:
        from atoll.edge.agent import build_detection

        try:
            build_detection(cfg.detection, _NoSink(), cfg.gateway.id, None, lambda _: None)
            names = {c.name for c in cfg.connectors}
            for o in cfg.detection.outputs:
                if o.connector not in names:
                    typer.echo(
                        f"warn detection.outputs: no connector named {o.connector} in the file "
                        "(the desired twin must bring it)"
                    )
            typer.echo(f"ok  detection at the edge with detector {cfg.detection.detector!r}")
        except ValueError as e:
            problems.append((str(e), "see docs/EDGE.md, 'Detection at the edge'"))
    d = cfg.buffer.dir
    probe = d if d.exists() else next((p for p in d.parents if p.exists()), None)
    if probe is None or not os.access(probe, os.W_OK):
        problems.append((f"buffer directory {d} is not writable", "create it for the agent's user"))
    else:
        typer.echo(
            f"ok  buffer {d} (at most {int(cfg.buffer.max_bytes)} bytes, "
            f"{cfg.buffer.full_policy} when full)"
        )
    for msg, hint in problems:
        typer.echo(f"error: {msg}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    if problems:
        raise typer.Exit(2)


@edge_app.command("status")
def status(
    config: ConfigPath,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The local buffer: depth, oldest unsent reading, dropped and quarantined counts."""
    from atoll.edge.buffer import inspect

    cfg = _load(config)
    try:
        st = inspect(cfg.buffer.dir)
    except FileNotFoundError:
        _fail(f"no buffer at {cfg.buffer.dir}", "the agent creates it on its first run", code=1)
    doc = st.to_dict()
    if as_json:
        typer.echo(json.dumps(doc))
        return
    age = st.oldest_unsent_age_s
    typer.echo(f"buffer      {cfg.buffer.dir}")
    typer.echo(f"depth       {st.depth} readings not yet acknowledged by the platform")
    typer.echo(f"oldest      {'-' if age is None else f'{age:.1f} s old'}")
    typer.echo(f"size        {st.bytes} bytes in {st.segments} segments")
    typer.echo(f"dropped     {st.dropped} (buffer full, {cfg.buffer.full_policy})")
    typer.echo(f"quarantined {st.quarantined} segments, {st.quarantined_readings} readings")


@edge_app.command("run")
def run(
    config: ConfigPath,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the agent until SIGINT or SIGTERM, then print a summary."""
    from rich.console import Console
    from rich.table import Table

    from atoll.edge.agent import EdgeAgent

    cfg = _load(config)
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg.link()
    except AtollError as e:
        _fail(e.message, e.hint)
    agent = EdgeAgent(cfg)

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"atoll edge: gateway {cfg.gateway.id} → {cfg.platform}; Ctrl-C stops", err=True)
        return await agent.run(stop)

    from atoll.edge.buffer import BufferInUse

    try:
        summary = asyncio.run(main())
    except BufferInUse as e:
        _fail(str(e), "stop the other agent, or give this one its own buffer.dir")
    except PermissionError as e:
        _fail(f"cannot use the buffer directory: {e}", "make buffer.dir writable for this user")
    except ValueError as e:  # detection settings
        _fail(str(e), "atoll edge check names what is wrong")
    table = Table(title="atoll edge: summary", show_header=False)
    buf = summary.pop("buffer")
    for k, v in summary.items():
        table.add_row(k.replace("_", " "), str(v))
    for k in ("depth", "dropped", "quarantined", "quarantined_readings", "stopped"):
        table.add_row(f"buffer {k.replace('_', ' ')}", str(buf[k]))
    Console(stderr=True).print(table)
