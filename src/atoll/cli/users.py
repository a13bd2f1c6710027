"""``atoll users``: invite console users and change your password (needs a running
``atoll up``; same ``--url`` and ``--api-key`` as ``atoll devices``)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.cli.devices import DEFAULT_URL, AsJson, Key, Url, client, emit

app = typer.Typer(
    help="Invite console users, list and revoke invites, change your password.",
    no_args_is_help=True,
)

Tenant = Annotated[
    str | None,
    typer.Option("--tenant", help="platform admin: the enterprise to act in [your key's own]"),
]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="users")


@app.command("invite")
def invite(
    username: str,
    role: Annotated[str, typer.Option("--role", help="admin | operator | viewer")] = "viewer",
    ttl_hours: Annotated[
        float, typer.Option("--ttl-hours", min=1, max=720, help="how long the link works")
    ] = 168,
    tenant: Tenant = None,
    url: Url = DEFAULT_URL,
    api_key: Key = "",
) -> None:
    """Invite USERNAME: prints a one-time console link (shown once; it works once)."""
    with client(url, api_key) as c:
        inv = c.in_tenant(tenant).invite(username, role, ttl_hours=ttl_hours)
    typer.echo(
        f"invited {inv.username} ({inv.role}) to {inv.tenant}; link expires {inv.expires_at}"
    )
    typer.echo(f"{url.rstrip('/')}{inv.path}")
    typer.echo("Send this link to the invitee; it is not shown again.", err=True)


@app.command("invites")
def invites(
    tenant: Tenant = None, url: Url = DEFAULT_URL, api_key: Key = "", as_json: AsJson = False
) -> None:
    """List invites with their state (pending, used, revoked, expired)."""
    with client(url, api_key) as c:
        emit(
            c.in_tenant(tenant).invites(),
            [
                ("id", lambda i: i.id),
                ("username", lambda i: i.username),
                ("role", lambda i: i.role),
                ("state", lambda i: i.state),
                ("expires", lambda i: i.expires_at),
                ("by", lambda i: i.created_by),
            ],
            as_json,
        )


@app.command("revoke-invite")
def revoke_invite(
    invite_id: str, tenant: Tenant = None, url: Url = DEFAULT_URL, api_key: Key = ""
) -> None:
    """Revoke a pending invite: its link stops working."""
    with client(url, api_key) as c:
        inv = c.in_tenant(tenant).revoke_invite(invite_id)
    typer.echo(f"revoked invite {inv.id} for {inv.username}")


@app.command("password")
def password(
    username: Annotated[str, typer.Option("--username", help="your console user name")],
    current: Annotated[str, typer.Option("--current", prompt="Current password", hide_input=True)],
    new: Annotated[
        str,
        typer.Option("--new", prompt="New password", hide_input=True, confirmation_prompt=True),
    ],
    url: Url = DEFAULT_URL,
) -> None:
    """Change your console password (at least 10 characters); your other sessions end."""
    from atoll.client import Client
    from atoll.core.errors import AtollError

    try:
        with Client.login(url, username, current) as c:
            c.change_password(current, new)
            c.logout()
    except AtollError as e:
        typer.echo(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"password changed for {username}; your other console sessions were ended")
