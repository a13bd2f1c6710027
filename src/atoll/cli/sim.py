"""``atoll sim``: the fleet simulator as a load generator against any Atoll or MQTT broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.core.errors import AtollError, InvalidInput

# The simulator (numpy, paho, pydantic models) is imported when the command runs, so that
# `atoll --help` and the other commands start fast.
if TYPE_CHECKING:
    from atoll.sim import Fleet, RunStats

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command(name="sim")(sim)


def sim(
    devices: int = typer.Option(100, "--devices", "-n", min=1, help="how many devices to simulate"),
    rate: float = typer.Option(
        1.0, "--rate", "-r", min=0.0001, help="readings per second per device"
    ),
    broker: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--broker", help="MQTT broker URL (mqtts:// for TLS)"
    ),
    ca_file: Path = typer.Option(
        None,
        "--ca-file",
        exists=True,
        dir_okay=False,
        help="CA certificate (PEM) to verify an mqtts:// broker",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="do not verify the broker's TLS certificate"
    ),
    credentials: Path = typer.Option(
        None,
        "--credentials",
        exists=True,
        dir_okay=False,
        help="JSON file: device_id -> secret (or {secret, template, device_type})",
    ),
    api: str = typer.Option(
        None, "--api", help="Atoll URL: register the devices through its REST API"
    ),
    api_key: str = typer.Option(
        None, "--api-key", envvar="ATOLL_API_KEY", help="API key for --api"
    ),
    project: str = typer.Option("sim", "--project", help="project to register devices in (--api)"),
    template: list[str] = typer.Option(
        None, "--template", "-t", help="solution template(s) [all five sectors]"
    ),
    prefix: str = typer.Option("sim", "--prefix", help="device id prefix"),
    seed: int = typer.Option(0, "--seed", help="random seed: same seed, same signals and faults"),
    duration: float = typer.Option(
        None, "--duration", "-d", min=0, help="seconds of simulated time [until Ctrl-C]"
    ),
    speed: float = typer.Option(
        1.0, "--speed", min=0, help="1 = real time, 10 = ten times faster, 0 = as fast as acked"
    ),
    faults: int = typer.Option(0, "--faults", min=0, help="number of faults to inject"),
    fault_kinds: str = typer.Option(
        None, "--fault-kinds", help="comma-separated kinds, e.g. bearing_wear,door_left_open"
    ),
    ground_truth: Path = typer.Option(
        None, "--ground-truth", dir_okay=False, help="write the injected faults here (JSON)"
    ),
    history: float = typer.Option(
        0.0, "--history", min=0, help="first back-fill this many seconds of history"
    ),
    history_step: float = typer.Option(60.0, "--history-step", min=1, help="history resolution, s"),
    save: Path = typer.Option(
        None,
        "--save-credentials",
        dir_okay=False,
        help="write registered devices' secrets here (with --api)",
    ),
    json_out: Path = typer.Option(
        None, "--json", dir_okay=False, help="write the run's stats here"
    ),
) -> None:
    """Simulate a device fleet over MQTT: realistic signals, injected faults, measured load.

    Each device connects with its own credentials (username = device id, password = secret)
    and publishes JSON to atoll/v1/devices/{id}/telemetry at QoS 1.

    Examples:

      atoll sim --api http://127.0.0.1:8080 --api-key $KEY -t retail -n 200 --faults 5

      atoll sim -n 10000 -r 0.2 --broker mqtt://broker:1883 --credentials creds.json -d 60
    """
    try:
        _sim(**locals())
    except AtollError as e:
        console.print(f"[red]error:[/red] {e.message}")
        if e.hint:
            console.print(f"[dim]hint: {e.hint}[/dim]")
        raise typer.Exit(2) from None


def _sim(
    *,
    devices,
    rate,
    broker,
    ca_file,
    insecure,
    credentials,
    api,
    api_key,
    project,
    template,
    prefix,
    seed,
    duration,
    speed,
    faults,
    fault_kinds,
    ground_truth,
    history,
    history_step,
    save,
    json_out,
) -> None:
    from atoll.sim import (
        Fleet,
        load_credentials,
        plan_devices,
        provision,
        save_credentials,
        write_ground_truth,
    )
    from atoll.solutions import discover
    from atoll.solutions import load as load_template

    templates = [load_template(t) for t in template] if template else discover()
    if api and not api_key:
        raise InvalidInput("--api needs --api-key (or ATOLL_API_KEY)")
    if api and credentials:
        raise InvalidInput("give --api or --credentials, not both")

    if credentials:
        fleet_devices = load_credentials(credentials, templates)[:devices]
    elif api:
        from atoll import Client

        with Client(api, api_key) as client, _bar("registering devices", devices) as (bar, task):
            fleet_devices = provision(
                client,
                project,
                templates,
                devices,
                prefix=prefix,
                on_progress=lambda n, _: bar.update(task, completed=n),
            )
        if save:
            save_credentials(save, fleet_devices)
            console.print(f"credentials saved to {save} (mode 600)")
    else:
        fleet_devices = plan_devices(templates, devices, prefix=prefix)
        console.print(
            "[yellow]no --credentials or --api: devices connect without a password[/yellow]"
        )

    now = time.time()
    fleet = Fleet(fleet_devices, seed=seed, rate=rate, start=now - history, templates=templates)
    if faults:
        kinds = [k.strip() for k in fault_kinds.split(",")] if fault_kinds else None
        # Leave the detectors a minute of live data before the first fault.
        window_end = now + (duration if duration else 3600.0)
        fleet.plan_faults(faults, min(now + 60.0, window_end - 1), window_end, kinds=kinds)
    if ground_truth:
        write_ground_truth(
            ground_truth, fleet.faults, seed=seed, devices=len(fleet_devices), rate=rate, start=now
        )
        console.print(f"ground truth: {len(fleet.faults)} faults → {ground_truth}")

    tls = {"ca_file": str(ca_file) if ca_file else None, "insecure": insecure}
    stats = asyncio.run(_drive(fleet, broker, duration, speed, history, history_step, tls))
    _summary(stats)
    if json_out:
        json_out.write_text(
            json.dumps(
                {**stats.to_dict(), "rate": rate, "seed": seed, "faults": len(fleet.faults)},
                indent=2,
            )
        )


@contextlib.contextmanager
def _bar(label: str, total: float | None, unit: str = ""):
    count = "{task.completed:,.0f}" + ("" if total is None else "/{task.total:,.0f}") + unit
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn(count),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        yield bar, bar.add_task(label, total=total, info="")


async def _drive(
    fleet: Fleet, broker: str, duration, speed, history, history_step, tls: dict
) -> RunStats:
    from atoll.sim import MqttFleet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C ends the run cleanly, with the summary; off the main thread there is no signal.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    n = len(fleet.devices)
    async with MqttFleet(fleet, broker, **tls) as mf:
        with _bar("connecting", n) as (bar, task):

            def shown(s: RunStats) -> None:
                bar.update(task, completed=s.connected + s.refused, info=f"refused {s.refused}")

            await mf.connect(on_progress=shown)
        if history:
            with _bar("back-filling history", None, " messages") as (bar, task):

                def filled(s: RunStats) -> None:
                    bar.update(task, completed=s.acked, info="")

                await mf.publish_history(fleet.start + history, history_step, on_progress=filled)
            fleet.resume_at(time.time())  # live readings carry real time after the back-fill
        with _bar("publishing", duration, " s") as (bar, task):
            v0 = fleet.next_tick_time()

            def running(s: RunStats) -> None:
                bar.update(
                    task,
                    completed=fleet.next_tick_time() - v0,
                    info=f"{s.msgs_per_s:,.0f} msg/s  {s.points_per_s:,.0f} points/s  "
                    f"connected {s.connected}",
                )

            stats = await mf.run(duration=duration, speed=speed, stop=stop, on_progress=running)
    return stats


def _summary(s: RunStats) -> None:
    t = Table(title="atoll sim", show_header=False)
    for k, v in [
        ("devices", f"{s.devices:,}"),
        ("connected", f"{s.connected:,}"),
        ("refused", f"{s.refused:,}"),
        ("connect time", f"{s.connect_s:.1f} s"),
        ("messages published", f"{s.published:,}"),
        ("messages acked", f"{s.acked:,}"),
        ("points", f"{s.points:,}"),
        ("connections lost", f"{s.lost:,}"),
        ("run time", f"{s.elapsed_s:.1f} s"),
        ("achieved", f"{s.msgs_per_s:,.0f} msgs/s, {s.points_per_s:,.0f} points/s"),
    ]:
        t.add_row(k, v)
    Console().print(t)
