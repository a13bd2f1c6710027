"""``atoll demo``: a live lab in one command (embedded store, broker, detectors and rules)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from atoll.core.errors import AtollError

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    devices: Annotated[int, typer.Option("--devices", "-n", min=10, help="simulated devices")] = 60,
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", min=1, help="seconds to run live [until Ctrl-C]"),
    ] = None,
    faults: Annotated[int, typer.Option("--faults", min=0, help="faults to inject")] = 12,
    seed: Annotated[
        int, typer.Option("--seed", help="same seed, same lab, signals and faults")
    ] = 7,
    home: Annotated[
        Path, typer.Option("--home", help="demo data directory (wiped at start)")
    ] = Path(".atoll/demo"),
    http_port: Annotated[
        int, typer.Option("--http-port", help="console/API port (any free one if taken)")
    ] = 8080,
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", help="MQTT port (any free one if taken)")
    ] = 1883,
    history: Annotated[
        float, typer.Option("--history", min=0, help="seconds of history to back-fill first")
    ] = 3600.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the summary here")] = None,
) -> None:
    """Start Atoll with a lab of five enterprises, simulated devices and injected faults.

    Prints the console URL and login; Ctrl-C stops it and prints what was found.
    """
    from atoll.demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    opts = DemoOptions(
        home=home,
        devices=devices,
        seed=seed,
        http_port=http_port,
        mqtt_port=mqtt_port,
        duration=duration,
        history_s=history,
        faults=faults,
    )
    live = Live(_table(None), console=console, refresh_per_second=2, transient=True)
    bar = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def step(label: str, done: float, total: float) -> None:
        if not bar.live.is_started:
            bar.start()
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=round(total))
        bar.update(tasks[label], completed=round(done))

    def ready(info: dict) -> None:
        bar.stop()
        console.print(
            f"\n[bold green]Atoll is live.[/] Console: [link={info['console']}]"
            f"{info['console']}[/link]  (lab operator, sees every enterprise: user "
            f"[bold]{info['user']}[/] password [bold]{info['password']}[/])",
            soft_wrap=True,
        )
        console.print("Enterprises in the lab, each with its own console login:")
        for t in info["tenants"]:
            # Plain lines, never a table: a credential must not be cut to fit the terminal.
            console.print(
                f"  {t['tenant']} ({t['sector']}, {t['devices']} devices): "
                f"user [bold]{t['user']}[/] password [bold]{t['password']}[/]",
                soft_wrap=True,
            )
        console.print(f"API key (platform admin): {info['api_key']}", soft_wrap=True)
        console.print(f"MQTT: {info['mqtt']}   ground truth: {info['ground_truth']}")
        console.print("Press Ctrl-C to stop and see the summary.\n")
        live.start()

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(
            opts,
            say=console.print,
            stop=stop,
            ready=ready,
            step=step,
            progress=lambda s: live.update(_table(s)),
        )

    try:
        summary = asyncio.run(main())
    except AtollError as e:
        console.print(f"[red]error:[/] {e.message}")
        if e.hint:
            console.print(f"hint: {e.hint}")
        raise typer.Exit(1) from None
    finally:
        bar.stop()
        live.stop()
    console.print(_table(summary, final=True))
    if summary.faults:
        console.print("Each fault and the first alarm that caught it:")
        for f in summary.faults:
            if f["detected_after_s"] is not None:
                caught = f"after {f['detected_after_s']:.0f} s by [bold]{f['rule']}[/]"
            elif f.get("under_way"):
                caught = "under way, not caught yet"
            else:
                caught = "[yellow]not caught[/]"
            console.print(f"  {f['kind']:<18} {f['device']}: {caught}", soft_wrap=True)
    for a in summary.false_alarm_list:
        console.print(f"  false alarm        {a['device']}: {a['rule']}", soft_wrap=True)
    for line in maintenance_lines(summary):
        console.print(line, soft_wrap=True)
    if json_out:
        import json

        json_out.write_text(json.dumps(summary.to_dict(), indent=2))


def maintenance_lines(s) -> list[str]:
    """The summary's predictive-maintenance lines: the RUL model, then each motor that failed
    while live and whether its maintenance alarm came first."""
    if s.rul_model is None:
        return [f"maintenance: {s.rul_note}"] if s.rul_note else []
    m = s.rul_model
    out = [
        f"maintenance: {m['device_type']} RUL model v{m['version']} ({m['model_id']}), fitted in "
        f"the background at start in {m['fit_seconds']:.1f} s on {m['trajectories']} runs to "
        "failure"
    ]
    if not s.maintenance:
        out.append("maintenance: no motor wore out to failure while live")
    for f in s.maintenance:
        device = f["device"].split("~")[-1]
        if f["alarmed_before_s"] is None:
            out.append(f"maintenance: {device} failed with no maintenance alarm before it")
        else:
            out.append(
                f"maintenance: {device} alarmed {f['alarmed_before_s'] / 60:.1f} min before its "
                "failure"
            )
    return out


def _fmt(x, pct=False):
    if x is None:
        return "–"
    return f"{x:.0%}" if pct else (f"{x:,.0f}" if isinstance(x, (int, float)) else str(x))


def _table(s, final: bool = False) -> Table:
    t = Table(title="Atoll demo — summary" if final else "Atoll demo — live", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    if s is None:
        t.add_row("status", "starting")
        return t
    t.add_row("live for", f"{s.live_seconds:,.0f} s")
    t.add_row("tenants / devices", f"{s.tenants} / {s.devices}")
    t.add_row("points ingested", _fmt(s.points_ingested))
    t.add_row("messages / rejected", f"{_fmt(s.messages)} / {_fmt(s.rejected)}")
    t.add_row("anomalous readings", _fmt(s.anomalies))
    t.add_row("alarms raised", _fmt(s.alarms_raised))
    t.add_row("faults injected", _fmt(s.faults_injected))
    t.add_row("  played out / in progress", f"{s.faults_played_out} / {s.faults_in_progress}")
    t.add_row("  detected", _fmt(s.faults_detected))
    t.add_row("recall (played-out faults)", _fmt(s.recall, pct=True))
    t.add_row("precision (alarms)", _fmt(s.precision, pct=True))
    t.add_row("false alarms", _fmt(s.false_alarms))
    t.add_row("median time to detect", "–" if s.median_ttd_s is None else f"{s.median_ttd_s:.0f} s")
    if s.rul_model is not None:
        warned = sum(f["alarmed_before_s"] is not None for f in s.maintenance)
        t.add_row("motor failures / warned before", f"{len(s.maintenance)} / {warned}")
    return t
