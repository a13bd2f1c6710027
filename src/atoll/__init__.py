"""Atoll: an open AIoT platform."""

from atoll.core.errors import (
    AtollError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"
__all__ = [
    "AtollError",
    "Client",
    "Conflict",
    "DeviceClient",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]


def __getattr__(name: str):
    # The SDK pulls in httpx; load it on first use so `import atoll` (and the CLI) stay fast.
    if name in ("Client", "DeviceClient"):
        from atoll import client

        return getattr(client, name)
    raise AttributeError(f"module 'atoll' has no attribute {name!r}")
