"""Each tenant names things in its own namespace, so a name taken elsewhere is never visible.

Project and device ids are global (series keys, MQTT usernames and topics carry them alone) and
so are usernames (a login names no tenant). If a caller could pick any global id, "taken" would
tell it another tenant's id exists. So an id or username a caller *chooses* in tenant ``acme``
is stored as ``acme~<chosen>``: ``~`` cannot appear in a tenant id or a chosen id, so two
tenants' names never meet, and a clash can only be with the caller's own names. The ``default``
tenant (the operator's, and every single-tenant install) keeps plain names; ids made up by
Atoll (``d-3f9a…``) are random and need no prefix.

>>> qualify_id("device", "acme", "pump-1")
'acme~pump-1'
>>> qualify_id("device", "acme", "acme~pump-1")  # already in acme's namespace
'acme~pump-1'
>>> qualify_id("device", "default", "pump-1")
'pump-1'
>>> qualify_username("acme", "alice@example.com")
'acme~alice@example.com'
"""

from __future__ import annotations

from atoll.core.errors import InvalidInput
from atoll.registry.tokens import valid_id

SEP = "~"
DEFAULT_TENANT = "default"
MAX_ID = 64
MAX_USERNAME = 200


def _local(tenant: str, chosen: str) -> str:
    return chosen.removeprefix(tenant + SEP)


def qualify_id(kind: str, tenant: str, chosen: str) -> str:
    """The stored id of a project or device id chosen in ``tenant``; ``InvalidInput`` if malformed."""
    if tenant == DEFAULT_TENANT:
        local, full = chosen, chosen
    else:
        local = _local(tenant, chosen)
        full = f"{tenant}{SEP}{local}"
    if not valid_id(local):
        raise InvalidInput(
            f"invalid {kind} id {chosen!r}",
            hint="use 1-64 characters: lower-case letters, digits, '-' or '_', starting with a letter or digit",
        )
    if len(full) > MAX_ID:
        raise InvalidInput(
            f"{kind} id {chosen!r} is too long: in tenant {tenant!r} it is stored as {full!r}, "
            f"which must have at most {MAX_ID} characters",
            hint=f"use at most {MAX_ID - len(tenant) - len(SEP)} characters in this tenant",
        )
    return full


def qualify_username(tenant: str, username: str) -> str:
    """The stored (login) name of a console user named ``username`` in ``tenant``."""
    local = username if tenant == DEFAULT_TENANT else _local(tenant, username)
    if not local or SEP in local:
        raise InvalidInput(f"invalid username {username!r}",
                           hint=f"use 1-{MAX_USERNAME} characters without {SEP!r}")
    full = local if tenant == DEFAULT_TENANT else f"{tenant}{SEP}{local}"
    if len(full) > MAX_USERNAME:
        raise InvalidInput(f"username {username!r} is too long: it is stored as {full!r}, "
                           f"which must have at most {MAX_USERNAME} characters")
    return full
