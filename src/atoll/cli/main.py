"""The ``atoll`` command. Each command group lives in its own module and is registered here."""

from __future__ import annotations

from typing import Protocol

import typer

from atoll import __version__
from atoll.cli import (
    admin,
    bench,
    demo,
    detect,
    devices,
    edge,
    lab,
    models,
    projects,
    rul,
    rules,
    sim,
    solutions,
    tenants,
    up,
    users,
)

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


class CommandModule(Protocol):
    """A command group: ``register(app)`` adds its commands to ``atoll``."""

    def register(self, app: typer.Typer, /) -> None: ...


# Keep this list sorted.
_COMMAND_MODULES: tuple[CommandModule, ...] = (
    admin,
    bench,
    demo,
    detect,
    devices,
    edge,
    lab,
    models,
    projects,
    rul,
    rules,
    sim,
    solutions,
    tenants,
    up,
    users,
)


def _register() -> None:
    for module in _COMMAND_MODULES:
        module.register(app)


_register()

if __name__ == "__main__":
    app()
