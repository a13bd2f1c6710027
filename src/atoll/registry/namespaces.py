"""Each tenant names things in its own namespace, so a name taken elsewhere is never visible.

Project and device ids are global (series keys, MQTT usernames and topics carry them alone),
and so are usernames (a login names no tenant) and rule and report ids (alarms and schedules
carry them alone). If a caller could pick any global id, "taken" would tell it another tenant's
id exists. So an id or username a caller *chooses* in tenant ``acme`` is stored as
``acme~<chosen>``: ``~`` cannot appear in a tenant id or a chosen id, so two tenants' names
never meet, and a clash can only be with the caller's own names. The ``default`` tenant (the
operator's, and every single-tenant install) keeps plain names; ids made up by Atoll
(``d-3f9a…``) are random and need no prefix.

Look-ups take the id as stored (as the API returned it); only creating (or PUT, which creates)
accepts the short form. Naming another tenant's namespace is refused as malformed: a rule about
the text, never about what exists.

>>> qualify_id("device", "acme", "pump-1")
'acme~pump-1'
>>> qualify_id("device", "acme", "acme~pump-1")  # already in acme's namespace
'acme~pump-1'
>>> qualify_id("device", "default", "pump-1")
'pump-1'
>>> qualify_id("device", "acme", "beta~pump-1")
Traceback (most recent call last):
...
atoll.core.errors.InvalidInput: invalid device id 'beta~pump-1'
>>> qualify_username("acme", "alice@example.com")
'acme~alice@example.com'
"""

from __future__ import annotations

from collections.abc import Callable

from atoll.core.errors import InvalidInput
from atoll.registry.tokens import valid_id

SEP = "~"
DEFAULT_TENANT = "default"
MAX_ID = 64
MAX_USERNAME = 200
ID_HINT = (
    "use 1-64 characters: lower-case letters, digits, '-' or '_', starting with a letter or digit"
)


def prefix(tenant: str) -> str:
    """What an id chosen in ``tenant`` starts with when stored: ``'acme~'``, or ``''``."""
    return "" if tenant == DEFAULT_TENANT else tenant + SEP


def qualify_id(
    kind: str,
    tenant: str,
    chosen: str,
    *,
    valid: Callable[[str], bool] = valid_id,
    max_len: int = MAX_ID,
    hint: str = ID_HINT,
) -> str:
    """The stored id of a ``kind`` id chosen in ``tenant``; ``InvalidInput`` if malformed.

    ``valid`` checks the chosen part (it must refuse ``~``); the stored id has at most
    ``max_len`` characters.
    """
    return _qualify(f"{kind} id", tenant, chosen, valid, max_len, hint)


def qualify_username(tenant: str, username: str) -> str:
    """The stored (login) name of a console user named ``username`` in ``tenant``."""
    return _qualify(
        "username",
        tenant,
        username,
        bool,
        MAX_USERNAME,
        f"use 1-{MAX_USERNAME} characters without {SEP!r}",
    )


def _qualify(
    what: str, tenant: str, chosen: str, valid: Callable[[str], bool], max_len: int, hint: str
) -> str:
    head = prefix(tenant)
    local = chosen.removeprefix(head) if head else chosen
    if SEP in local or not valid(local):
        raise InvalidInput(f"invalid {what} {chosen!r}", hint=hint)
    full = head + local
    if len(full) > max_len:
        raise InvalidInput(
            f"{what} {chosen!r} is too long: in tenant {tenant!r} it is stored as {full!r}, "
            f"which must have at most {max_len} characters",
            hint=f"use at most {max_len - len(head)} characters in this tenant",
        )
    return full
