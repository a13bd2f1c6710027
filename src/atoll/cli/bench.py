"""``atoll bench ...``: benchmarks that print numbers and write JSON.

Extension point: each benchmark lives in its own module exposing ``add_to(bench: typer.Typer)``
and is listed in ``_BENCHMARKS`` (kept sorted). ``atoll bench nab`` is in ``atoll.cli.bench_nab``.
"""

from __future__ import annotations

import importlib

import typer

bench_app = typer.Typer(
    help="Benchmarks: print results and write them as JSON.", no_args_is_help=True
)

_BENCHMARKS: list[str] = [
    "atoll.cli.bench_ingest",
    "atoll.cli.bench_nab",
    "atoll.cli.bench_smap_msl",
]


def register(app: typer.Typer) -> None:
    for name in _BENCHMARKS:
        importlib.import_module(name).add_to(bench_app)
    app.add_typer(bench_app, name="bench")
