"""``atoll lab``: the lab across enterprises, through a running Atoll's REST API.

    atoll lab usage [--enterprise E] [--project P] [--since 2026-11-01] [--until 2026-11-30]
                    [--csv FILE] [--json]

The URL and API key come from ``--url``/``--api-key`` or ``ATOLL_URL``/``ATOLL_API_KEY``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit

app = typer.Typer(help="The lab across enterprises: usage metering.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="lab")


_COLUMNS = [
    ("day", lambda r: r["day"]),
    ("enterprise", lambda r: r["enterprise"]),
    ("project", lambda r: r["project"] or "(enterprise)"),
    ("messages", lambda r: f"{r['messages']:,}"),
    ("points", lambda r: f"{r['points']:,}"),
    ("api calls", lambda r: f"{r['api_calls']:,}"),
    ("points held", lambda r: "" if r["storage_points"] is None else f"{r['storage_points']:,}"),
]
Many = Annotated[list[str] | None, typer.Option(help="repeat or comma-separate")]
Day = Annotated[str | None, typer.Option(help="a UTC day, e.g. 2026-12-01")]


@app.command("usage")
def usage(
    enterprise: Many = None,
    project: Many = None,
    since: Day = None,
    until: Day = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="write the rows to this CSV file instead")
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Metered use per day, enterprise and project (last 30 days unless --since/--until):
    telemetry messages and points stored, API calls, points held in the store."""
    with client(url, api_key) as c:
        if csv is not None:
            text = c.lab_usage_csv(enterprise=enterprise, project=project, since=since, until=until)
            csv.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {max(0, text.count(chr(10)) - 1)} rows to {csv}")
            return
        got: dict[str, Any] = c.lab_usage(
            enterprise=enterprise, project=project, since=since, until=until
        )
    if as_json:
        emit([got], [], True)
        return
    typer.echo(f"usage from {got['since']} to {got['until']} (UTC days)")
    emit(got["days"], _COLUMNS, False)
    for t in got["totals"]:
        held = "" if t["storage_points"] is None else f", {t['storage_points']:,} points held"
        typer.echo(
            f"{t['enterprise']}: {t['messages']:,} messages, {t['points']:,} points, "
            f"{t['api_calls']:,} API calls{held}"
        )
