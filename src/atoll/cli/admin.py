"""``atoll admin``: recovery on the machine that holds the data (no API key needed).

Works on the registry file in ``--home`` directly, so it also works while ``atoll up`` runs,
and it is the way back in when the admin key or password is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atoll.core.errors import AtollError

app = typer.Typer(
    help="Recover access: new admin keys, password resets (works on the data directory).",
    no_args_is_help=True,
)
Home = Annotated[
    Path, typer.Option("--home", envvar="ATOLL_HOME", help="data directory [./.atoll]")
]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="admin")


def _registry(home: Path):
    from atoll.registry import Registry

    if not (home / "registry.sqlite").exists():
        typer.echo(f"error: no Atoll data in {home}", err=True)
        typer.echo(
            "  hint: pass --home DIR (the directory `atoll up` uses) or set ATOLL_HOME", err=True
        )
        raise typer.Exit(2)
    return Registry.open(home)


def _run(home: Path, action):
    registry = _registry(home)
    try:
        return action(registry)
    except AtollError as e:
        typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(1) from None
    finally:
        registry.close()


@app.command("create-key")
def create_key(
    name: Annotated[str, typer.Option("--name", help="what the key is for")] = "recovery",
    role: Annotated[str, typer.Option("--role", help="admin | operator | viewer")] = "admin",
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")] = "default",
    home: Home = Path(".atoll"),
) -> None:
    """Create an API key and print it once."""
    key = _run(home, lambda r: r.create_api_key(tenant, name, role, quota=False))
    _audit(home, tenant, "key.create", f"key:{key.key.id}")
    typer.echo(key.token)


@app.command("reset-password")
def reset_password(username: str, home: Home = Path(".atoll")) -> None:
    """Give console user USERNAME a new random password and print it once (their sessions end)."""
    from atoll.registry.tokens import new_secret

    password = new_secret()[:24]

    def reset(r):
        user = next(
            (u for t in r.list_tenants() for u in r.list_users(t.id) if u.username == username),
            None,
        )
        if user is None:
            raise typer.BadParameter(f"no console user {username!r}")
        r.set_password(user.tenant, username, password)
        r.audit(user.tenant, "atoll admin (local)", "user.password_reset", f"user:{username}")

    _run(home, reset)
    typer.echo(password)


def _audit(home: Path, tenant: str, action: str, target: str) -> None:
    _run(home, lambda r: r.audit(tenant, "atoll admin (local)", action, target))
