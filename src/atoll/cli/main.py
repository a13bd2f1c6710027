"""The ``atoll`` command. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import typer

from atoll import __version__

app = typer.Typer(
    name="atoll",
    help="Atoll: an open AIoT platform. Devices, telemetry, AI on every stream, rules and alarms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print Atoll's version."""
    typer.echo(__version__)


def _register() -> None:
    # Command modules register themselves on import; keep this list sorted.
    import importlib

    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"atoll.cli.{name}")
        module.register(app)


_COMMAND_MODULES: list[str] = [
    "admin",
    "bench",
    "demo",
    "detect",
    "devices",
    "projects",
    "rules",
    "sim",
    "solutions",
    "up",
]

_register()

if __name__ == "__main__":
    app()
