"""The ``MessageBus`` port. Every adapter passes ``atoll.testing.bus.check_bus``.

Subjects are dot-separated tokens (NATS style). ``*`` matches one token and ``>`` the rest.
Subscribers in the same ``group`` share the messages (each goes to one of them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    data: bytes


Handler = Callable[[Message], Awaitable[None]]


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


@runtime_checkable
class MessageBus(Protocol):
    async def publish(self, subject: str, data: bytes) -> None: ...

    async def subscribe(
        self, subject: str, handler: Handler, *, group: str | None = None
    ) -> Subscription: ...

    def max_payload(self) -> int | None:
        """The largest message (bytes) the bus takes now, ``None`` for no limit. Publishers of
        messages that may be larger split them (ingest's telemetry events do)."""

    async def close(self) -> None: ...


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching.

    >>> subject_matches("telemetry.*.d1", "telemetry.p1.d1")
    True
    >>> subject_matches("telemetry.>", "telemetry.p1.d1")
    True
    >>> subject_matches("telemetry.*", "telemetry.p1.d1")
    False
    """
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)
