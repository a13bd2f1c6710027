"""``atoll up``: run the whole platform (embedded store, bus and MQTT broker by default)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli.signals import stop_signals
from atoll.core.errors import AtollError


def register(app: typer.Typer) -> None:
    app.command()(up)


def up(
    home: Annotated[
        Path | None, typer.Option("--home", envvar="ATOLL_HOME", help="data directory [./.atoll]")
    ] = None,
    http_host: Annotated[
        str | None, typer.Option("--http-host", help="HTTP API address [127.0.0.1]")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP API port [8080]; 0 = any free port")
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option("--mqtt", help="embedded | external | off [embedded]")
    ] = None,
    mqtt_host: Annotated[
        str | None, typer.Option("--mqtt-host", help="embedded broker address [127.0.0.1]")
    ] = None,
    mqtt_port: Annotated[
        int | None,
        typer.Option("--mqtt-port", help="embedded broker port [1883]; 0 = any free port"),
    ] = None,
    mqtt_tls_port: Annotated[
        int | None,
        typer.Option(
            "--mqtt-tls-port",
            help="embedded broker: MQTT over TLS on this port (e.g. 8883; 0 = any "
            "free port); needs --tls-cert and --tls-key",
        ),
    ] = None,
    mqtt_ws_port: Annotated[
        int | None,
        typer.Option("--mqtt-ws-port", help="embedded broker: MQTT over WebSockets on this port"),
    ] = None,
    mqtt_wss_port: Annotated[
        int | None,
        typer.Option(
            "--mqtt-wss-port", help="embedded broker: MQTT over WebSockets with TLS on this port"
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", help="PEM certificate (then any intermediates) for the TLS listeners"
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert (unencrypted)")
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt-url", help="external broker, mqtt://user:pass@host:port (mqtts:// for TLS)"
        ),
    ] = None,
    mqtt_node_id: Annotated[
        str | None,
        typer.Option(
            "--mqtt-node-id",
            help="external broker: this process's unique, stable name "
            "[made once, kept in the data directory]",
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="store URL [duckdb in the data directory]")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="a reverse proxy (address or network) whose X-Forwarded-For the "
            "HTTP API believes; repeat for several [none]",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug | info | warning")] = "info",
) -> None:
    """Start Atoll: HTTP API + console, MQTT, ingest, detectors and rules. Ctrl-C stops it."""
    from pydantic import ValidationError

    from atoll.config import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "home": home,
            "http_host": http_host,
            "http_port": http_port,
            "mqtt_mode": mqtt,
            "mqtt_host": mqtt_host,
            "mqtt_port": mqtt_port,
            "mqtt_url": mqtt_url,
            "store_url": store,
            "mqtt_tls_port": mqtt_tls_port,
            "mqtt_ws_port": mqtt_ws_port,
            "mqtt_wss_port": mqtt_wss_port,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "mqtt_node_id": mqtt_node_id,
            "trusted_proxies": trusted_proxy or None,
        }.items()
        if v is not None
    }
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "transitions", "uvicorn.error", "websockets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        typer.echo(f"error: invalid setting: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_run(settings))
    except AtollError as e:
        typer.echo(f"error: {e.message}", err=True)
        if e.hint:
            typer.echo(f"hint: {e.hint}", err=True)
        raise typer.Exit(1) from None


async def _run(settings) -> None:
    from atoll.datadir import PRIVATE_UMASK
    from atoll.platform import Platform, tune_interpreter

    tune_interpreter()
    # This process owns its data directory: whatever it creates later (WAL files, detector
    # state, the numba cache, runtime.json) is private to its user from the start.
    os.umask(PRIVATE_UMASK)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(_signum: int) -> None:
        loop.call_soon_threadsafe(stop.set)

    with stop_signals(loop, on_signal):
        await _serve(Platform(settings), settings, stop)


async def _serve(platform, settings, stop: asyncio.Event) -> None:
    await platform.start()
    runtime = settings.home / "runtime.json"
    try:
        runtime.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "http_url": platform.http_url,
                    "mqtt_url": platform.mqtt_url,
                    "mqtt_listeners": _listener_urls(platform),
                }
            )
        )
        _announce(platform)
        await stop.wait()
        typer.echo("stopping (finishing queued writes)…")
    finally:
        await platform.stop()
        runtime.unlink(missing_ok=True)
    typer.echo("stopped")


def _listener_urls(platform) -> dict[str, str]:
    from atoll.ingest.listeners import urls

    ports = getattr(platform.mqtt, "ports", None) or {}
    return urls(platform.settings.mqtt_host, ports)


def _announce(platform) -> None:
    s = platform.settings
    typer.echo(f"Atoll is up (data in {s.home.resolve()})")
    typer.echo(
        f"  console + API  {platform.http_url}/   (OpenAPI docs at {platform.http_url}/docs)"
    )
    if platform.mqtt_url:
        typer.echo(f"  MQTT           {platform.mqtt_url}   ({s.mqtt_mode} broker)")
        for url in _listener_urls(platform).values():
            typer.echo(f"                 {url}")
    else:
        typer.echo("  MQTT           off")
    typer.echo(f"  store          {s.resolved_store_url}")
    boot = platform.bootstrap
    if boot is not None:
        typer.echo("")
        typer.echo("First start: these secrets are shown ONCE (only hashes are stored):")
        typer.echo(f"  admin API key       {boot.api_key}")
        typer.echo(f"  console user        {boot.username}")
        typer.echo(f"  console password    {boot.password}")
        typer.echo(
            f"  e.g. curl -H 'Authorization: Bearer {boot.api_key}'"
            f" {platform.http_url}/api/v1/projects"
        )
    typer.echo("Press Ctrl-C to stop.", err=False)
