"""Secret tokens: generated with ``secrets``, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
import time

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def new_secret() -> str:
    """32 random bytes, URL-safe base64 (43 characters), never starting with ``-``.

    Secrets get pasted into command lines (``mosquitto_pub -P``, ``--secret``), where a leading
    dash reads as an option; redrawing those loses under 6 bits of 256.
    """
    while True:
        token = _secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def new_id(prefix: str, nbytes: int = 6) -> str:
    return f"{prefix}{_secrets.token_hex(nbytes)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def valid_id(value: str) -> bool:
    """Ids travel in MQTT topics and bus subjects, so no dots, slashes, wildcards or spaces."""
    return bool(_ID_RE.match(value))


def now_us() -> int:
    return time.time_ns() // 1000
