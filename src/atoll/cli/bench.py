"""``atoll bench ...``: benchmarks that print numbers and write JSON.

Each benchmark lives in its own module exposing ``add_to(bench: typer.Typer)`` and is listed in
``_BENCHMARKS`` (kept sorted). ``atoll bench nab`` is in ``atoll.cli.bench_nab``.
"""

from __future__ import annotations

from typing import Protocol

import typer

from atoll.cli import (
    bench_cluster,
    bench_cmapss,
    bench_forecast,
    bench_ingest,
    bench_nab,
    bench_smap_msl,
)

bench_app = typer.Typer(
    help="Benchmarks: print results and write them as JSON.", no_args_is_help=True
)


class Benchmark(Protocol):
    def add_to(self, bench: typer.Typer, /) -> None: ...


_BENCHMARKS: tuple[Benchmark, ...] = (
    bench_cluster,
    bench_cmapss,
    bench_forecast,
    bench_ingest,
    bench_nab,
    bench_smap_msl,
)


def register(app: typer.Typer) -> None:
    for module in _BENCHMARKS:
        module.add_to(bench_app)
    app.add_typer(bench_app, name="bench")
