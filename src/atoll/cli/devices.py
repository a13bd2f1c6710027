"""``atoll devices``: register and manage devices of a running Atoll through its REST API.

The URL and API key come from ``--url``/``--api-key`` or ``ATOLL_URL``/``ATOLL_API_KEY``
(the key ``atoll up`` printed on its first start, or any key an admin created).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Annotated, Any

import typer

from atoll.core.errors import AtollError

Url = Annotated[
    str, typer.Option("--url", envvar="ATOLL_URL", help="Atoll server [http://127.0.0.1:8080]")
]
Key = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="ATOLL_API_KEY", help="API key (Bearer token)", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
DEFAULT_URL = "http://127.0.0.1:8080"

app = typer.Typer(
    help="Register and manage devices (needs a running `atoll up`).", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="devices")


@contextmanager
def client(url: str, api_key: str):
    """An SDK client; Atoll errors become a one-line message with the fix, and exit code 1."""
    from atoll.client import Client

    if not api_key:
        typer.echo(
            "error: no API key. Pass --api-key or set ATOLL_API_KEY "
            "(`atoll up` prints the admin key on its first start).",
            err=True,
        )
        raise typer.Exit(2)
    try:
        with Client(url, api_key) as c:
            yield c
    except AtollError as e:
        typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(1) from None


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit(rows: list[Any], columns: list[tuple[str, Callable[[Any], Any]]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_plain(rows), indent=2, default=str))
        return
    if not rows:
        typer.echo("(none)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*(name for name, _ in columns))
    for row in rows:
        table.add_row(*("" if (v := get(row)) is None else str(v) for _, get in columns))
    Console().print(table)


_DEVICE_COLUMNS = [
    ("id", lambda d: d.id),
    ("name", lambda d: d.name),
    ("type", lambda d: d.device_type),
    ("gateway", lambda d: "(gateway)" if d.kind == "gateway" else d.parent),
    ("disabled", lambda d: "yes" if d.disabled else ""),
    ("credentials", lambda d: "ok" if d.has_credentials else "revoked"),
    ("last seen", lambda d: d.last_seen and d.last_seen.isoformat(timespec="seconds")),
]


@app.command("list")
def list_devices(
    project: str,
    parent: Annotated[
        str | None, typer.Option("--parent", help="only the children of this gateway")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """List the devices of PROJECT (the gateway column: "(gateway)", or a child's gateway)."""
    with client(url, api_key) as c:
        emit(c.devices(project, parent=parent), _DEVICE_COLUMNS, as_json)


@app.command("register")
def register_device(
    project: str,
    device_id: Annotated[
        str | None, typer.Option("--id", help="device id (default: generated)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    device_type: Annotated[
        str | None, typer.Option("--type", help="a device type of the project")
    ] = None,
    gateway: Annotated[
        bool, typer.Option("--gateway", help="a gateway: it speaks for child devices")
    ] = False,
    parent: Annotated[
        str | None, typer.Option("--parent", help="the gateway this child speaks through")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Register a device in PROJECT and print its credentials (shown only now). A gateway
    (--gateway) sends for its children; see docs/DEVICES.md, "Gateways"."""
    with client(url, api_key) as c:
        reg = c.register_device(
            project,
            id=device_id,
            name=name,
            device_type=device_type,
            kind="gateway" if gateway else "device",
            parent=parent,
        )
    if as_json:
        typer.echo(
            json.dumps({"device": _plain(reg.device), "secret": reg.credentials.secret}, indent=2)
        )
        return
    _print_credentials(url, reg.device.id, reg.credentials.secret)


def _print_credentials(url: str, device: str, secret: str) -> None:
    typer.echo(
        f"device  {device}\nsecret  {secret}\n(store the secret now: Atoll keeps only its hash)"
    )
    typer.echo(
        f'  curl -u {device}:{secret} -d \'{{"values": {{"temperature": 21.5}}}}\' '
        f"{url.rstrip('/')}/api/v1/ingest/telemetry"
    )


@app.command("show")
def show(device: str, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Show a device, its twin and its series."""
    with client(url, api_key) as c:
        doc = {
            "device": _plain(c.device(device)),
            "twin": _plain(c.twin(device)),
            "series": _plain(c.series(device)),
        }
    typer.echo(json.dumps(doc, indent=2, default=str))


@app.command("rotate")
def rotate(device: str, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Give DEVICE a new secret; the old one stops working at once."""
    with client(url, api_key) as c:
        creds = c.rotate_credentials(device)
    _print_credentials(url, creds.device, creds.secret)


@app.command("revoke")
def revoke(device: str, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Revoke DEVICE's secret (rotate to issue a new one)."""
    with client(url, api_key) as c:
        c.revoke_credentials(device)
    typer.echo(f"revoked the credentials of {device}")


@app.command("disable")
def disable(device: str, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Stop DEVICE from connecting or sending (its data and credentials stay)."""
    with client(url, api_key) as c:
        c.disable_device(device)
    typer.echo(f"disabled {device}")


@app.command("enable")
def enable(device: str, url: Url = DEFAULT_URL, api_key: Key = "") -> None:
    """Let a disabled DEVICE connect again."""
    with client(url, api_key) as c:
        c.disable_device(device, disabled=False)
    typer.echo(f"enabled {device}")


@app.command("rejections")
def rejections(
    device: str, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False
) -> None:
    """Messages of DEVICE that were refused (MQTT and HTTP), by reason."""
    with client(url, api_key) as c:
        rows = c.rejections(device)
    emit(
        rows,
        [
            ("transport", lambda r: r.transport),
            ("reason", lambda r: r.reason),
            ("count", lambda r: r.count),
            ("last", lambda r: r.last_at.isoformat(timespec="seconds")),
            ("last message", lambda r: r.last_message),
        ],
        as_json,
    )


def _when(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat(timespec="seconds")


@app.command("detection")
def detection(
    project: str, device: str, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False
) -> None:
    """What judges each series of DEVICE: detector, model version, flagged since."""
    with client(url, api_key) as c:
        rows = c.detection(project, device)
    emit(
        rows,
        [
            ("metric", lambda s: s.metric),
            ("detector", lambda s: s.detector + (" (fitting)" if s.fitting else "")),
            ("model", lambda s: s.model and f"v{s.model.version} {s.model.reason}"),
            ("fitted on", lambda s: s.model and s.model.rows and f"{s.model.rows} readings"),
            ("flagged since", lambda s: _when(s.flagged_since)),
        ],
        as_json,
    )


@app.command("refit")
def refit(
    project: str,
    device: str,
    metric: Annotated[
        str | None, typer.Option("--metric", help="one metric (default: every one)")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Refit DEVICE's models of normal on their stored history now."""
    with client(url, api_key) as c:
        done = c.refit(project, device, metric)
    if as_json:
        typer.echo(json.dumps(_plain(done), indent=2, default=str))
        return
    for m in done.refitted:
        typer.echo(f"{m.metric}: v{m.version} fitted on {m.rows} readings ({m.excluded} left out)")
    for name, why in done.skipped:
        typer.echo(f"{name}: not refitted: {why}")


@app.command("accept-normal")
def accept_normal(
    project: str,
    device: str,
    metric: str,
    start: Annotated[str, typer.Option("--from", help="ISO-8601, epoch ms or -1h")],
    end: Annotated[str, typer.Option("--to", help="end (exclusive)")] = "now",
    comment: Annotated[str | None, typer.Option("--comment", help="why (audited)")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Accept METRIC's stored readings between --from and --to as DEVICE's new normal."""
    with client(url, api_key) as c:
        m = c.accept_normal(project, device, metric, start, end, comment=comment)
    typer.echo(f"{m.metric}: model v{m.version} accepts {m.rows} readings as normal")


_MAINTENANCE_COLUMNS = [
    ("id", lambda e: e.id),
    ("device", lambda e: e.device),
    ("kind", lambda e: e.kind),
    ("at", lambda e: _when(e.at)),
    ("part", lambda e: e.part),
    ("cost", lambda e: None if e.cost is None else f"{e.cost:g}"),
    ("note", lambda e: e.note),
]


@app.command("maintenance")
def maintenance(
    device: Annotated[str | None, typer.Argument(help="A device (or --project for all)")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Every device of it")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="failure|repair|...")] = None,
    since: Annotated[str | None, typer.Option("--since", help="e.g. -30d")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Maintenance records of DEVICE (or of every device of --project), newest first."""
    if (device is None) == (project is None):
        typer.echo("error: name a DEVICE or a --project (not both)", err=True)
        raise typer.Exit(2)
    with client(url, api_key) as c:
        rows = c.maintenance(device, project=project, kind=kind, since=since)
    emit(rows, _MAINTENANCE_COLUMNS, as_json)


@app.command("maintain")
def maintain(
    device: str,
    kind: Annotated[str, typer.Argument(help="failure, repair, replacement or inspection")],
    at: Annotated[str | None, typer.Option("--at", help="When (default now); ISO or -2h")] = None,
    part: Annotated[str | None, typer.Option("--part")] = None,
    cost: Annotated[float | None, typer.Option("--cost")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Record a failure, repair, part replacement or inspection of DEVICE."""
    with client(url, api_key) as c:
        e = c.record_maintenance(device, kind, at=at, part=part, cost=cost, note=note)
    typer.echo(f"recorded {e.kind} of {e.device} at {_when(e.at)} ({e.id})")


@app.command("import-maintenance")
def import_maintenance(
    project: str,
    csv_file: Annotated[typer.FileText, typer.Argument(help="device,at,kind[,part,cost,note]")],
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Import a maintenance history from CSV into PROJECT (all rows or none)."""
    text = csv_file.read()
    with client(url, api_key) as c:
        n = c.import_maintenance(project, text)
    typer.echo(f"imported {n} maintenance record(s) into {project}")


def _ms_time(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")


def _in(seconds: float) -> str:
    m = max(0, round(seconds / 60))
    return f"{m} min" if m < 120 else f"{m / 60:.1f} h" if m < 48 * 60 else f"{m / 1440:.1f} days"


@app.command("forecast")
def forecast(
    device: str,
    metric: str,
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead, e.g. 40m, 7d")] = "1h",
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Say when it crosses this value")
    ] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help="above or below (default: toward it)")
    ] = None,
    level: Annotated[float, typer.Option("--level", help="Interval level, 0.5-0.99")] = 0.8,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Forecast METRIC of DEVICE with an interval, and when it crosses --threshold."""
    with client(url, api_key) as c:
        f = c.forecast(
            device, metric, horizon=horizon, level=level, threshold=threshold, direction=direction
        )
    if as_json:
        typer.echo(json.dumps(_plain(f), indent=2))
        return
    unit = f" {f.unit}" if f.unit else ""
    typer.echo(
        f"{f.device} {f.metric}: {len(f)} steps of {f.step_ms / 60000:g} min by {f.model}, "
        f"{f.level:.0%} interval"
    )
    for i in sorted({0, len(f) // 2, len(f) - 1}):
        typer.echo(
            f"  {_ms_time(f.ts[i])}  {f.mean[i]:.4g}{unit}  ({f.lo[i]:.4g} to {f.hi[i]:.4g})"
        )
    c = f.crossing
    if c is not None:
        if c.ts is None or c.in_s is None:
            way = "above" if c.direction == "above" else "below"
            typer.echo(f"does not go {way} {c.threshold:g}{unit} within {horizon}")
        else:
            typer.echo(
                f"crosses {c.threshold:g}{unit} ({c.direction}) in about {_in(c.in_s)}, at "
                f"{_ms_time(c.ts)} (earliest {_ms_time(c.earliest or c.ts)})"
            )
