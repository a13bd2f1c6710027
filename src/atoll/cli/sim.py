"""``atoll sim``: the fleet simulator as a load generator against any Atoll or MQTT broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.cli.signals import STOP_SIGNALS, stop_signals
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
    keepalive: int = typer.Option(
        60,
        "--keepalive",
        min=0,
        max=65535,
        help="MQTT keep-alive, s: each device pings when quiet this long (0 = none)",
    ),
    connect_rate: float = typer.Option(
        None, "--connect-rate", min=0.001, help="at most this many new connections a second"
    ),
) -> None:
    """Simulate a device fleet over MQTT: realistic signals, injected faults, measured load.

    Each device connects with its own credentials (username = device id, password = secret)
    and publishes JSON to atoll/v1/devices/{id}/telemetry at QoS 1.

    Examples:

      atoll sim --api http://127.0.0.1:8080 --api-key $KEY -t retail -n 200 --faults 5

      atoll sim -n 10000 -r 0.2 --broker mqtt://broker:1883 --credentials creds.json -d 60

    Ctrl-C or SIGTERM stops any phase (registering, connecting, publishing) within a few
    seconds and prints what was done; the exit code is then 130. It is 1 when devices could not
    connect or publishing stalled, 2 for bad input.
    """
    options = dict(locals())
    with _Stop.installed() as stop:
        try:
            code = _sim(stop=stop, **options)
        except AtollError as e:
            console.print(f"[red]error:[/red] {e.message}")
            if e.hint:
                console.print(f"[dim]hint: {e.hint}[/dim]")
            code = 130 if stop.is_set() else 2
    if code:
        raise typer.Exit(code)


class _Stop:
    """SIGINT and SIGTERM, for the whole command: the first asks the phase running to end (the
    summary follows, exit code 130); a second ends the process at once.

    Python-level handlers throughout (``atoll.cli.signals``: asyncio's own lose a signal when
    the loop's self-pipe is full). While the asyncio phases run, the handler hands the stop to
    the loop, which also prints the message: a write to stderr from inside a signal handler
    raises when it interrupted another one."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None  # the first one's name
        self._installed = False

    def is_set(self) -> bool:
        return self.event.is_set()

    def _note(self, signum: int) -> None:
        """Record a signal; the second ends the process."""
        if self.event.is_set():
            os._exit(130)
        self.signal = signal.Signals(signum).name
        self.event.set()

    def _message(self) -> None:
        console.print(f"[yellow]{self.signal}: stopping (again to stop at once)[/yellow]")

    def _handle(self, signum: int, frame: object) -> None:
        # Outside the asyncio phases (registering devices).
        self._note(signum)
        with contextlib.suppress(RuntimeError):  # stderr was being written: skip the line
            self._message()

    @contextlib.contextmanager
    def bound(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event):
        """Also set ``event`` on ``loop`` (waking it) while the async phases run."""
        if self.event.is_set():
            event.set()
        if not self._installed:  # not the main thread: no signals to take
            yield
            return

        def on_signal(signum: int) -> None:
            self._note(signum)
            loop.call_soon_threadsafe(event.set)
            loop.call_soon_threadsafe(self._message)

        with stop_signals(loop, on_signal):
            yield

    @classmethod
    @contextlib.contextmanager
    def installed(cls):
        stop = cls()
        try:
            old = {s: signal.signal(s, stop._handle) for s in STOP_SIGNALS}
        except ValueError:  # not the main thread (tests, embedding): no signals to catch
            old = {}
        stop._installed = bool(old)
        try:
            yield stop
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def _sim(
    *,
    stop: _Stop,
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
    keepalive,
    connect_rate,
) -> int:
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
                stop=stop.event,
            )
        if save and fleet_devices:
            save_credentials(save, fleet_devices)
            console.print(f"credentials saved to {save} (mode 600)")
        if stop.is_set():
            Console().print(
                f"interrupted while registering devices: {len(fleet_devices):,} of"
                f" {devices:,} registered; nothing published"
            )
            return 130
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

    from atoll.ingest.admission import raise_fd_limit

    # One socket per device: a default soft limit of 1,024 open files stops at ~1,000 devices.
    fd_limit = raise_fd_limit()
    if fd_limit < len(fleet.devices) + 64:
        console.print(
            f"[yellow]the open-file limit ({fd_limit:,}) is below what {len(fleet.devices):,}"
            " devices need (one socket each): raise it (ulimit -n) or simulate fewer[/yellow]"
        )
    options = {
        "ca_file": str(ca_file) if ca_file else None,
        "insecure": insecure,
        "keepalive": keepalive,
        "connect_rate": connect_rate,
    }
    stats = asyncio.run(
        _drive(fleet, broker, duration, speed, history, history_step, options, stop)
    )
    _summary(stats)
    if json_out:
        json_out.write_text(
            json.dumps(
                {**stats.to_dict(), "rate": rate, "seed": seed, "faults": len(fleet.faults)},
                indent=2,
            )
        )
    if stats.interrupted or stop.is_set():
        return 130
    return 1 if stats.unfinished else 0


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
    fleet: Fleet, broker: str, duration, speed, history, history_step, options: dict, sig: _Stop
) -> RunStats:
    from atoll.sim import MqttFleet

    stop = asyncio.Event()
    n = len(fleet.devices)
    with sig.bound(asyncio.get_running_loop(), stop):
        async with MqttFleet(fleet, broker, **options) as mf:
            with _bar("connecting", n) as (bar, task):

                def shown(s: RunStats) -> None:
                    bar.update(
                        task,
                        completed=s.connected + s.refused + s.failed,
                        info=f"refused {s.refused}  given up {s.failed}  retries {s.retries}",
                    )

                await mf.connect(stop=stop, on_progress=shown)
            if history and not stop.is_set():
                with _bar("back-filling history", None, " messages") as (bar, task):

                    def filled(s: RunStats) -> None:
                        bar.update(task, completed=s.acked, info="")

                    await mf.publish_history(
                        fleet.start + history, history_step, stop=stop, on_progress=filled
                    )
                fleet.resume_at(time.time())  # live readings carry real time after the back-fill
            if stop.is_set():
                mf.stats.interrupted = True
                return mf.stats
            with _bar("publishing", duration, " s") as (bar, task):
                v0 = fleet.next_tick_time()

                def running(s: RunStats) -> None:
                    bar.update(
                        task,
                        completed=fleet.next_tick_time() - v0,
                        info=f"{s.msgs_per_s:,.0f} msg/s  {s.points_per_s:,.0f} points/s  "
                        f"connected {s.connected}",
                    )

                return await mf.run(duration=duration, speed=speed, stop=stop, on_progress=running)


def _summary(s: RunStats) -> None:
    out = Console()
    t = Table(title="atoll sim", show_header=False)
    for k, v in [
        ("devices", f"{s.devices:,}"),
        ("connected", f"{s.connected:,}"),
        ("refused", f"{s.refused:,}"),
        ("given up", f"{s.failed:,} (after {s.retries:,} retries)"),
        ("connect time", f"{s.connect_s:.1f} s"),
        ("messages published", f"{s.published:,}"),
        ("messages acked", f"{s.acked:,}"),
        ("points", f"{s.points:,}"),
        ("connections lost", f"{s.lost:,} ({s.reconnects:,} reconnected)"),
        ("run time", f"{s.elapsed_s:.1f} s"),
        ("achieved", f"{s.msgs_per_s:,.0f} msgs/s, {s.points_per_s:,.0f} points/s"),
    ]:
        t.add_row(k, v)
    out.print(t)
    if s.interrupted:
        out.print("[yellow]interrupted: the numbers above are what was done until then[/yellow]")
    for line in s.unfinished:
        out.print(f"[yellow]not done:[/yellow] {line}")
    if s.failed and s.closed_early:
        out.print(
            f"[dim]hint: the broker closed {s.closed_early:,} connection attempts before"
            f" answering CONNECT, while {s.connected:,} devices stayed connected. That is how"
            " a connection cap looks. Atoll's embedded broker takes at most"
            " ATOLL_MQTT_MAX_CONNECTIONS_PER_ADDRESS connections from one IP address (default"
            " 1,000) and ATOLL_MQTT_MAX_CONNECTIONS in all: start `atoll up` with them raised,"
            " or run simulators from several addresses. Its log names the cap"
            " (too_many_connections_from_address).[/dim]"
        )
