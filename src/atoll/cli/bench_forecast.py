"""``atoll bench forecast``: forecasters against seasonal naive on the sector templates' series.

For each sector template, a simulated fleet (``atoll.sim``, no faults) makes ``--days`` of
one-minute readings of every numeric metric. Each horizon is forecast the way the platform
does it (``atoll.forecast.series``: the same look-back, grid step and seasons) from rolling
origins spread over the last days, by every forecaster; MASE and interval coverage per sector
and forecaster are printed and written as JSON. The default forecaster (``auto``) was chosen on
seed 0; the default ``--seeds`` are others.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.core.errors import AtollError, InvalidInput
from atoll.core.time import parse_duration

SECTORS = ("construction", "finance", "healthcare", "manufacturing", "retail")
#: A Monday 00:00 UTC, so days and weeks of the simulation line up with the grid.
T0 = 1_699_833_600.0
_MIN_S = 60


def sector_series(sector: str, devices: int, seed: int, days: float) -> dict[str, np.ndarray]:
    """One-minute values of every numeric metric of a simulated fleet: ``"device/metric" ->``."""
    from atoll.sim.fleet import Fleet

    fleet = Fleet.build(sector, devices, seed=seed, start=T0)
    numeric = {
        (i, m.name)
        for i, d in enumerate(fleet.devices)
        for m in fleet.device_type(d.device_id).telemetry
        if m.type != "bool"
    }
    cols: dict[tuple[int, str], list[float]] = defaultdict(list)
    for batch in fleet.history(until=T0 + days * 86400, step_s=_MIN_S):
        for r in batch:
            for name, v in r.values.items():
                if (r.device, name) in numeric:
                    cols[(r.device, name)].append(float(v))
    return {f"{fleet.devices[i].device_id}/{m}": np.asarray(v) for (i, m), v in cols.items()}


def _means(minutes: np.ndarray, step_min: int) -> np.ndarray:
    n = len(minutes) // step_min
    return minutes[: n * step_min].reshape(n, step_min).mean(axis=1)


def run(
    sectors: tuple[str, ...],
    horizons: tuple[int, ...],
    kinds: tuple[str, ...],
    seeds: tuple[int, ...],
    *,
    devices: int,
    origins: int,
    level: float,
    on_step: Any = None,
) -> dict[str, Any]:
    from atoll.forecast import forecaster, plan_grid
    from atoll.forecast.evaluate import backtest

    fcs = {k: forecaster(k) for k in kinds}
    longest = max(plan_grid(h, 10**15).lookback_us + h for h in horizons)
    days = longest / 86_400e6 + 2.0
    trials: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for sector in sectors:
        for seed in seeds:
            series = sector_series(sector, devices, seed, days)
            for h in horizons:
                grid = plan_grid(h, 10**15)
                step_min = grid.step_us // 60_000_000
                lookback = grid.lookback_us // grid.step_us
                for y in series.values():
                    g = _means(y, step_min)
                    last = len(g) - grid.horizon_steps
                    spread = max(1, (last - lookback) // max(1, origins))
                    starts = [last - i * spread for i in range(origins)]
                    trials[(sector, _label(h), "")].extend(
                        backtest(
                            g,
                            starts,
                            lookback=lookback,
                            horizon=grid.horizon_steps,
                            seasons=grid.seasons,
                            forecasters=fcs,
                            level=level,
                        )
                    )
            if on_step:
                on_step()
    rows = []
    for (sector, horizon, _), ts in sorted(trials.items()):
        by: dict[str, list[Any]] = defaultdict(list)
        for t in ts:
            by[t.forecaster].append(t)
        base = by.get("seasonal_naive")
        for name, xs in by.items():
            row = {
                "sector": sector,
                "horizon": horizon,
                "forecaster": name,
                "forecasts": len(xs),
                "mase": statistics.fmean(t.mase for t in xs),
                "mase_median": statistics.median(t.mase for t in xs),
                "coverage": statistics.fmean(t.coverage for t in xs),
                "cpu_s_per_forecast": statistics.fmean(t.seconds for t in xs),
                "models": sorted({t.model for t in xs}),
            }
            if base and name != "seasonal_naive":
                row["beats_seasonal_naive"] = statistics.fmean(
                    float(a.mase < b.mase) for a, b in zip(xs, base, strict=True)
                )
            rows.append(row)
    return {"rows": rows, "days_simulated": days}


def _label(h_us: int) -> str:
    s = h_us // 1_000_000
    return f"{s // 86400}d" if s % 86400 == 0 else f"{s // 3600}h" if s % 3600 == 0 else f"{s}s"


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InvalidInput(f"--{what}: a comma-separated list of integers, got {text!r}") from None


def forecast(
    sectors: Annotated[
        str, typer.Option("--sectors", help="Comma-separated sector templates.")
    ] = ",".join(SECTORS),
    horizons: Annotated[
        str, typer.Option("--horizons", help="Comma-separated horizons, e.g. 1h,1d.")
    ] = "1h,1d",
    forecasters: Annotated[
        str, typer.Option("--forecasters", help="Comma-separated forecasters to compare.")
    ] = "auto,mstl,autoets,theta,combo,seasonal_naive",
    seeds: Annotated[
        str, typer.Option("--seeds", help="Simulation seeds (0 was used to choose).")
    ] = "2,3",
    devices: Annotated[int, typer.Option("--devices", help="Devices per sector.")] = 3,
    origins: Annotated[int, typer.Option("--origins", help="Forecast origins per series.")] = 3,
    level: Annotated[float, typer.Option("--level", help="Interval level.")] = 0.8,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.")
    ] = None,
) -> None:
    """Forecast every numeric series of simulated sector fleets from rolling origins; MASE and
    interval coverage per sector, horizon and forecaster (lower MASE is better; seasonal naive
    is the baseline)."""
    from atoll.forecast import KINDS

    err = Console(stderr=True)
    try:
        names = tuple(s.strip() for s in sectors.split(",") if s.strip())
        unknown = [s for s in names if s not in SECTORS]
        kinds = tuple(k.strip() for k in forecasters.split(",") if k.strip())
        if unknown or not names:
            raise InvalidInput(
                f"unknown sector(s): {', '.join(unknown) or '(none)'}",
                hint=f"choose from {', '.join(SECTORS)}",
            )
        if not kinds or any(k not in KINDS for k in kinds):
            raise InvalidInput(
                f"unknown forecaster in {forecasters!r}", hint=f"choose from {', '.join(KINDS)}"
            )
        hs = tuple(parse_duration(h.strip(), positive=True) for h in horizons.split(",") if h)
        seed_list = _ints(seeds, "seeds")
        if devices < 1 or origins < 1 or not 0 < level < 1 or not hs or not seed_list:
            raise InvalidInput(
                "--devices and --origins must be at least 1, --level between 0 and 1, and "
                "--horizons and --seeds not empty"
            )
        with Progress(
            TextColumn("[bold]forecast backtest[/bold] sector × seed"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=len(names) * len(seed_list))
            result = run(
                names,
                hs,
                kinds,
                seed_list,
                devices=devices,
                origins=origins,
                level=level,
                on_step=lambda: progress.advance(task),
            )
    except AtollError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]fix:[/yellow] {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "load": os.getloadavg()[0],
        "seeds": list(seed_list),
        "devices": devices,
        "origins": origins,
        "level": level,
        **result,
    }
    table = Table(title=f"MASE (mean) and {level:.0%} interval coverage; seasonal naive = baseline")
    for col in ("sector", "horizon", "forecaster", "n", "MASE", "beats s-naive", "coverage"):
        table.add_column(col, justify="left" if col in ("sector", "forecaster") else "right")
    for r in result["rows"]:
        beats = r.get("beats_seasonal_naive")
        table.add_row(
            r["sector"],
            r["horizon"],
            r["forecaster"],
            str(r["forecasts"]),
            f"{r['mase']:.3f}",
            "" if beats is None else f"{beats:.0%}",
            f"{r['coverage']:.0%}",
        )
    Console().print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


def add_to(bench: typer.Typer) -> None:
    bench.command("forecast")(forecast)
